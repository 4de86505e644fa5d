//! gRPC answers (issue 8, item 3): ratings is declared with a gRPC port (HTTP/2 from
//! reviews' sidecar to ratings' sidecar to the app, as Istio configures a `grpc` port),
//! reviews calls it as a gRPC client (`grpc=<code>`), and ratings answers like a gRPC
//! server: HTTP 200 with `grpc-status` in the headers (a trailers-only answer) or in the
//! trailers after a message (`grpc_in=trailers`). A gRPC failure is HTTP 200, so only
//! `grpc-status` tells it: mapped as DESIGN says (UNAVAILABLE → `fault`,
//! RESOURCE_EXHAUSTED → `throttle` + `error`, NOT_FOUND → `error`, OK → nothing), the
//! code recorded as annotation `grpc_status`, the message as the cause.
//!
//! Needs the filter module, the relay binary, Envoy and moto (`make test`).

// Helpers outside `#[test]` functions fail the test with a message, as the tests do.
#![allow(clippy::panic)]

mod common;

use std::collections::BTreeSet;

use common::{linked_traces, only, request_expecting, start_mesh};
use hyper::http::HeaderMap;
use meshray_e2e::MeshOptions;
use meshray_e2e::app::Service;
use meshray_e2e::xray::{Document, Trace};

/// `(query, gRPC code, fault, error, throttle, name of the code)`.
const CASES: [(&str, i64, bool, bool, bool, &str); 5] = [
    ("grpc=14", 14, true, false, false, "UNAVAILABLE"),
    (
        "grpc=14&grpc_in=trailers",
        14,
        true,
        false,
        false,
        "UNAVAILABLE",
    ),
    (
        "grpc=8&grpc_in=trailers",
        8,
        false,
        true,
        true,
        "RESOURCE_EXHAUSTED",
    ),
    ("grpc=5", 5, false, true, false, "NOT_FOUND"),
    ("grpc=0&grpc_in=trailers", 0, false, false, false, "OK"),
];

fn url(doc: &Document) -> &str {
    doc.raw
        .pointer("/http/request/url")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
}

/// The trace whose ratings segment served exactly `query`.
fn trace_of<'a>(traces: &'a [Trace], query: &str) -> &'a Trace {
    traces
        .iter()
        .find(|t| {
            t.single("ratings", false)
                .is_some_and(|d| url(d).ends_with(&format!("?{query}")))
        })
        .unwrap_or_else(|| {
            let shown: Vec<String> = traces.iter().map(Trace::render).collect();
            panic!(
                "no trace whose ratings request is ?{query}\n{}",
                shown.join("\n")
            )
        })
}

/// Each case gives a fully linked trace in which both ratings' segment (its sidecar's
/// inbound side) and reviews' ratings subsegment keep HTTP status 200, carry annotation
/// `grpc_status` = the code, the flags of the code, and for a failure a cause naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_status_in_headers_or_trailers_marks_the_call() {
    let options = MeshOptions {
        grpc_services: BTreeSet::from([Service::Ratings]),
        ..MeshOptions::default()
    };
    let mut mesh = start_mesh("grpc", options).await;
    for (query, ..) in CASES {
        request_expecting(&mut mesh, query, &HeaderMap::new(), 200).await;
        let seen = mesh
            .pod(Service::Ratings)
            .app
            .stats()
            .last_header("content-type");
        assert_eq!(
            seen.as_deref(),
            Some("application/grpc"),
            "?{query}: a gRPC call"
        );
    }
    let traces = linked_traces(&mut mesh, CASES.len()).await;
    for (query, code, fault, error, throttle, name) in CASES {
        let trace = trace_of(&traces, query);
        let shown = trace.render();
        for doc in [only(trace, "ratings", false), only(trace, "ratings", true)] {
            let what = format!("?{query}: ratings (remote {})", doc.is_remote());
            assert_eq!(doc.http_status, Some(200), "{what}\n{shown}");
            assert_eq!(
                doc.raw
                    .pointer("/annotations/grpc_status")
                    .and_then(|v| v.as_i64()),
                Some(code),
                "{what}: annotation grpc_status\n{:?}",
                doc.raw
            );
            assert_eq!(
                (doc.fault, doc.error, doc.throttle),
                (fault, error, throttle),
                "{what}: (fault, error, throttle) for gRPC {name}\n{:?}",
                doc.raw
            );
            let cause = doc
                .raw
                .pointer("/cause/exceptions/0/message")
                .and_then(|v| v.as_str());
            if code == 0 {
                assert_eq!(cause, None, "{what}: no cause for OK\n{:?}", doc.raw);
            } else {
                assert!(
                    cause.is_some_and(|c| c.contains(name)),
                    "{what}: the cause names {name}: {cause:?}\n{:?}",
                    doc.raw
                );
            }
        }
        for (name, remote) in [
            ("productpage", false),
            ("reviews", false),
            ("reviews", true),
        ] {
            let doc = only(trace, name, remote);
            assert!(!doc.fault && !doc.error, "?{query}: {name}\n{shown}");
        }
    }
}
