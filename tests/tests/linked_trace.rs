//! One request through the mesh, one fully linked X-Ray trace.
//!
//! Needs the filter module, the relay binary, Envoy and moto (`make test` builds and
//! installs them first).

mod common;

use common::{linked_traces, linked_traces_of_requests, request_expecting, start_mesh};
use meshray_e2e::MeshOptions;
use meshray_e2e::app::Service;
use meshray_e2e::check::bookinfo_edges;
use meshray_e2e::http::header_map;
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

/// Requests that each open their own connection land on both of the sidecar's worker
/// threads (Envoy runs one filter VM per worker; the kernel spreads connections over the
/// workers' listeners), and still give one trace each: every VM mints its own ids. Two
/// VMs once drew the same random sequence (their generators were seeded from the clock),
/// so their first requests got the same trace id and merged into one trace. With 12 connections, all landing on one worker (the
/// only way the bug could pass unseen) has odds of 1 in 2,048.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_both_workers_get_their_own_ids() {
    const CONNECTIONS: usize = 12;
    let mut mesh = start_mesh("worker-ids", MeshOptions::default()).await;
    let close = header_map(&[("connection", "close")]).unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..CONNECTIONS {
        request_expecting(&mut mesh, "", &close, 200).await;
    }
    let stats = mesh
        .pod(Service::Productpage)
        .sidecar
        .stats("downstream_cx_total")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let per_worker: Vec<(&String, &u64)> = stats
        .0
        .iter()
        .filter(|(name, count)| name.contains(".worker_") && **count > 0)
        .collect();
    assert!(
        per_worker.len() >= 2,
        "the connections did not reach both workers: {per_worker:?}"
    );
    let traces = linked_traces(&mut mesh, CONNECTIONS).await;
    let mut ids: Vec<&str> = traces
        .iter()
        .flat_map(|trace| trace.documents.iter().map(|doc| doc.id.as_str()))
        .collect();
    let documents = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), documents, "a document id repeats across traces");
}
