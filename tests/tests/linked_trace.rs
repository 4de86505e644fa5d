//! One request through the mesh, one fully linked X-Ray trace.
//!
//! Needs the filter module, the relay binary, Envoy and moto (`make test` builds and
//! installs them first).

use meshray_e2e::check::bookinfo_edges;
use meshray_e2e::xray::service_graph;
use meshray_e2e::{Mesh, MeshOptions};

const REQUESTS: usize = 10;

/// Ten requests to productpage through three Istio-shaped sidecars with the meshray filter,
/// shipped through the real relay to the X-Ray API, give exactly ten traces; each has one
/// segment per service, remote subsegments `reviews` and `ratings`, every `parent_id`
/// resolving inside the trace with each callee's segment parented by the caller's
/// subsegment, and the service graph is exactly productpage → reviews → ratings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_is_one_fully_linked_trace() {
    let mut mesh = Mesh::start(MeshOptions {
        label: "linked-trace".into(),
        ..MeshOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("the mesh did not start: {e}"));

    if let Err(err) = mesh.send_requests(REQUESTS, "").await {
        panic!("{err}\n{}", mesh.diagnostics().await);
    }
    let traces = mesh
        .linked_bookinfo_traces(REQUESTS)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let graph = service_graph(&traces);
    let edges: Vec<_> = graph.keys().cloned().collect();
    assert_eq!(edges, bookinfo_edges(), "{graph:?}");
    assert!(graph.values().all(|n| *n == REQUESTS), "{graph:?}");
}
