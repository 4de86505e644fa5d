//! The bootstrap of an Envoy sidecar shaped like Istio's.
//!
//! Each sidecar (one per pod) gets what an Istio proxy of the pod would get from istiod,
//! reduced to static resources:
//! - node id `sidecar~127.0.0.1~<pod>.<ns>~<ns>.svc.cluster.local` and node metadata
//!   `WORKLOAD_NAME`, `NAMESPACE`, `LABELS` (incl. `app`, `version`,
//!   `service.istio.io/canonical-name`/`-revision`), `CLUSTER_ID`, `MESH_ID`, …;
//! - an INBOUND listener routing to cluster `inbound|9080||` (the app);
//! - an OUTBOUND listener (route config `9080`) routing by `:authority` to
//!   `outbound|9080||<svc>.<ns>.svc.cluster.local` (the callee's inbound listener), and
//!   everything else to `BlackHoleCluster` (REGISTRY_ONLY);
//! - the relay's Service cluster [`RELAY_CLUSTER`];
//! - the meshray wasm filter before the router on both listeners (optional), and
//!   Envoy's Zipkin tracer on both listeners (optional), as Istio's default provider.
//!
//! An ingress gateway ([`Workload::ingress_gateway`]) is shaped as istiod configures
//! `istio-ingressgateway`: node id `router~…`, no app and no inbound side, one listener
//! [`GATEWAY_LISTENER`] with direction OUTBOUND routing to `outbound|9080||<svc>…` clusters.
//!
//! A service declared with a gRPC port ([`Upstream::http2`], [`SidecarSpec::app_http2`])
//! gets HTTP/2 on its callers' outbound cluster and on its own inbound cluster, as Istio
//! configures a port of protocol `grpc`.
//!
//! Every listener and the admin address bind 127.0.0.1 port 0.
//! Istio's default retry policy (retry 503 twice) is left out so every call is one attempt.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::error::{HarnessError, Result};

/// The relay's cluster as Istio names the Service `meshray-relay.meshray:8080`: the filter's
/// default `relay_cluster`, so the tests' plugin configs need not name it.
pub const RELAY_CLUSTER: &str = meshray_filter::config::DEFAULT_RELAY_CLUSTER;
/// The relay Service's authority: the filter's default `relay_authority`.
pub const RELAY_AUTHORITY: &str = meshray_filter::config::DEFAULT_RELAY_AUTHORITY;
/// The Zipkin collector's cluster (Istio's `zipkin.istio-system:9411`).
pub const ZIPKIN_CLUSTER: &str = "outbound|9411||zipkin.istio-system.svc.cluster.local";
/// The inbound cluster of the app port, as Istio ≥ 1.9 names it.
pub const INBOUND_CLUSTER: &str = "inbound|9080||";
/// The service port every sample service is declared on.
pub const SERVICE_PORT: u16 = 9080;
/// The name of the inbound listener.
pub const INBOUND_LISTENER: &str = "virtualInbound";
/// The name of the outbound listener.
pub const OUTBOUND_LISTENER: &str = "0.0.0.0_9080";
/// The name of an ingress gateway's listener (Istio's for a `Gateway` on port 8080).
pub const GATEWAY_LISTENER: &str = "0.0.0.0_8080";
/// `CLUSTER_ID` node metadata.
pub const CLUSTER_ID: &str = "Kubernetes";
/// `MESH_ID` node metadata (Istio's default trust domain).
pub const MESH_ID: &str = "cluster.local";

// === Workload ===

/// The Kubernetes identity of a pod: service, version, namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// The service (and `app` label), e.g. `reviews`.
    pub service: String,
    /// The `version` label, e.g. `v1`.
    pub version: String,
    /// The namespace, e.g. `default`.
    pub namespace: String,
    /// An Istio gateway (node id `router~…`) rather than a pod's sidecar.
    pub gateway: bool,
}

impl Workload {
    /// A workload of `service` at `version` in namespace `default`.
    pub fn new(service: &str, version: &str) -> Self {
        Self {
            service: service.to_owned(),
            version: version.to_owned(),
            namespace: "default".to_owned(),
            gateway: false,
        }
    }

    /// Istio's `istio-ingressgateway` in `istio-system`.
    pub fn ingress_gateway() -> Self {
        Self {
            service: "istio-ingressgateway".to_owned(),
            version: "latest".to_owned(),
            namespace: "istio-system".to_owned(),
            gateway: true,
        }
    }

    /// The Deployment's name, e.g. `reviews-v1` (`WORKLOAD_NAME`); a gateway's is its
    /// service, `istio-ingressgateway`.
    pub fn workload_name(&self) -> String {
        if self.gateway {
            self.service.clone()
        } else {
            format!("{}-{}", self.service, self.version)
        }
    }

    /// A pod name as a ReplicaSet would make it.
    pub fn pod_name(&self) -> String {
        format!("{}-6d4c5b8f9-x7k2p", self.workload_name())
    }

    /// The Istio proxy's node id: `sidecar~…`, or `router~…` for a gateway.
    pub fn node_id(&self) -> String {
        format!(
            "{}~127.0.0.1~{}.{ns}~{ns}.svc.cluster.local",
            if self.gateway { "router" } else { "sidecar" },
            self.pod_name(),
            ns = self.namespace
        )
    }

    /// The service's FQDN, e.g. `reviews.default.svc.cluster.local`.
    pub fn fqdn(&self) -> String {
        fqdn(&self.service, &self.namespace)
    }

    /// The service account, as Bookinfo (or Istio's gateway chart) names them.
    pub fn service_account(&self) -> String {
        if self.gateway {
            format!("{}-service-account", self.service)
        } else {
            format!("bookinfo-{}", self.service)
        }
    }

    /// The pod's labels.
    fn labels(&self) -> Value {
        let mut labels = json!({
            "app": self.service,
            "pod-template-hash": "6d4c5b8f9",
            "service.istio.io/canonical-name": self.service,
            "service.istio.io/canonical-revision": self.version,
        });
        if self.gateway {
            labels["istio"] = json!("ingressgateway");
        } else {
            labels["version"] = json!(self.version);
            labels["security.istio.io/tlsMode"] = json!("istio");
        }
        labels
    }
}

/// `<service>.<namespace>.svc.cluster.local`.
pub fn fqdn(service: &str, namespace: &str) -> String {
    format!("{service}.{namespace}.svc.cluster.local")
}

/// The Istio cluster name for `service` on [`SERVICE_PORT`].
pub fn outbound_cluster(service: &str, namespace: &str) -> String {
    format!("outbound|{SERVICE_PORT}||{}", fqdn(service, namespace))
}

// === SidecarSpec ===

/// Envoy's own tracers that can report to the relay instead of a collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayTracer {
    /// `envoy.tracers.zipkin`, HTTP_JSON to `POST /api/v2/spans` (Istio `extensionProviders.zipkin`).
    Zipkin,
    /// `envoy.tracers.opentelemetry`, OTLP/HTTP protobuf to `POST /v1/traces` (Istio
    /// `extensionProviders.opentelemetry` with `http`).
    OpenTelemetry,
}

/// A service the pod may call, and where its (sidecar's inbound listener) endpoint is.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// The service name, e.g. `ratings`.
    pub service: String,
    /// Its namespace.
    pub namespace: String,
    /// The endpoint: the callee sidecar's inbound listener.
    pub addr: SocketAddr,
    /// The service's port speaks gRPC: HTTP/2 to it.
    pub http2: bool,
}

/// The meshray filter as a WasmPlugin would configure it.
#[derive(Debug, Clone)]
pub struct WasmFilter {
    /// The compiled module.
    pub module: PathBuf,
    /// The plugin configuration JSON (the WasmPlugin's `pluginConfig`).
    pub plugin_config_json: String,
}

/// Everything needed to generate one sidecar's config.
#[derive(Debug, Clone)]
pub struct SidecarSpec {
    /// The pod's identity.
    pub workload: Workload,
    /// The app's port (target of `inbound|9080||`); `None` for a gateway.
    pub app_addr: Option<SocketAddr>,
    /// The app serves gRPC: HTTP/2 on the inbound cluster.
    pub app_http2: bool,
    /// The services this pod calls.
    pub upstreams: Vec<Upstream>,
    /// The relay replicas: the endpoints of [`RELAY_CLUSTER`] (one or more, balanced
    /// round robin, as the endpoints of the relay's Service).
    pub relay_addrs: Vec<SocketAddr>,
    /// Check every relay endpoint's `GET /readyz` this often and send only to the ready
    /// ones: what the relay Deployment's readiness probe does in Kubernetes (a pod that
    /// fails it leaves the Service's endpoints, and istiod's EDS update takes it out of
    /// every sidecar's cluster). `None`: no health check, every endpoint always used.
    pub relay_health_check: Option<Duration>,
    /// The meshray filter, or `None` for an untraced sidecar.
    pub filter: Option<WasmFilter>,
    /// Turn on Envoy's Zipkin tracer, reporting to this collector.
    pub zipkin_collector: Option<SocketAddr>,
    /// Turn on one of Envoy's tracers reporting to the relay (its Service cluster
    /// [`RELAY_CLUSTER`]), as an Istio `extensionProviders` entry pointing at meshray-relay
    /// would; ignored when [`Self::zipkin_collector`] is set.
    pub tracer_to_relay: Option<RelayTracer>,
    /// Envoy worker threads.
    pub concurrency: u32,
    /// HTTP filters placed before meshray on the INBOUND listener: what an
    /// `AuthorizationPolicy` (RBAC) or a local rate limit becomes in Istio.
    pub inbound_filters: Vec<Value>,
}

impl SidecarSpec {
    /// The names of the listeners Envoy opens for this spec.
    pub fn listener_names(&self) -> &'static [&'static str] {
        if self.workload.gateway {
            &[GATEWAY_LISTENER]
        } else {
            &[INBOUND_LISTENER, OUTBOUND_LISTENER]
        }
    }

    /// The Envoy bootstrap (JSON; Envoy reads `.json` files as JSON).
    pub fn bootstrap(&self) -> Value {
        let w = &self.workload;
        let mut clusters = vec![
            relay_cluster(&self.relay_addrs, self.relay_health_check),
            json!({"name": "BlackHoleCluster", "type": "STATIC", "connect_timeout": "10s"}),
        ];
        if let Some(app) = self.app_addr {
            clusters.insert(0, static_cluster(INBOUND_CLUSTER, app, self.app_http2));
        }
        for upstream in &self.upstreams {
            clusters.push(static_cluster(
                &outbound_cluster(&upstream.service, &upstream.namespace),
                upstream.addr,
                upstream.http2,
            ));
        }
        if let Some(collector) = self.zipkin_collector {
            clusters.push(static_cluster(ZIPKIN_CLUSTER, collector, false));
        }
        let listeners = if w.gateway {
            vec![self.gateway_listener()]
        } else {
            vec![self.inbound_listener(), self.outbound_listener()]
        };
        json!({
            "node": {
                "id": w.node_id(),
                "cluster": format!("{}.{}", w.service, w.namespace),
                "metadata": {
                    "NAME": w.pod_name(),
                    "WORKLOAD_NAME": w.workload_name(),
                    "NAMESPACE": w.namespace,
                    "SERVICE_ACCOUNT": w.service_account(),
                    "CLUSTER_ID": CLUSTER_ID,
                    "MESH_ID": MESH_ID,
                    "ISTIO_VERSION": "1.24.0",
                    "APP_CONTAINERS": w.service,
                    "INTERCEPTION_MODE": "REDIRECT",
                    "LABELS": w.labels(),
                },
            },
            "admin": {"address": socket_address(SocketAddr::from(([127, 0, 0, 1], 0)))},
            "static_resources": {
                "listeners": listeners,
                "clusters": clusters,
            },
        })
    }

    fn inbound_listener(&self) -> Value {
        let w = &self.workload;
        let route_config = json!({
            "name": INBOUND_CLUSTER,
            "validate_clusters": false,
            "virtual_hosts": [{
                "name": format!("inbound|http|{SERVICE_PORT}"),
                "domains": ["*"],
                "routes": [{
                    "name": "default",
                    "match": {"prefix": "/"},
                    "route": {"cluster": INBOUND_CLUSTER, "timeout": "0s"},
                    "decorator": {"operation": format!("{}:{SERVICE_PORT}/*", w.fqdn())},
                }],
            }],
        });
        listener(
            INBOUND_LISTENER,
            "INBOUND",
            self.hcm(
                &format!("inbound_0.0.0.0_{SERVICE_PORT}"),
                route_config,
                &self.inbound_filters,
            ),
        )
    }

    /// A gateway's listener: every request goes to the first upstream (a `Gateway` with
    /// a `VirtualService` routing `*` to it); direction OUTBOUND, as istiod sets it.
    fn gateway_listener(&self) -> Value {
        let routes: Vec<Value> = self
            .upstreams
            .iter()
            .take(1)
            .map(|u| {
                json!({
                    "name": "default",
                    "match": {"prefix": "/"},
                    "route": {"cluster": outbound_cluster(&u.service, &u.namespace), "timeout": "0s"},
                    "decorator": {"operation": format!("{}:{SERVICE_PORT}/*", fqdn(&u.service, &u.namespace))},
                })
            })
            .collect();
        let route_config = json!({
            "name": "http.8080",
            "validate_clusters": false,
            "virtual_hosts": [{"name": "*:80", "domains": ["*"], "routes": routes}],
        });
        listener(
            GATEWAY_LISTENER,
            "OUTBOUND",
            self.hcm("outbound_0.0.0.0_8080", route_config, &[]),
        )
    }

    fn outbound_listener(&self) -> Value {
        let mut virtual_hosts: Vec<Value> = self
            .upstreams
            .iter()
            .map(|u| {
                let host = fqdn(&u.service, &u.namespace);
                let short = format!("{}.{}", u.service, u.namespace);
                let svc = format!("{short}.svc");
                let mut domains = Vec::new();
                for name in [
                    host.as_str(),
                    svc.as_str(),
                    short.as_str(),
                    u.service.as_str(),
                ] {
                    domains.push(name.to_owned());
                    domains.push(format!("{name}:{SERVICE_PORT}"));
                }
                json!({
                    "name": format!("{host}:{SERVICE_PORT}"),
                    "domains": domains,
                    "routes": [{
                        "name": "default",
                        "match": {"prefix": "/"},
                        "route": {
                            "cluster": outbound_cluster(&u.service, &u.namespace),
                            "timeout": "0s",
                        },
                        "decorator": {"operation": format!("{host}:{SERVICE_PORT}/*")},
                    }],
                })
            })
            .collect();
        virtual_hosts.push(json!({
            "name": "block_all",
            "domains": ["*"],
            "routes": [{
                "name": "block_all",
                "match": {"prefix": "/"},
                "route": {"cluster": "BlackHoleCluster", "timeout": "0s"},
            }],
        }));
        let route_config = json!({
            "name": SERVICE_PORT.to_string(),
            "validate_clusters": false,
            "virtual_hosts": virtual_hosts,
        });
        listener(
            OUTBOUND_LISTENER,
            "OUTBOUND",
            self.hcm(
                &format!("outbound_0.0.0.0_{SERVICE_PORT}"),
                route_config,
                &[],
            ),
        )
    }

    /// The HTTP connection manager: `before_meshray`, [wasm filter], router; optional
    /// Zipkin tracing.
    fn hcm(&self, stat_prefix: &str, route_config: Value, before_meshray: &[Value]) -> Value {
        let mut http_filters = before_meshray.to_vec();
        if let Some(filter) = &self.filter {
            http_filters.push(wasm_filter(filter));
        }
        http_filters.push(json!({
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
        }));
        let mut hcm = json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": stat_prefix,
            "server_name": "istio-envoy",
            "use_remote_address": false,
            "normalize_path": true,
            "route_config": route_config,
            "http_filters": http_filters,
        });
        let provider = match (self.zipkin_collector, self.tracer_to_relay) {
            (Some(_), _) => Some(zipkin_provider(ZIPKIN_CLUSTER, "zipkin.istio-system:9411")),
            (None, Some(RelayTracer::Zipkin)) => {
                Some(zipkin_provider(RELAY_CLUSTER, RELAY_AUTHORITY))
            }
            (None, Some(RelayTracer::OpenTelemetry)) => Some(self.opentelemetry_provider()),
            (None, None) => None,
        };
        if let Some(provider) = provider {
            let w = &self.workload;
            let tag = |name: &str, value: &str| json!({"tag": name, "literal": {"value": value}});
            hcm["tracing"] = json!({
                "random_sampling": {"value": 100},
                "custom_tags": [
                    tag("istio.canonical_service", &w.service),
                    tag("istio.canonical_revision", &w.version),
                    tag("istio.namespace", &w.namespace),
                    tag("istio.mesh_id", MESH_ID),
                ],
                "provider": provider,
            });
        }
        hcm
    }

    /// Envoy's OpenTelemetry tracer as istiod configures `extensionProviders.opentelemetry`
    /// with `http`: OTLP/HTTP to the provider's Service, `service_name` `{service}.{namespace}`.
    fn opentelemetry_provider(&self) -> Value {
        let w = &self.workload;
        json!({
            "name": "envoy.tracers.opentelemetry",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
                "http_service": {
                    "http_uri": {
                        "uri": format!("http://{RELAY_AUTHORITY}/v1/traces"),
                        "cluster": RELAY_CLUSTER,
                        "timeout": "5s",
                    },
                },
                "service_name": format!("{}.{}", w.service, w.namespace),
            },
        })
    }
}

/// Envoy's Zipkin tracer as Istio configures it (`shared_span_context: false`), reporting
/// to `cluster`.
fn zipkin_provider(cluster: &str, hostname: &str) -> Value {
    json!({
        "name": "envoy.tracers.zipkin",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.config.trace.v3.ZipkinConfig",
            "collector_cluster": cluster,
            "collector_endpoint": "/api/v2/spans",
            "collector_endpoint_version": "HTTP_JSON",
            "collector_hostname": hostname,
            "trace_id_128bit": true,
            "shared_span_context": false,
        },
    })
}

fn wasm_filter(filter: &WasmFilter) -> Value {
    json!({
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "meshray",
                "root_id": "meshray",
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": filter.plugin_config_json,
                },
                "vm_config": {
                    "vm_id": "meshray",
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": filter.module.to_string_lossy()}},
                },
                // Istio's `failStrategy: FAIL_OPEN` (`fail_open` is deprecated in 1.40).
                "failure_policy": "FAIL_OPEN",
            },
        },
    })
}

fn listener(name: &str, direction: &str, hcm: Value) -> Value {
    json!({
        "name": name,
        "address": socket_address(SocketAddr::from(([127, 0, 0, 1], 0))),
        "traffic_direction": direction,
        "filter_chains": [{
            "filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": hcm,
            }],
        }],
    })
}

fn static_cluster(name: &str, addr: SocketAddr, http2: bool) -> Value {
    let mut cluster = json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket_address(addr)}}]}],
        },
    });
    if http2 {
        cluster["typed_extension_protocol_options"] = json!({
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            },
        });
    }
    cluster
}

/// The relay's Service cluster: one endpoint per replica; with `health_check`, an active
/// HTTP check of `/readyz` at that interval that takes a replica out after one failed
/// check and back after one passed check (a relay answers 503 there from its SIGTERM on,
/// while it still takes posts for `--shutdown-delay`). Panic routing is off, so an
/// unready replica never gets posts, even when it is the only one.
fn relay_cluster(addrs: &[SocketAddr], health_check: Option<Duration>) -> Value {
    let endpoints: Vec<Value> = addrs
        .iter()
        .map(|addr| json!({"endpoint": {"address": socket_address(*addr)}}))
        .collect();
    let mut cluster = json!({
        "name": RELAY_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": RELAY_CLUSTER,
            "endpoints": [{"lb_endpoints": endpoints}],
        },
    });
    if let Some(interval) = health_check {
        let every = format!("{:.3}s", interval.as_secs_f64());
        cluster["health_checks"] = json!([{
            "timeout": "1s",
            "interval": every,
            "no_traffic_interval": every,
            "unhealthy_interval": every,
            "unhealthy_threshold": 1,
            "healthy_threshold": 1,
            "http_health_check": {"path": "/readyz", "host": RELAY_AUTHORITY},
        }]);
        cluster["common_lb_config"] = json!({"healthy_panic_threshold": {"value": 0.0}});
    }
    cluster
}

fn socket_address(addr: SocketAddr) -> Value {
    json!({"socket_address": {"address": addr.ip().to_string(), "port_value": addr.port()}})
}

/// Writes `value` pretty-printed to `path`.
///
/// # Errors
/// [`HarnessError::Io`].
pub fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| HarnessError::unexpected("generated JSON", e.to_string()))?;
    std::fs::write(path, text).map_err(|e| HarnessError::io(format!("write {}", path.display()), e))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn spec() -> SidecarSpec {
        SidecarSpec {
            workload: Workload::new("reviews", "v1"),
            app_addr: Some("127.0.0.1:10001".parse().unwrap()),
            app_http2: false,
            upstreams: vec![Upstream {
                service: "ratings".into(),
                namespace: "default".into(),
                addr: "127.0.0.1:10002".parse().unwrap(),
                http2: true,
            }],
            relay_addrs: vec!["127.0.0.1:10003".parse().unwrap()],
            relay_health_check: None,
            filter: None,
            zipkin_collector: Some("127.0.0.1:10004".parse().unwrap()),
            tracer_to_relay: None,
            concurrency: 1,
            inbound_filters: Vec::new(),
        }
    }

    /// A gateway in front of productpage.
    pub(crate) fn gateway_spec() -> SidecarSpec {
        SidecarSpec {
            workload: Workload::ingress_gateway(),
            app_addr: None,
            upstreams: vec![Upstream {
                service: "productpage".into(),
                namespace: "default".into(),
                addr: "127.0.0.1:10005".parse().unwrap(),
                http2: false,
            }],
            ..spec()
        }
    }

    fn cluster_names(bootstrap: &Value) -> Vec<&str> {
        bootstrap["static_resources"]["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn bootstrap_is_istio_shaped() {
        let b = spec().bootstrap();
        assert_eq!(
            b["node"]["id"],
            "sidecar~127.0.0.1~reviews-v1-6d4c5b8f9-x7k2p.default~default.svc.cluster.local"
        );
        let labels = &b["node"]["metadata"]["LABELS"];
        assert_eq!(labels["service.istio.io/canonical-name"], "reviews");
        assert_eq!(labels["service.istio.io/canonical-revision"], "v1");
        let clusters = cluster_names(&b);
        for name in [
            "inbound|9080||",
            "outbound|9080||ratings.default.svc.cluster.local",
            "outbound|8080||meshray-relay.meshray.svc.cluster.local",
            ZIPKIN_CLUSTER,
        ] {
            assert!(clusters.contains(&name), "{name} missing from {clusters:?}");
        }
        let listeners = b["static_resources"]["listeners"].as_array().unwrap();
        assert_eq!(listeners[0]["traffic_direction"], "INBOUND");
        assert_eq!(listeners[1]["traffic_direction"], "OUTBOUND");
        let hcm = &listeners[1]["filter_chains"][0]["filters"][0]["typed_config"];
        let domains = &hcm["route_config"]["virtual_hosts"][0]["domains"];
        assert!(domains.as_array().unwrap().contains(&json!("ratings:9080")));
        assert_eq!(
            hcm["tracing"]["provider"]["typed_config"]["shared_span_context"],
            false
        );
    }

    /// Every replica is an endpoint of the relay cluster; the health check asks `/readyz`
    /// with the relay's authority and turns panic routing off.
    #[test]
    fn relay_replicas_share_one_health_checked_cluster() {
        let spec = SidecarSpec {
            relay_addrs: vec![
                "127.0.0.1:10003".parse().unwrap(),
                "127.0.0.1:10006".parse().unwrap(),
            ],
            relay_health_check: Some(Duration::from_millis(250)),
            ..spec()
        };
        let b = spec.bootstrap();
        let clusters = b["static_resources"]["clusters"].as_array().unwrap();
        let relay = clusters
            .iter()
            .find(|c| c["name"] == RELAY_CLUSTER)
            .unwrap();
        let ports: Vec<u64> = relay["load_assignment"]["endpoints"][0]["lb_endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                e["endpoint"]["address"]["socket_address"]["port_value"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(ports, [10003, 10006]);
        let check = &relay["health_checks"][0];
        assert_eq!(check["http_health_check"]["path"], "/readyz");
        assert_eq!(check["http_health_check"]["host"], RELAY_AUTHORITY);
        assert_eq!(check["interval"], "0.250s");
        assert_eq!(check["unhealthy_threshold"], 1);
        assert_eq!(
            relay["common_lb_config"]["healthy_panic_threshold"]["value"],
            0.0
        );
        assert!(spec_without_check_has_none());
    }

    fn spec_without_check_has_none() -> bool {
        let b = spec().bootstrap();
        b["static_resources"]["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c.get("health_checks").is_none())
    }

    #[test]
    fn wasm_filter_goes_before_the_router_on_both_listeners() {
        let mut spec = spec();
        spec.filter = Some(WasmFilter {
            module: "/x/meshray_filter.wasm".into(),
            plugin_config_json: r#"{"flush_interval_ms":200}"#.into(),
        });
        let b = spec.bootstrap();
        for listener in b["static_resources"]["listeners"].as_array().unwrap() {
            let filters =
                &listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"];
            assert_eq!(filters[0]["name"], "envoy.filters.http.wasm");
            assert_eq!(filters[0]["typed_config"]["config"]["root_id"], "meshray");
            assert_eq!(
                filters[0]["typed_config"]["config"]["configuration"]["value"],
                r#"{"flush_interval_ms":200}"#
            );
            assert_eq!(filters[1]["name"], "envoy.filters.http.router");
        }
    }

    #[test]
    fn a_gateway_is_a_router_with_one_outbound_listener_and_no_app() {
        let b = gateway_spec().bootstrap();
        let id = b["node"]["id"].as_str().unwrap();
        assert!(id.starts_with("router~"), "{id}");
        assert_eq!(
            b["node"]["metadata"]["WORKLOAD_NAME"],
            "istio-ingressgateway"
        );
        assert_eq!(b["node"]["metadata"]["NAMESPACE"], "istio-system");
        assert_eq!(b["node"]["metadata"]["LABELS"]["istio"], "ingressgateway");
        let listeners = b["static_resources"]["listeners"].as_array().unwrap();
        assert_eq!(listeners.len(), 1);
        assert_eq!(listeners[0]["name"], GATEWAY_LISTENER);
        assert_eq!(listeners[0]["traffic_direction"], "OUTBOUND");
        let clusters = cluster_names(&b);
        assert!(!clusters.contains(&INBOUND_CLUSTER), "{clusters:?}");
        assert!(
            clusters.contains(&"outbound|9080||productpage.default.svc.cluster.local"),
            "{clusters:?}"
        );
        assert_eq!(gateway_spec().listener_names(), [GATEWAY_LISTENER]);
    }

    #[test]
    fn grpc_ports_get_http2_and_inbound_filters_go_before_meshray() {
        let mut spec = spec();
        spec.inbound_filters = vec![json!({"name": "envoy.filters.http.rbac"})];
        spec.filter = Some(WasmFilter {
            module: "/x/meshray_filter.wasm".into(),
            plugin_config_json: "{}".into(),
        });
        let b = spec.bootstrap();
        let options = "/typed_extension_protocol_options/envoy.extensions.upstreams.http.v3.HttpProtocolOptions/explicit_http_config/http2_protocol_options";
        for cluster in b["static_resources"]["clusters"].as_array().unwrap() {
            let h2 = cluster.pointer(options).is_some();
            let name = cluster["name"].as_str().unwrap();
            assert_eq!(h2, name.starts_with("outbound|9080||ratings"), "{name}");
        }
        let listeners = b["static_resources"]["listeners"].as_array().unwrap();
        let names = |listener: &Value| -> Vec<String> {
            listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["name"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(
            names(&listeners[0]),
            [
                "envoy.filters.http.rbac",
                "envoy.filters.http.wasm",
                "envoy.filters.http.router"
            ]
        );
        assert_eq!(
            names(&listeners[1]),
            ["envoy.filters.http.wasm", "envoy.filters.http.router"]
        );
    }
}
