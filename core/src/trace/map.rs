//! The service map of a set of traces, as the X-Ray console draws it: a node per service
//! with its request count, error/fault/throttle rates and latency percentiles, and an edge
//! per caller → callee pair with its call count and latency as the caller saw it.
//!
//! [`ServiceMap::from_traces`] derives it from the documents (through [`Trace::calls`]);
//! the `meshray` CLI also fills it from `GetServiceGraph` when the API answers one.

use std::collections::BTreeMap;

use super::document::Document;
use super::tree::Trace;

/// What a node stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NodeKind {
    /// An Istio ingress (or egress) gateway: where traces enter the mesh.
    Gateway,
    /// A service of the mesh (it has segments).
    Service,
    /// Something called but not traced (a `ServiceEntry` host, an external API).
    Remote,
}

impl NodeKind {
    /// `gateway`, `service` or `remote` (CSS classes, labels).
    pub fn label(self) -> &'static str {
        match self {
            NodeKind::Gateway => "gateway",
            NodeKind::Service => "service",
            NodeKind::Remote => "remote",
        }
    }
}

/// Outcome counts and latency of a set of requests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Requests (segments of a node, calls of an edge).
    pub count: u64,
    /// … with `error` (4xx).
    pub errors: u64,
    /// … with `fault` (5xx).
    pub faults: u64,
    /// … with `throttle` (429).
    pub throttles: u64,
    /// Mean duration, milliseconds.
    pub mean_ms: Option<f64>,
    /// Median duration, milliseconds.
    pub p50_ms: Option<f64>,
    /// 99th percentile duration, milliseconds.
    pub p99_ms: Option<f64>,
}

impl Stats {
    /// The stats of `documents`.
    pub fn of<'a>(documents: impl IntoIterator<Item = &'a Document>) -> Self {
        let mut stats = Self::default();
        let mut durations = Vec::new();
        for doc in documents {
            stats.count += 1;
            stats.errors += u64::from(doc.error);
            stats.faults += u64::from(doc.fault);
            stats.throttles += u64::from(doc.throttle);
            durations.extend(doc.duration_ms());
        }
        durations.sort_by(f64::total_cmp);
        if !durations.is_empty() {
            // Counts far below 2^52: exact as f64.
            #[allow(clippy::cast_precision_loss)]
            let n = durations.len() as f64;
            stats.mean_ms = Some(durations.iter().sum::<f64>() / n);
        }
        stats.p50_ms = percentile(&durations, 50.0);
        stats.p99_ms = percentile(&durations, 99.0);
        stats
    }

    /// `part` of [`Stats::count`] as a fraction in 0..=1 (0 when there are no requests).
    pub fn rate(&self, part: u64) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            #[allow(clippy::cast_precision_loss)]
            let rate = part as f64 / self.count as f64;
            rate
        }
    }
}

/// The nearest-rank percentile `p` (0..=100) of ascending `sorted` values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// One node of the map.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The service name.
    pub name: String,
    /// Gateway, service or remote.
    pub kind: NodeKind,
    /// Its requests: the segments it served (for a remote node, the calls it received).
    pub stats: Stats,
}

/// One edge of the map.
#[derive(Debug, Clone, PartialEq)]
pub struct MapEdge {
    /// The caller.
    pub from: String,
    /// The callee.
    pub to: String,
    /// The calls, as the caller's remote subsegments recorded them.
    pub stats: Stats,
}

/// Nodes and edges, each sorted by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceMap {
    /// One per service.
    pub nodes: Vec<Node>,
    /// One per caller → callee pair.
    pub edges: Vec<MapEdge>,
}

impl ServiceMap {
    /// The map derived from the documents of `traces`.
    pub fn from_traces(traces: &[Trace]) -> Self {
        let mut served: BTreeMap<&str, Vec<&Document>> = BTreeMap::new();
        let mut gateways: Vec<&str> = Vec::new();
        let mut calls: BTreeMap<(&str, &str), Vec<&Document>> = BTreeMap::new();
        for trace in traces {
            for segment in trace.segments() {
                served
                    .entry(segment.name.as_str())
                    .or_default()
                    .push(segment);
                if is_gateway(segment) {
                    gateways.push(segment.name.as_str());
                }
            }
            for call in trace.calls() {
                let callee = call
                    .callee
                    .map_or(call.subsegment.name.as_str(), |c| c.name.as_str());
                calls
                    .entry((call.caller.name.as_str(), callee))
                    .or_default()
                    .push(call.subsegment);
            }
        }
        let mut nodes: Vec<Node> = served
            .iter()
            .map(|(name, segments)| Node {
                name: (*name).to_owned(),
                kind: if gateways.contains(name) {
                    NodeKind::Gateway
                } else {
                    NodeKind::Service
                },
                stats: Stats::of(segments.iter().copied()),
            })
            .collect();
        let mut remote: BTreeMap<&str, Vec<&Document>> = BTreeMap::new();
        for ((_, to), subsegments) in &calls {
            if !served.contains_key(to) {
                remote
                    .entry(to)
                    .or_default()
                    .extend(subsegments.iter().copied());
            }
        }
        nodes.extend(remote.into_iter().map(|(name, subsegments)| Node {
            name: name.to_owned(),
            kind: NodeKind::Remote,
            stats: Stats::of(subsegments),
        }));
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let edges = calls
            .into_iter()
            .map(|((from, to), subsegments)| MapEdge {
                from: from.to_owned(),
                to: to.to_owned(),
                stats: Stats::of(subsegments),
            })
            .collect();
        Self { nodes, edges }
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The edge `from → to`.
    pub fn edge(&self, from: &str, to: &str) -> Option<&MapEdge> {
        self.edges.iter().find(|e| e.from == from && e.to == to)
    }
}

/// Whether a segment is an Istio gateway's: its name says so, or its workload runs in
/// `istio-system` (the filter's `istio_namespace` annotation).
pub fn is_gateway(segment: &Document) -> bool {
    segment.name.contains("gateway")
        || segment
            .raw
            .pointer("/annotations/istio_namespace")
            .and_then(serde_json::Value::as_str)
            == Some("istio-system")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::tree::tests::{TRACE, bookinfo, doc, parse};
    use serde_json::json;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), Some(50.0));
        assert_eq!(percentile(&values, 99.0), Some(99.0));
        assert_eq!(percentile(&values, 100.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn bookinfo_map_has_three_nodes_and_two_edges() {
        let traces = [parse(&bookinfo()), parse(&bookinfo())];
        let map = ServiceMap::from_traces(&traces);
        let names: Vec<&str> = map.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["productpage", "ratings", "reviews"]);
        let ratings = map.node("ratings").unwrap();
        assert_eq!(ratings.kind, NodeKind::Service);
        assert_eq!(ratings.stats.count, 2);
        assert_eq!(ratings.stats.faults, 2);
        assert!((ratings.stats.rate(ratings.stats.faults) - 1.0).abs() < 1e-9);
        let edge = map.edge("reviews", "ratings").unwrap();
        assert_eq!(edge.stats.count, 2);
        assert_eq!(edge.stats.faults, 2);
        let p50 = edge.stats.p50_ms.unwrap();
        assert!((p50 - 24.0).abs() < 1e-6, "{p50}");
        assert_eq!(map.edges.len(), 2);
    }

    #[test]
    fn gateways_and_untraced_callees_are_their_own_kinds() {
        let docs = vec![
            doc(
                json!({"name": "istio-ingressgateway", "id": "a000000000000001",
                "trace_id": TRACE, "start_time": 1.0, "end_time": 2.0,
                "annotations": {"istio_namespace": "istio-system"}}),
            ),
            doc(
                json!({"type": "subsegment", "namespace": "remote", "name": "productpage",
                "id": "a000000000000002", "parent_id": "a000000000000001", "trace_id": TRACE,
                "start_time": 1.1, "end_time": 1.9}),
            ),
            doc(json!({"name": "productpage", "id": "b000000000000001",
                "parent_id": "a000000000000002", "trace_id": TRACE,
                "start_time": 1.2, "end_time": 1.8})),
            doc(
                json!({"type": "subsegment", "namespace": "remote", "name": "api.example.com",
                "id": "b000000000000002", "parent_id": "b000000000000001", "trace_id": TRACE,
                "start_time": 1.3, "end_time": 1.4, "throttle": true, "error": true}),
            ),
        ];
        let map = ServiceMap::from_traces(&[parse(&docs)]);
        assert_eq!(
            map.node("istio-ingressgateway").unwrap().kind,
            NodeKind::Gateway
        );
        let api = map.node("api.example.com").unwrap();
        assert_eq!(api.kind, NodeKind::Remote);
        assert_eq!(api.stats.throttles, 1);
        assert!(map.edge("istio-ingressgateway", "productpage").is_some());
        assert!(map.edge("productpage", "api.example.com").is_some());
    }
}
