//! The meshray filter next to Envoy's own Zipkin tracer (Istio's default provider).
//!
//! Needs the filter module, the relay binary, Envoy and moto (`make test`).

use std::time::Duration;

mod common;

use common::{linked_traces_of_requests, start_mesh};
use meshray_e2e::MeshOptions;
use meshray_e2e::check::bookinfo_edges;
use meshray_e2e::xray::service_graph;

const REQUESTS: usize = 10;
/// Zipkin spans per request with `shared_span_context: false`: a SERVER span at each
/// inbound sidecar (3) and a CLIENT span at each caller's outbound sidecar (2).
const SPANS_PER_REQUEST: usize = 5;

/// With Envoy's Zipkin tracer on every listener (which rewrites `x-b3-*` on the way
/// out), every request still gives exactly one fully linked X-Ray trace with the edges
/// productpage → reviews → ratings, and the tracer really ran: the in-test collector
/// received its spans.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_stay_linked_with_envoys_zipkin_tracer_on() {
    let options = MeshOptions {
        zipkin_tracer: true,
        ..MeshOptions::default()
    };
    let mut mesh = start_mesh("zipkin-tracer", options).await;
    let traces = linked_traces_of_requests(&mut mesh, REQUESTS, "").await;
    let edges: Vec<_> = service_graph(&traces).into_keys().collect();
    assert_eq!(edges, bookinfo_edges());

    // Envoy flushes Zipkin reports every 5 spans or 5 s.
    let zipkin = mesh.zipkin().expect("zipkin sink is on");
    let spans = zipkin
        .wait_for_spans(REQUESTS * SPANS_PER_REQUEST, Duration::from_secs(15))
        .await;
    assert!(
        spans >= REQUESTS * SPANS_PER_REQUEST,
        "the Zipkin collector received {spans} spans, expected at least {}; posts {:?}",
        REQUESTS * SPANS_PER_REQUEST,
        zipkin.post_count()
    );
    assert_eq!(zipkin.post_count().1, 0, "posts that were not a JSON array");
}
