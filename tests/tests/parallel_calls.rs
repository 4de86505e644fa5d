//! Concurrent requests of one trace in one pod (issue 8, item 2): productpage calls
//! reviews twice in parallel (`fanout=2`), and each reviews request calls ratings. Both
//! reviews requests are in flight at reviews' sidecar (`delay_ms` holds them) when their
//! calls to ratings leave, so "the latest segment of the trace" would put both calls under
//! the same reviews segment; the forwarded `traceparent` / `b3` names the right one.
//! Once with Envoy's Zipkin tracer on (Istio's default; it rewrites `x-b3-*` on the way)
//! and once off.
//!
//! Needs the filter module, the relay binary, Envoy and moto (`make test`).

// Helpers outside `#[test]` functions fail the test with a message, as the tests do.
#![allow(clippy::panic)]

mod common;

use std::time::Duration;

use common::{request_expecting, start_mesh};
use hyper::http::HeaderMap;
use meshray_e2e::MeshOptions;
use meshray_e2e::check::trace_problems;
use meshray_e2e::xray::{Document, Expectation, Trace};

/// Parallel calls per page.
const FANOUT: usize = 2;
/// Pages requested.
const REQUESTS: usize = 2;
/// Documents of one page: productpage's segment, then per call reviews' subsegment and
/// segment and ratings' subsegment and segment.
const DOCUMENTS: usize = 1 + 4 * FANOUT;
/// Each caller holds its call this long, so parallel requests overlap at the callee.
const QUERY: &str = "fanout=2&delay_ms=150";

/// The `call=<i>` of a document's request URL.
fn call_of(doc: &Document) -> Option<String> {
    let url = doc.raw.pointer("/http/request/url")?.as_str()?;
    let (_, query) = url.split_once('?')?;
    query
        .split('&')
        .find_map(|p| p.strip_prefix("call="))
        .map(str::to_owned)
}

/// Everything wrong with the links of one fanned-out page: for each call `i`, reviews'
/// subsegment for `call=i` is the parent of the reviews segment that served `call=i`,
/// which encloses exactly one ratings subsegment — for `call=i` — parent of the ratings
/// segment of `call=i`.
fn link_problems(trace: &Trace) -> Vec<String> {
    let mut problems = trace_problems(trace);
    let of = |name: &str, remote: bool, call: &str| -> Vec<&Document> {
        trace
            .all()
            .into_iter()
            .filter(|d| d.name == name && d.is_remote() == remote)
            .filter(|d| call_of(d).as_deref() == Some(call))
            .collect()
    };
    for i in 0..FANOUT {
        let call = i.to_string();
        let (Some(reviews_call), Some(reviews), Some(ratings_call), Some(ratings)) = (
            of("reviews", true, &call).first().copied(),
            of("reviews", false, &call).first().copied(),
            of("ratings", true, &call).first().copied(),
            of("ratings", false, &call).first().copied(),
        ) else {
            problems.push(format!("call={call}: a document is missing"));
            continue;
        };
        if reviews.parent_id.as_deref() != Some(reviews_call.id.as_str()) {
            problems.push(format!(
                "call={call}: the reviews segment's parent is {:?}, not productpage's call {}",
                reviews.parent_id, reviews_call.id
            ));
        }
        let under = trace
            .enclosing_segment(&ratings_call.id)
            .map(|s| s.id.as_str());
        if under != Some(reviews.id.as_str()) {
            problems.push(format!(
                "call={call}: the ratings call {} hangs under segment {under:?}, not under \
                 the reviews segment {} that made it",
                ratings_call.id, reviews.id
            ));
        }
        if ratings.parent_id.as_deref() != Some(ratings_call.id.as_str()) {
            problems.push(format!(
                "call={call}: the ratings segment's parent is {:?}, not reviews' call {}",
                ratings.parent_id, ratings_call.id
            ));
        }
    }
    problems
}

async fn each_call_hangs_under_the_segment_that_made_it(label: &str, zipkin_tracer: bool) {
    let options = MeshOptions {
        zipkin_tracer,
        ..MeshOptions::default()
    };
    let mut mesh = start_mesh(label, options).await;
    for i in 0..REQUESTS {
        let page = request_expecting(&mut mesh, QUERY, &HeaderMap::new(), 200).await;
        assert!(!page.text().contains("error"), "page {i}: {}", page.text());
    }
    let expect = Expectation {
        traces: REQUESTS,
        documents_per_trace: DOCUMENTS,
    };
    let collected = mesh.wait_for_traces(expect, Duration::from_secs(60)).await;
    if !collected.complete || collected.traces.len() != REQUESTS {
        panic!(
            "expected {REQUESTS} traces of {DOCUMENTS} documents\n{}\n{}",
            collected.describe(),
            mesh.diagnostics().await
        );
    }
    for trace in &collected.traces {
        assert_eq!(trace.documents.len(), DOCUMENTS, "{}", trace.render());
        let problems = link_problems(trace);
        assert!(
            problems.is_empty(),
            "trace {}:\n  - {}\n{}",
            trace.id,
            problems.join("\n  - "),
            trace.render()
        );
    }
}

/// Two pages, each calling reviews twice in parallel: in each trace, every ratings call
/// hangs under the reviews segment that made it, and every segment under its caller's
/// subsegment (no Zipkin tracer: the app forwards the filter's `traceparent` and B3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_calls_hang_under_their_own_segment() {
    each_call_hangs_under_the_segment_that_made_it("parallel-calls", false).await;
}

/// As above with Envoy's Zipkin tracer on every listener, which rewrites `x-b3-*` between
/// the filter and the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_calls_hang_under_their_own_segment_with_zipkin() {
    each_call_hangs_under_the_segment_that_made_it("parallel-calls-zipkin", true).await;
}
