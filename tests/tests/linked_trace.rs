//! One request through the mesh, one fully linked X-Ray trace.
//!
//! Needs the filter module, the relay binary, Envoy and moto (`make test` builds and
//! installs them first).

mod common;

use common::{linked_traces_of_requests, start_mesh};
use meshray_e2e::MeshOptions;
use meshray_e2e::check::bookinfo_edges;
use meshray_e2e::xray::service_graph;

const REQUESTS: usize = 10;

/// Ten requests to productpage through three Istio-shaped sidecars with the meshray filter,
/// shipped through the real relay to the X-Ray API, give exactly ten traces; each has one
/// segment per service, remote subsegments `reviews` and `ratings`, every `parent_id`
/// resolving inside the trace with each callee's segment parented by the caller's
/// subsegment, and the service graph is exactly productpage → reviews → ratings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_is_one_fully_linked_trace() {
    let mut mesh = start_mesh("linked-trace", MeshOptions::default()).await;
    let traces = linked_traces_of_requests(&mut mesh, REQUESTS, "").await;
    let graph = service_graph(&traces);
    let edges: Vec<_> = graph.keys().cloned().collect();
    assert_eq!(edges, bookinfo_edges(), "{graph:?}");
    assert!(graph.values().all(|n| *n == REQUESTS), "{graph:?}");
}
