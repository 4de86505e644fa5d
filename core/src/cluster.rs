//! Classification of a request from the name of the upstream cluster Envoy routed it to.
//!
//! Istio names clusters `direction|port|subset|host`. The inbound form changed
//! in Istio 1.9 (`inbound|9080|http|productpage.default.svc.cluster.local` →
//! `inbound|9080||`). Traffic Istio does not know lands in passthrough or
//! black-hole clusters, and anything else falls back to Envoy's
//! `listener_direction`.

/// Whether the sidecar received the request for its workload or sent it for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The workload serves the request: an X-Ray segment.
    Inbound,
    /// The workload calls another service: an X-Ray subsegment.
    Outbound,
}

/// The service an outbound request goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteService {
    /// The name X-Ray shows: the Kubernetes service name (`reviews`) for mesh
    /// services, else the host (`api.example.com`).
    pub name: String,
    /// The Kubernetes namespace, for `*.svc.*` hosts.
    pub namespace: Option<String>,
    /// The DestinationRule subset (`v1`), when the cluster names one.
    pub subset: Option<String>,
    /// The service port, when the cluster names one.
    pub port: Option<u16>,
    /// The full host as Istio or the `:authority` named it.
    pub host: String,
}

/// Which kind of cluster name matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterKind {
    /// `inbound|…` (any Istio version) or `inbound-vip|…`.
    IstioInbound,
    /// `outbound|…` or the SNI form `outbound_.port_.subset_.host`.
    IstioOutbound,
    /// `InboundPassthroughCluster` and its IPv4/IPv6 variants.
    InboundPassthrough,
    /// `PassthroughCluster`: traffic to hosts Istio does not know.
    Passthrough,
    /// `BlackHoleCluster`: traffic Istio refuses (REGISTRY_ONLY).
    BlackHole,
    /// Anything else, classified by `listener_direction`.
    Other,
}

/// The outcome of classification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// Inbound or outbound.
    pub direction: Direction,
    /// The remote service of an outbound request.
    pub remote: Option<RemoteService>,
    /// Which naming form matched.
    pub kind: ClusterKind,
}

impl Classification {
    /// Whether the request is a fault by construction (`BlackHoleCluster`).
    pub fn is_blackholed(&self) -> bool {
        self.kind == ClusterKind::BlackHole
    }
}

/// Envoy's `listener_direction` value for inbound listeners.
pub const LISTENER_DIRECTION_INBOUND: i64 = 1;
/// Envoy's `listener_direction` value for outbound listeners.
pub const LISTENER_DIRECTION_OUTBOUND: i64 = 2;

/// Classifies a request.
///
/// `cluster_name` is Envoy's `xds.cluster_name`; `listener_direction` the
/// `xds.listener_direction` property (1 inbound, 2 outbound), read only when
/// the name alone does not tell; `authority` the request's `:authority`.
pub fn classify(
    cluster_name: Option<&str>,
    listener_direction: impl FnOnce() -> Option<i64>,
    authority: Option<&str>,
) -> Classification {
    let name = cluster_name.unwrap_or_default();
    if let Some(rest) = name.strip_prefix("outbound|") {
        return istio_outbound(rest.split('|'), authority);
    }
    if let Some(rest) = name.strip_prefix("outbound_.") {
        // SNI-style name used for TLS passthrough: outbound_.9080_.v1_.reviews.default.svc.cluster.local
        return istio_outbound(rest.splitn(3, "_."), authority);
    }
    if name.starts_with("inbound|") || name.starts_with("inbound-vip|") {
        return inbound(ClusterKind::IstioInbound);
    }
    match name {
        "InboundPassthroughCluster"
        | "InboundPassthroughClusterIpv4"
        | "InboundPassthroughClusterIpv6" => inbound(ClusterKind::InboundPassthrough),
        "PassthroughCluster" => outbound_to_authority(ClusterKind::Passthrough, authority),
        "BlackHoleCluster" => outbound_to_authority(ClusterKind::BlackHole, authority),
        _ => match listener_direction() {
            Some(LISTENER_DIRECTION_OUTBOUND) => {
                outbound_to_authority(ClusterKind::Other, authority)
            }
            _ => inbound(ClusterKind::Other),
        },
    }
}

fn inbound(kind: ClusterKind) -> Classification {
    Classification {
        direction: Direction::Inbound,
        remote: None,
        kind,
    }
}

/// `port|subset|host` after the `outbound|` prefix (or the SNI form's parts).
fn istio_outbound<'a>(
    mut parts: impl Iterator<Item = &'a str>,
    authority: Option<&str>,
) -> Classification {
    let port = parts
        .next()
        .and_then(|p| p.trim_end_matches('_').parse().ok());
    let subset = parts
        .next()
        .map(|s| s.trim_end_matches('_'))
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    // A wildcard ServiceEntry host (`*.example.com`) names no one host: the
    // request's `:authority` says which was called.
    let host = parts
        .next()
        .filter(|h| !h.is_empty() && !h.starts_with('*'));
    let mut remote = match host {
        Some(host) => remote_from_host(host),
        None => remote_from_authority(authority),
    };
    remote.port = remote.port.or(port);
    remote.subset = subset;
    Classification {
        direction: Direction::Outbound,
        remote: Some(remote),
        kind: ClusterKind::IstioOutbound,
    }
}

fn outbound_to_authority(kind: ClusterKind, authority: Option<&str>) -> Classification {
    Classification {
        direction: Direction::Outbound,
        remote: Some(remote_from_authority(authority)),
        kind,
    }
}

/// A remote service from a host. Only an in-cluster name
/// `{service}.{namespace}.svc.{domain}` (`reviews.default.svc.cluster.local`) is
/// split into `reviews` in `default`; any other host (`api.example.com`,
/// `api.svc.example.com`) is its own name.
pub fn remote_from_host(host: &str) -> RemoteService {
    let mut labels = host.split('.');
    let in_cluster = match (labels.next(), labels.next(), labels.next(), labels.next()) {
        (Some(service), Some(namespace), Some("svc"), Some(domain))
            if !service.is_empty() && !namespace.is_empty() && !domain.is_empty() =>
        {
            Some((service, namespace))
        }
        _ => None,
    };
    let (name, namespace) = match in_cluster {
        Some((service, namespace)) => (service.to_owned(), Some(namespace.to_owned())),
        None => (host.to_owned(), None),
    };
    RemoteService {
        name,
        namespace,
        subset: None,
        port: None,
        host: host.to_owned(),
    }
}

/// A remote service from `:authority` (`host[:port]`, IPv6 in brackets).
fn remote_from_authority(authority: Option<&str>) -> RemoteService {
    let authority = authority.unwrap_or_default();
    let (host, port) = split_authority(authority);
    let mut remote = remote_from_host(if host.is_empty() { "unknown" } else { host });
    remote.port = port;
    remote
}

/// Splits `host:port`, `[v6]:port`, `host` into host and port.
pub fn split_authority(authority: &str) -> (&str, Option<u16>) {
    if let Some(rest) = authority.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, tail)) => (host, tail.strip_prefix(':').and_then(|p| p.parse().ok())),
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(port) => (host, Some(port)),
            Err(_) => (authority, None),
        },
        _ => (authority, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// name, namespace, subset, port
    type ExpectedRemote = (
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        Option<u16>,
    );

    struct Case {
        cluster: &'static str,
        listener_direction: Option<i64>,
        authority: &'static str,
        direction: Direction,
        kind: ClusterKind,
        remote: Option<ExpectedRemote>,
    }

    #[test]
    fn every_cluster_form_is_classified() {
        use ClusterKind::*;
        use Direction::*;
        let cases = [
            Case {
                cluster: "inbound|9080|http|productpage.default.svc.cluster.local",
                listener_direction: None,
                authority: "productpage:9080",
                direction: Inbound,
                kind: IstioInbound,
                remote: None,
            },
            Case {
                cluster: "inbound|9080||",
                listener_direction: None,
                authority: "productpage:9080",
                direction: Inbound,
                kind: IstioInbound,
                remote: None,
            },
            Case {
                cluster: "inbound-vip|9080|http|reviews.default.svc.cluster.local",
                listener_direction: None,
                authority: "",
                direction: Inbound,
                kind: IstioInbound,
                remote: None,
            },
            Case {
                cluster: "outbound|9080|v1|reviews.default.svc.cluster.local",
                listener_direction: None,
                authority: "reviews:9080",
                direction: Outbound,
                kind: IstioOutbound,
                remote: Some(("reviews", Some("default"), Some("v1"), Some(9080))),
            },
            Case {
                cluster: "outbound|9080||reviews.default.svc.cluster.local",
                listener_direction: None,
                authority: "reviews:9080",
                direction: Outbound,
                kind: IstioOutbound,
                remote: Some(("reviews", Some("default"), None, Some(9080))),
            },
            Case {
                cluster: "outbound|443||api.example.com",
                listener_direction: None,
                authority: "api.example.com",
                direction: Outbound,
                kind: IstioOutbound,
                remote: Some(("api.example.com", None, None, Some(443))),
            },
            Case {
                cluster: "outbound_.9080_.v2_.ratings.prod.svc.cluster.local",
                listener_direction: None,
                authority: "",
                direction: Outbound,
                kind: IstioOutbound,
                remote: Some(("ratings", Some("prod"), Some("v2"), Some(9080))),
            },
            Case {
                cluster: "InboundPassthroughCluster",
                listener_direction: None,
                authority: "10.0.0.1:8000",
                direction: Inbound,
                kind: InboundPassthrough,
                remote: None,
            },
            Case {
                cluster: "InboundPassthroughClusterIpv4",
                listener_direction: None,
                authority: "",
                direction: Inbound,
                kind: InboundPassthrough,
                remote: None,
            },
            Case {
                cluster: "InboundPassthroughClusterIpv6",
                listener_direction: None,
                authority: "",
                direction: Inbound,
                kind: InboundPassthrough,
                remote: None,
            },
            Case {
                cluster: "PassthroughCluster",
                listener_direction: None,
                authority: "httpbin.org:80",
                direction: Outbound,
                kind: Passthrough,
                remote: Some(("httpbin.org", None, None, Some(80))),
            },
            Case {
                cluster: "BlackHoleCluster",
                listener_direction: None,
                authority: "blocked.example.com",
                direction: Outbound,
                kind: BlackHole,
                remote: Some(("blocked.example.com", None, None, None)),
            },
            Case {
                cluster: "my-static-cluster",
                listener_direction: Some(2),
                authority: "[::1]:8443",
                direction: Outbound,
                kind: Other,
                remote: Some(("::1", None, None, Some(8443))),
            },
            Case {
                cluster: "my-static-cluster",
                listener_direction: Some(1),
                authority: "x",
                direction: Inbound,
                kind: Other,
                remote: None,
            },
            Case {
                cluster: "my-static-cluster",
                listener_direction: None,
                authority: "x",
                direction: Inbound,
                kind: Other,
                remote: None,
            },
            Case {
                cluster: "",
                listener_direction: Some(2),
                authority: "",
                direction: Outbound,
                kind: Other,
                remote: Some(("unknown", None, None, None)),
            },
            Case {
                cluster: "outbound|9080||",
                listener_direction: None,
                authority: "details.default.svc.cluster.local:9080",
                direction: Outbound,
                kind: IstioOutbound,
                remote: Some(("details", Some("default"), None, Some(9080))),
            },
        ];
        for case in cases {
            let got = classify(
                Some(case.cluster),
                || case.listener_direction,
                Some(case.authority),
            );
            assert_eq!(got.direction, case.direction, "{}", case.cluster);
            assert_eq!(got.kind, case.kind, "{}", case.cluster);
            let remote = got.remote.as_ref().map(|r| {
                (
                    r.name.as_str(),
                    r.namespace.as_deref(),
                    r.subset.as_deref(),
                    r.port,
                )
            });
            assert_eq!(remote, case.remote, "{}", case.cluster);
        }
    }

    /// Only `{svc}.{ns}.svc.{domain}` is an in-cluster name; a ServiceEntry host
    /// that merely contains `.svc.` stays whole, and a wildcard host uses `:authority`.
    #[test]
    fn service_entry_hosts_are_split_only_when_in_cluster() {
        let cases = [
            (
                "outbound|443||api.svc.example.com",
                "",
                "api.svc.example.com",
                None,
            ),
            ("outbound|80||svc.example.com", "", "svc.example.com", None),
            (
                "outbound|80||reviews.default.svc",
                "",
                "reviews.default.svc",
                None,
            ),
            (
                "outbound|80||a.b.c.svc.cluster.local",
                "",
                "a.b.c.svc.cluster.local",
                None,
            ),
            (
                "outbound|9080||ratings.prod.svc.corp.internal",
                "",
                "ratings",
                Some("prod"),
            ),
            (
                "outbound|443||*.example.com",
                "shop.example.com",
                "shop.example.com",
                None,
            ),
            ("outbound|443||*.example.com", "", "unknown", None),
        ];
        for (cluster, authority, name, namespace) in cases {
            let remote = classify(Some(cluster), || None, Some(authority))
                .remote
                .unwrap();
            assert_eq!(remote.name, name, "{cluster}");
            assert_eq!(remote.namespace.as_deref(), namespace, "{cluster}");
        }
    }

    #[test]
    fn listener_direction_is_read_only_when_needed() {
        let got = classify(
            Some("outbound|9080||reviews.default.svc.cluster.local"),
            || unreachable!(),
            None,
        );
        assert_eq!(got.direction, Direction::Outbound);
        assert!(classify(Some("BlackHoleCluster"), || None, None).is_blackholed());
    }

    #[test]
    fn authority_forms() {
        assert_eq!(split_authority("a:80"), ("a", Some(80)));
        assert_eq!(split_authority("a"), ("a", None));
        assert_eq!(split_authority("[::1]:80"), ("::1", Some(80)));
        assert_eq!(split_authority("::1"), ("::1", None));
        assert_eq!(split_authority("a:notaport"), ("a:notaport", None));
    }
}
