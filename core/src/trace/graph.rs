//! Service-graph edges derived from the documents, as X-Ray derives them: a
//! `namespace: "remote"` subsegment inside or under segment A, and a segment B whose
//! `parent_id` is that subsegment's id, make the edge A → B. This is what the harness and
//! `meshray view` fall back on when `GetServiceGraph` answers nothing (moto never does).
//! [`Trace::calls`] is that derivation; the edges and the service map
//! ([`super::map`]) are built from it.

use std::collections::BTreeMap;
use std::fmt;

use super::document::Document;
use super::tree::Trace;

/// A directed edge of the service graph.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Edge {
    /// The calling service (the segment that holds the remote subsegment).
    pub from: String,
    /// The called service (the segment whose parent is that subsegment).
    pub to: String,
}

impl Edge {
    /// An edge `from → to`.
    pub fn new(from: &str, to: &str) -> Self {
        Self {
            from: from.to_owned(),
            to: to.to_owned(),
        }
    }
}

impl fmt::Display for Edge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.from, self.to)
    }
}

/// One call from a service to another, as the documents show it: a remote subsegment in
/// the caller's segment, and the callee's segment when it names that subsegment as parent
/// (absent for a callee that is not traced, e.g. an external API).
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The caller's segment.
    pub caller: &'a Document,
    /// The remote subsegment: the call as the caller saw it.
    pub subsegment: &'a Document,
    /// The callee's segment, if it was traced and linked.
    pub callee: Option<&'a Document>,
}

impl Trace {
    /// Every call of the trace: each remote subsegment under segment A, with the segment B
    /// whose `parent_id` is that subsegment (one call per such B, or one with no callee).
    pub fn calls(&self) -> Vec<Call<'_>> {
        let segments = self.segments();
        let mut calls = Vec::new();
        for sub in self.remote_subsegments() {
            let Some(caller) = self.enclosing_segment(&sub.id) else {
                continue;
            };
            let mut linked = segments
                .iter()
                .filter(|callee| callee.parent_id.as_deref() == Some(sub.id.as_str()))
                .peekable();
            if linked.peek().is_none() {
                calls.push(Call {
                    caller,
                    subsegment: sub,
                    callee: None,
                });
            }
            for callee in linked {
                calls.push(Call {
                    caller,
                    subsegment: sub,
                    callee: Some(callee),
                });
            }
        }
        calls
    }

    /// Service-graph edges: for each remote subsegment under segment A and each segment B
    /// whose `parent_id` is that subsegment, the edge A → B.
    pub fn edges(&self) -> Vec<Edge> {
        let mut edges: Vec<Edge> = self
            .calls()
            .into_iter()
            .filter_map(|call| Some(Edge::new(&call.caller.name, &call.callee?.name)))
            .collect();
        edges.sort();
        edges
    }
}

/// Edges of all `traces` with how many traces have each.
pub fn service_graph(traces: &[Trace]) -> BTreeMap<Edge, usize> {
    let mut graph = BTreeMap::new();
    for trace in traces {
        let mut edges = trace.edges();
        edges.dedup();
        for edge in edges {
            *graph.entry(edge).or_insert(0) += 1;
        }
    }
    graph
}

/// The service graph, one edge per line with its trace count.
pub fn render_graph(graph: &BTreeMap<Edge, usize>) -> String {
    if graph.is_empty() {
        return "(no edges)\n".to_owned();
    }
    graph
        .iter()
        .map(|(edge, n)| format!("{edge}  ({n} traces)\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::tree::tests::{TRACE, bookinfo, doc, parse};
    use serde_json::json;

    #[test]
    fn linked_trace_has_two_edges() {
        let trace = parse(&bookinfo());
        assert_eq!(
            trace.edges(),
            vec![
                Edge::new("productpage", "reviews"),
                Edge::new("reviews", "ratings")
            ]
        );
    }

    #[test]
    fn embedded_remote_subsegments_make_edges_too() {
        let docs = vec![
            doc(
                json!({"name": "productpage", "id": "a000000000000001", "trace_id": TRACE,
                "start_time": 1.0, "end_time": 2.0, "subsegments": [
                    {"name": "reviews", "namespace": "remote", "id": "a000000000000002",
                     "start_time": 1.1, "end_time": 1.9}]}),
            ),
            doc(
                json!({"name": "reviews", "id": "b000000000000001", "parent_id": "a000000000000002",
                "trace_id": TRACE, "start_time": 1.2, "end_time": 1.8}),
            ),
        ];
        let trace = parse(&docs);
        assert!(
            trace.structure_problems(&[]).is_empty(),
            "{:?}",
            trace.structure_problems(&[])
        );
        assert_eq!(trace.edges(), vec![Edge::new("productpage", "reviews")]);
    }

    #[test]
    fn graph_counts_traces_per_edge() {
        let a = parse(&bookinfo());
        let graph = service_graph(&[a.clone(), a]);
        assert_eq!(graph[&Edge::new("productpage", "reviews")], 2);
        assert!(render_graph(&graph).contains("reviews -> ratings  (2 traces)"));
    }
}
