//! Traces that enter the mesh through an Istio ingress gateway (issue 8, item 1).
//!
//! `istio-ingressgateway` is an Envoy with node id `router~…`, one listener of direction
//! OUTBOUND and only `outbound|…` clusters: every request it serves is an outbound call
//! with no segment of ours. Its document is the trace's root segment, named after the
//! gateway, carrying the request's `http` block and the response's status flags, with the
//! call to productpage inside it — what the X-Ray console's trace list and filter
//! expressions (`http.status = 503`, `fault`) read.
//!
//! Needs the filter module, the relay binary, Envoy and moto (`make test`).

// Helpers outside `#[test]` functions fail the test with a message, as the tests do.
#![allow(clippy::panic)]

mod common;

use std::time::Duration;

use common::{only, request_expecting, start_mesh};
use hyper::http::HeaderMap;
use meshray_core::trace::{NodeKind, ServiceMap};
use meshray_e2e::check::trace_problems;
use meshray_e2e::xray::{Document, Expectation, Trace};
use meshray_e2e::{Mesh, MeshOptions};

const GATEWAY: &str = "istio-ingressgateway";

/// Sends `GET /productpage?{query}` to the gateway; the answer must have `status`.
async fn request(mesh: &mut Mesh, query: &str, status: u16) {
    request_expecting(mesh, query, &HeaderMap::new(), status).await;
}

/// Waits until one more trace with at least `documents` top-level documents has arrived
/// (`before` were there already); returns all traces.
async fn wait_for(mesh: &mut Mesh, before: usize, documents: usize) -> Vec<Trace> {
    let expect = Expectation {
        traces: before + 1,
        documents_per_trace: documents,
    };
    let collected = mesh.wait_for_traces(expect, Duration::from_secs(60)).await;
    if !collected.complete {
        panic!(
            "expected {} traces of at least {documents} documents\n{}\n{}",
            before + 1,
            collected.describe(),
            mesh.diagnostics().await
        );
    }
    collected.traces
}

fn request_field<'a>(doc: &'a Document, field: &str) -> Option<&'a str> {
    doc.raw.pointer(&format!("/http/request/{field}"))?.as_str()
}

/// The gateway's root segment of `trace`: no parent, the request's method and URL (with
/// `query`), the response `status`, and `fault` exactly when it is a 5xx; productpage's
/// segment hangs under the gateway's productpage subsegment.
fn check_root(trace: &Trace, query: &str, status: u64) {
    let shown = trace.render();
    assert!(
        trace_problems(trace).is_empty(),
        "{:?}\n{shown}",
        trace_problems(trace)
    );
    let root = trace
        .root_segment()
        .unwrap_or_else(|| panic!("no root segment\n{shown}"));
    assert_eq!(
        root.name, GATEWAY,
        "root segment is named after the gateway\n{shown}"
    );
    assert_eq!(root.parent_id, None, "{shown}");
    assert_eq!(request_field(root, "method"), Some("GET"), "{:?}", root.raw);
    let url = request_field(root, "url").unwrap_or_default();
    assert!(
        url.contains("/productpage") && url.contains(query),
        "root segment's http.request.url is {url:?}, expected the request's URL\n{:?}",
        root.raw
    );
    assert_eq!(
        root.http_status,
        Some(status),
        "root status\n{:?}",
        root.raw
    );
    assert_eq!(root.fault, status >= 500, "root fault\n{:?}", root.raw);
    assert!(!root.error && !root.throttle, "{:?}", root.raw);

    let call = only(trace, "productpage", true);
    assert_eq!(
        trace.enclosing_segment(&call.id).map(|s| s.name.as_str()),
        Some(GATEWAY),
        "the call to productpage sits in the gateway's segment\n{shown}"
    );
    assert_eq!(call.http_status, Some(status), "{shown}");
    let productpage = only(trace, "productpage", false);
    assert_eq!(
        productpage.parent_id.as_deref(),
        Some(call.id.as_str()),
        "productpage's segment hangs under the gateway's call\n{shown}"
    );
}

/// Through the gateway, a page (200) and a failing productpage (503, `fail=productpage`)
/// each give a trace whose root segment is the gateway's, with the request's `http` block
/// and, for the 503, `fault`; the page's trace holds the whole chain below it. The
/// service map derived from both has the gateway as a gateway node (2 requests, 1 fault)
/// with an edge to productpage (2 calls, 1 fault) and productpage → reviews → ratings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateways_root_segment_carries_the_request_and_its_outcome() {
    let options = MeshOptions {
        gateway: true,
        ..MeshOptions::default()
    };
    let mut mesh = start_mesh("gateway", options).await;
    let gateway_url = mesh.productpage_url();
    let gateway_addr = mesh.gateway().map(|g| g.inbound_addr().to_string());
    assert!(
        gateway_addr.is_some_and(|addr| gateway_url.contains(&addr)),
        "clients call the gateway: {gateway_url}"
    );

    // The failing request first: its trace (gateway + productpage) is complete once it
    // has 2 documents.
    request(&mut mesh, "fail=productpage", 503).await;
    let traces = wait_for(&mut mesh, 0, 2).await;
    assert_eq!(traces.len(), 1, "{}", traces[0].render());
    // The page: gateway, productpage, reviews' call and segment, ratings' call and segment.
    request(&mut mesh, "", 200).await;
    let traces = wait_for(&mut mesh, 0, 6).await;
    assert_eq!(traces.len(), 2, "one trace per request");
    let (page, failed): (Vec<&Trace>, Vec<&Trace>) = traces
        .iter()
        .partition(|t| t.single("ratings", false).is_some());
    assert_eq!((page.len(), failed.len()), (1, 1));
    check_root(page[0], "", 200);
    check_root(failed[0], "fail=productpage", 503);
    assert!(only(failed[0], "productpage", false).fault);

    let map = ServiceMap::from_traces(&traces);
    let gateway = map
        .node(GATEWAY)
        .unwrap_or_else(|| panic!("no gateway node in {map:?}"));
    assert_eq!(gateway.kind, NodeKind::Gateway, "{map:?}");
    assert_eq!(
        (gateway.stats.count, gateway.stats.faults),
        (2, 1),
        "{map:?}"
    );
    let edge = map
        .edge(GATEWAY, "productpage")
        .unwrap_or_else(|| panic!("no edge gateway → productpage in {map:?}"));
    assert_eq!((edge.stats.count, edge.stats.faults), (2, 1), "{map:?}");
    for (from, to) in [("productpage", "reviews"), ("reviews", "ratings")] {
        assert_eq!(
            map.edge(from, to).map(|e| e.stats.count),
            Some(1),
            "{from} → {to} in {map:?}"
        );
    }
    assert_eq!(map.edges.len(), 3, "{map:?}");
}
