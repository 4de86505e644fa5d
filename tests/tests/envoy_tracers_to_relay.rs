//! The pipeline without the filter: Envoy's own tracers report straight to the relay, as
//! an Istio `extensionProviders` entry pointing at meshray-relay makes them do, and the
//! relay turns the spans into X-Ray traces.
//!
//! Needs the relay binary, Envoy and moto (`make test`); the filter is not loaded.

// The shared body of the two tests fails them with panics, as `#[test]` functions may.
#![allow(clippy::panic)]

use meshray_e2e::check::bookinfo_edges;
use meshray_e2e::envoy::RelayTracer;
use meshray_e2e::xray::service_graph;
use meshray_e2e::{Mesh, MeshOptions};

const REQUESTS: usize = 5;

/// Starts the filter-less mesh with `tracer` on every listener, sends [`REQUESTS`]
/// requests and checks, in the X-Ray API: one trace per request, segments productpage,
/// reviews and ratings, remote subsegments reviews and ratings, every parent link, the
/// edges productpage → reviews → ratings.
async fn traces_from(tracer: RelayTracer, label: &str) {
    let mut mesh = Mesh::start(MeshOptions {
        with_filter: false,
        tracer_to_relay: Some(tracer),
        label: label.into(),
        ..MeshOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("the mesh did not start: {e}"));

    if let Err(err) = mesh.send_requests(REQUESTS, "").await {
        panic!("{err}\n{}", mesh.diagnostics().await);
    }
    // Envoy's tracers flush every 5 s (or every 5 spans), the relay within its batch interval.
    let traces = mesh
        .linked_bookinfo_traces(REQUESTS)
        .await
        .unwrap_or_else(|e| panic!("{tracer:?}: {e}"));
    let edges: Vec<_> = service_graph(&traces).into_keys().collect();
    assert_eq!(edges, bookinfo_edges(), "{tracer:?}");
}

/// Envoy's Zipkin tracer (Istio's `zipkin` provider) → `POST /api/v2/spans` → X-Ray.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_zipkin_tracer_to_relay_gives_linked_traces() {
    traces_from(RelayTracer::Zipkin, "zipkin-to-relay").await;
}

/// Envoy's OpenTelemetry tracer (Istio's `opentelemetry` provider, OTLP/HTTP) →
/// `POST /v1/traces` → X-Ray.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_opentelemetry_tracer_to_relay_gives_linked_traces() {
    traces_from(RelayTracer::OpenTelemetry, "otel-to-relay").await;
}
