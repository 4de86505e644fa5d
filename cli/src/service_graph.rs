//! The service map from `GetServiceGraph`, when the API computed one (AWS X-Ray does; moto
//! answers no services, and then the map is derived from the documents with
//! [`ServiceMap::from_traces`]).
//!
//! X-Ray reports, per service and per edge, ok/error/fault/throttle counts, the total
//! response time and a response-time histogram; p50 and p99 are read from the histogram
//! (nearest rank, as [`meshray_core::trace::Stats`] computes them from documents). The
//! `client` pseudo-service (callers outside the graph) is left out.

use std::collections::BTreeMap;

use aws_sdk_xray::types::{EdgeStatistics, HistogramEntry, Service, ServiceStatistics};
use meshray_core::trace::{MapEdge, Node, NodeKind, ServiceMap, Stats};

/// Which source the map came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapSource {
    /// `GetServiceGraph`.
    ServiceGraph,
    /// Derived from the documents (the API answered no services).
    Documents,
}

impl MapSource {
    /// For people: where the map's numbers come from.
    pub fn describe(self) -> &'static str {
        match self {
            MapSource::ServiceGraph => "from GetServiceGraph",
            MapSource::Documents => {
                "derived from the segment documents (GetServiceGraph answered no services)"
            }
        }
    }
}

/// The map of `services`; `None` when there are none worth drawing.
pub fn map_from_services(services: &[Service]) -> Option<ServiceMap> {
    let by_ref: BTreeMap<i32, &Service> = services
        .iter()
        .filter(|s| s.r#type() != Some("client"))
        .filter_map(|s| Some((s.reference_id()?, s)))
        .collect();
    if by_ref.is_empty() {
        return None;
    }
    let mut nodes: Vec<Node> = by_ref
        .values()
        .map(|service| Node {
            name: service_name(service),
            kind: kind_of(service),
            stats: service_stats(
                service.summary_statistics(),
                service.response_time_histogram(),
            ),
        })
        .collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let mut edges: Vec<MapEdge> = by_ref
        .values()
        .flat_map(|service| {
            service.edges().iter().filter_map(|edge| {
                let callee = by_ref.get(&edge.reference_id()?)?;
                Some(MapEdge {
                    from: service_name(service),
                    to: service_name(callee),
                    stats: edge_stats(edge.summary_statistics(), edge.response_time_histogram()),
                })
            })
        })
        .collect();
    edges.sort_by(|a, b| (&a.from, &a.to).cmp(&(&b.from, &b.to)));
    Some(ServiceMap { nodes, edges })
}

fn service_name(service: &Service) -> String {
    service
        .name()
        .or_else(|| service.names().first().map(String::as_str))
        .unwrap_or("(unnamed)")
        .to_owned()
}

fn kind_of(service: &Service) -> NodeKind {
    let name = service.name().unwrap_or_default();
    match service.r#type() {
        _ if name.contains("gateway") => NodeKind::Gateway,
        // X-Ray's types for services that report no segments of their own.
        Some("remote" | "Remote" | "AWS::RemoteService") | None => NodeKind::Remote,
        Some(_) => NodeKind::Service,
    }
}

fn count(value: Option<i64>) -> u64 {
    value.and_then(|v| u64::try_from(v).ok()).unwrap_or(0)
}

/// The counts X-Ray reports for a service or an edge.
struct Counts {
    total: Option<i64>,
    errors: Option<i64>,
    throttles: Option<i64>,
    faults: Option<i64>,
    total_response_time: Option<f64>,
}

fn service_stats(summary: Option<&ServiceStatistics>, histogram: &[HistogramEntry]) -> Stats {
    let counts = summary.map(|s| Counts {
        total: s.total_count(),
        errors: s.error_statistics().and_then(|e| e.total_count()),
        throttles: s.error_statistics().and_then(|e| e.throttle_count()),
        faults: s.fault_statistics().and_then(|f| f.total_count()),
        total_response_time: s.total_response_time(),
    });
    stats(counts, histogram)
}

fn edge_stats(summary: Option<&EdgeStatistics>, histogram: &[HistogramEntry]) -> Stats {
    let counts = summary.map(|s| Counts {
        total: s.total_count(),
        errors: s.error_statistics().and_then(|e| e.total_count()),
        throttles: s.error_statistics().and_then(|e| e.throttle_count()),
        faults: s.fault_statistics().and_then(|f| f.total_count()),
        total_response_time: s.total_response_time(),
    });
    stats(counts, histogram)
}

fn stats(counts: Option<Counts>, histogram: &[HistogramEntry]) -> Stats {
    let Some(counts) = counts else {
        return Stats::default();
    };
    let total = count(counts.total);
    // Counts far below 2^52: exact as f64.
    #[allow(clippy::cast_precision_loss)]
    let mean_ms = counts
        .total_response_time
        .filter(|_| total > 0)
        .map(|seconds| seconds * 1000.0 / total as f64);
    Stats {
        count: total,
        errors: count(counts.errors),
        faults: count(counts.faults),
        throttles: count(counts.throttles),
        mean_ms,
        p50_ms: histogram_percentile(histogram, 50.0),
        p99_ms: histogram_percentile(histogram, 99.0),
    }
}

/// The nearest-rank `p`th percentile of a response-time histogram (values in seconds), in
/// milliseconds.
pub fn histogram_percentile(histogram: &[HistogramEntry], p: f64) -> Option<f64> {
    let mut entries: Vec<(f64, u64)> = histogram
        .iter()
        .map(|e| (e.value(), u64::try_from(e.count()).unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    entries.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: u64 = entries.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return None;
    }
    // Counts far below 2^52; the rank is within 1..=total.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let rank = (((p / 100.0) * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (value, n) in entries {
        seen += n;
        if seen >= rank {
            return Some(value * 1000.0);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use aws_sdk_xray::types::{Edge, ErrorStatistics, FaultStatistics};

    use super::*;

    fn histogram(entries: &[(f64, i32)]) -> Vec<HistogramEntry> {
        entries
            .iter()
            .map(|(value, count)| {
                HistogramEntry::builder()
                    .value(*value)
                    .count(*count)
                    .build()
            })
            .collect()
    }

    #[test]
    fn percentiles_from_a_histogram() {
        let h = histogram(&[(0.010, 50), (0.020, 49), (0.500, 1)]);
        assert_eq!(histogram_percentile(&h, 50.0), Some(10.0));
        assert_eq!(histogram_percentile(&h, 99.0), Some(20.0));
        assert_eq!(histogram_percentile(&h, 100.0), Some(500.0));
        assert_eq!(histogram_percentile(&[], 50.0), None);
    }

    #[test]
    fn services_and_edges_become_the_map() {
        let reviews_stats = ServiceStatistics::builder()
            .total_count(10)
            .ok_count(7)
            .error_statistics(
                ErrorStatistics::builder()
                    .total_count(2)
                    .throttle_count(1)
                    .build(),
            )
            .fault_statistics(FaultStatistics::builder().total_count(1).build())
            .total_response_time(0.5)
            .build();
        let services = vec![
            Service::builder()
                .reference_id(0)
                .name("client")
                .r#type("client")
                .edges(Edge::builder().reference_id(1).build())
                .build(),
            Service::builder()
                .reference_id(1)
                .name("productpage")
                .r#type("AWS::EKS::Container")
                .edges(
                    Edge::builder()
                        .reference_id(2)
                        .summary_statistics(EdgeStatistics::builder().total_count(10).build())
                        .response_time_histogram(
                            HistogramEntry::builder().value(0.03).count(10).build(),
                        )
                        .build(),
                )
                .build(),
            Service::builder()
                .reference_id(2)
                .name("reviews")
                .r#type("AWS::EKS::Container")
                .summary_statistics(reviews_stats)
                .response_time_histogram(HistogramEntry::builder().value(0.05).count(10).build())
                .build(),
        ];
        let map = map_from_services(&services).unwrap();
        let names: Vec<&str> = map.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["productpage", "reviews"]);
        let reviews = &map.node("reviews").unwrap().stats;
        assert_eq!(
            (
                reviews.count,
                reviews.errors,
                reviews.throttles,
                reviews.faults
            ),
            (10, 2, 1, 1)
        );
        assert_eq!(reviews.mean_ms, Some(50.0));
        assert_eq!(reviews.p99_ms, Some(50.0));
        let edge = map.edge("productpage", "reviews").unwrap();
        assert_eq!(edge.stats.count, 10);
        assert_eq!(edge.stats.p50_ms, Some(30.0));
        assert_eq!(map.edges.len(), 1, "the client's edge is left out");
        assert!(map_from_services(&[]).is_none());
    }
}
