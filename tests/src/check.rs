//! The checks of a stored trace, shared by the tests and the demo.
//!
//! [`trace_problems`] is everything wrong with any trace: its tree
//! ([`Trace::structure_problems`]) and each document against X-Ray's schema and the
//! relay's validator ([`crate::schema`]).
//!
//! A request productpage → reviews → ratings must give one trace of five documents: a
//! segment per service and a remote subsegment per call, linked so that each callee's
//! segment names the caller's subsegment as parent, which yields exactly the edges
//! productpage → reviews → ratings.

use crate::app::Service;
use crate::xray::{Edge, Trace};

/// Everything wrong with `trace`: a broken tree (bad or duplicate ids, unresolved
/// `parent_id`s, bad times) or a document X-Ray's schema or the relay's validator refuses.
/// Empty when all is well.
pub fn trace_problems(trace: &Trace) -> Vec<String> {
    trace_problems_with_external_parents(trace, &[])
}

/// [`trace_problems`], except that a segment whose `parent_id` is one of `external` may
/// point outside the trace (the span of a caller traced by someone else).
pub fn trace_problems_with_external_parents(trace: &Trace, external: &[&str]) -> Vec<String> {
    let mut problems = trace.structure_problems(external);
    for doc in &trace.documents {
        problems.extend(crate::schema::document_problems(&doc.raw));
    }
    problems
}

/// Documents of one Bookinfo request: 3 segments + 2 independent remote subsegments.
pub const BOOKINFO_DOCUMENTS: usize = 5;

/// The service graph of the sample app.
pub fn bookinfo_edges() -> Vec<Edge> {
    vec![
        Edge::new("productpage", "reviews"),
        Edge::new("reviews", "ratings"),
    ]
}

/// Everything wrong with `trace` as a trace of one request through the sample app; empty
/// when it is fully linked. The request is expected to have
/// come without a trace context (or with one that names no parent span), so the
/// productpage segment must have no `parent_id`. Includes [`trace_problems`].
pub fn bookinfo_trace_problems(trace: &Trace) -> Vec<String> {
    bookinfo_trace_problems_with_caller(trace, None)
}

/// The first of `traces` that is not a fully linked Bookinfo trace, described for a
/// failure message (its problems and its tree); `None` when all are.
pub fn first_unlinked(traces: &[Trace]) -> Option<String> {
    traces.iter().find_map(|trace| {
        let problems = bookinfo_trace_problems(trace);
        (!problems.is_empty()).then(|| {
            format!(
                "trace {} is not fully linked:\n  - {}\n{}",
                trace.id,
                problems.join("\n  - "),
                trace.render()
            )
        })
    })
}

/// As [`bookinfo_trace_problems`], for a request whose client sent its own span: with
/// `caller` set, the productpage segment's `parent_id` must be exactly that span id (which
/// is not a document of the trace); with `None`, it must have no `parent_id`.
pub fn bookinfo_trace_problems_with_caller(trace: &Trace, caller: Option<&str>) -> Vec<String> {
    let mut problems = trace_problems_with_external_parents(trace, caller.as_slice());
    let segments = trace.segments();
    let mut names: Vec<&str> = segments.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    if names != ["productpage", "ratings", "reviews"] {
        problems.push(format!(
            "segments are {names:?}, expected one each of productpage, reviews, ratings"
        ));
    }
    let remote = trace.remote_subsegments();
    let mut remote_names: Vec<&str> = remote.iter().map(|s| s.name.as_str()).collect();
    remote_names.sort_unstable();
    if remote_names != ["ratings", "reviews"] {
        problems.push(format!(
            "remote subsegments are {remote_names:?}, expected reviews and ratings"
        ));
    }
    if let Some(root) = segments.iter().find(|s| s.name == "productpage") {
        match (root.parent_id.as_deref(), caller) {
            (None, None) => {}
            (Some(parent), Some(caller)) if parent == caller => {}
            (Some(parent), None) => problems.push(format!(
                "productpage segment has parent_id {parent}; the request came without a parent span"
            )),
            (parent, Some(caller)) => problems.push(format!(
                "productpage segment has parent_id {parent:?}, expected the client's span {caller}"
            )),
        }
    }
    for caller in [Service::Productpage, Service::Reviews] {
        let Some(callee) = caller.callee() else {
            continue;
        };
        let Some(sub) = remote.iter().find(|s| s.name == callee.name()) else {
            continue;
        };
        match trace.enclosing_segment(&sub.id) {
            Some(seg) if seg.name == caller.name() => {}
            other => problems.push(format!(
                "subsegment {} ({}) sits under {:?}, expected the {caller} segment",
                sub.name,
                sub.id,
                other.map(|s| &s.name)
            )),
        }
        match segments.iter().find(|s| s.name == callee.name()) {
            Some(seg) if seg.parent_id.as_deref() == Some(sub.id.as_str()) => {}
            Some(seg) => problems.push(format!(
                "{callee} segment's parent_id is {:?}, expected {caller}'s subsegment {}",
                seg.parent_id, sub.id
            )),
            None => {}
        }
    }
    let edges = trace.edges();
    if edges != bookinfo_edges() {
        let shown: Vec<String> = edges.iter().map(ToString::to_string).collect();
        problems.push(format!(
            "edges are {shown:?}, expected [productpage -> reviews, reviews -> ratings]"
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TRACE: &str = "1-6563a1b2-0123456789abcdef01234567";

    fn docs(ratings_parent: &str) -> Vec<String> {
        vec![
            json!({"name": "productpage", "id": "a000000000000001", "trace_id": TRACE,
                "start_time": 1.0, "end_time": 2.0}),
            json!({"type": "subsegment", "namespace": "remote", "name": "reviews",
                "id": "a000000000000002", "parent_id": "a000000000000001", "trace_id": TRACE,
                "start_time": 1.1, "end_time": 1.9}),
            json!({"name": "reviews", "id": "b000000000000001", "parent_id": "a000000000000002",
                "trace_id": TRACE, "start_time": 1.2, "end_time": 1.8}),
            json!({"type": "subsegment", "namespace": "remote", "name": "ratings",
                "id": "b000000000000002", "parent_id": "b000000000000001", "trace_id": TRACE,
                "start_time": 1.3, "end_time": 1.7}),
            json!({"name": "ratings", "id": "c000000000000001", "parent_id": ratings_parent,
                "trace_id": TRACE, "start_time": 1.4, "end_time": 1.6}),
        ]
        .into_iter()
        .map(|v| v.to_string())
        .collect()
    }

    #[test]
    fn accepts_a_linked_trace() {
        let docs = docs("b000000000000002");
        let trace = Trace::parse(TRACE, docs.iter().map(String::as_str)).unwrap();
        assert_eq!(bookinfo_trace_problems(&trace), Vec::<String>::new());
    }

    #[test]
    fn a_clients_span_is_accepted_only_where_expected() {
        let mut with_client = docs("b000000000000002");
        with_client[0] = json!({"name": "productpage", "id": "a000000000000001",
            "parent_id": "0123456789abcdef", "trace_id": TRACE,
            "start_time": 1.0, "end_time": 2.0})
        .to_string();
        let trace = Trace::parse(TRACE, with_client.iter().map(String::as_str)).unwrap();
        assert_eq!(
            bookinfo_trace_problems_with_caller(&trace, Some("0123456789abcdef")),
            Vec::<String>::new()
        );
        let without = bookinfo_trace_problems(&trace).join("\n");
        assert!(without.contains("no document of the trace"), "{without}");
        assert!(without.contains("without a parent span"), "{without}");
        let other = bookinfo_trace_problems_with_caller(&trace, Some("fedcba9876543210"));
        assert!(
            other
                .join("\n")
                .contains("expected the client's span fedcba9876543210"),
            "{other:?}"
        );
        let linked =
            Trace::parse(TRACE, docs("b000000000000002").iter().map(String::as_str)).unwrap();
        let missing = bookinfo_trace_problems_with_caller(&linked, Some("0123456789abcdef"));
        assert!(
            missing.join("\n").contains("expected the client's span"),
            "{missing:?}"
        );
    }

    #[test]
    fn rejects_a_callee_linked_to_the_wrong_parent() {
        // ratings names reviews' segment instead of its outbound subsegment.
        let docs = docs("b000000000000001");
        let trace = Trace::parse(TRACE, docs.iter().map(String::as_str)).unwrap();
        let problems = bookinfo_trace_problems(&trace).join("\n");
        assert!(
            problems.contains("ratings segment's parent_id"),
            "{problems}"
        );
        assert!(problems.contains("edges are"), "{problems}");
    }
}
