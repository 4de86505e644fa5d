//! The Envoy configurations the filter benchmark compares, generated as JSON bootstraps.
//!
//! One proxy under test, shaped like an Istio sidecar (node metadata, an OUTBOUND listener
//! routing to `outbound|9080||reviews.default.svc.cluster.local` and an INBOUND listener
//! routing to `inbound|9080||`), both clusters pointing at the same upstream: a second
//! Envoy answering with `direct_response`. The configurations differ only in what traces:
//! nothing, the meshray filter, Envoy's native X-Ray tracer, an empty wasm filter, or
//! Envoy's Zipkin tracer.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// Cluster of the outbound listener (what an Istio sidecar routes `reviews:9080` to).
pub const OUTBOUND_CLUSTER: &str = "outbound|9080||reviews.default.svc.cluster.local";
/// Cluster of the inbound listener (Istio ≥ 1.9).
pub const INBOUND_CLUSTER: &str = "inbound|9080||";
/// Cluster the meshray filter posts to and the Zipkin tracer reports to (the receiver).
const RECEIVER_CLUSTER: &str = "receiver";

/// What the proxy under test traces with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[clap(rename_all = "snake_case")]
pub enum Variant {
    /// (a) no tracing at all.
    Untraced,
    /// (b) the meshray filter at 100 % sampling, posting to the receiver.
    Meshray,
    /// (c) Envoy's native `envoy.tracers.xray` at 100 %, UDP to the receiver.
    NativeXray,
    /// (d) an empty proxy-wasm HTTP filter: the floor of any wasm filter.
    EmptyWasm,
    /// (e) Envoy's Zipkin tracer at 100 % (Istio's default provider), posting to the receiver.
    Zipkin,
}

impl Variant {
    /// Every variant, in the order each round runs them.
    pub const ALL: [Variant; 5] = [
        Variant::Untraced,
        Variant::Meshray,
        Variant::NativeXray,
        Variant::EmptyWasm,
        Variant::Zipkin,
    ];

    /// Short label used in tables and file names.
    pub fn label(self) -> &'static str {
        match self {
            Variant::Untraced => "untraced",
            Variant::Meshray => "meshray",
            Variant::NativeXray => "native_xray",
            Variant::EmptyWasm => "empty_wasm",
            Variant::Zipkin => "zipkin",
        }
    }

    /// What the variant is, for the report.
    pub fn describe(self) -> &'static str {
        match self {
            Variant::Untraced => "(a) untraced Envoy",
            Variant::Meshray => "(b) meshray filter, 100 % sampling",
            Variant::NativeXray => "(c) Envoy native X-Ray tracer, 100 %",
            Variant::EmptyWasm => "(d) empty proxy-wasm filter (floor)",
            Variant::Zipkin => "(e) Envoy Zipkin tracer, 100 %",
        }
    }
}

/// Ports and files a proxy configuration refers to.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Admin port of the proxy under test.
    pub admin_port: u16,
    /// Port of the OUTBOUND listener.
    pub outbound_port: u16,
    /// Port of the INBOUND listener.
    pub inbound_port: u16,
    /// Port of the upstream Envoy.
    pub upstream_port: u16,
    /// Admin port of the upstream Envoy.
    pub upstream_admin_port: u16,
    /// HTTP port of the receiver (filter posts, Zipkin reports).
    pub receiver_port: u16,
    /// UDP port of the receiver (native X-Ray tracer).
    pub receiver_udp_port: u16,
    /// The meshray filter.
    pub meshray_wasm: PathBuf,
    /// The empty filter.
    pub empty_wasm: PathBuf,
}

fn address(port: u16) -> Value {
    json!({"socket_address": {"address": "127.0.0.1", "port_value": port}})
}

fn static_cluster(name: &str, port: u16) -> Value {
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address(port)}}]}]
        }
    })
}

fn wasm_filter(name: &str, module: &Path, configuration: &str) -> Value {
    json!({
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": name,
                "root_id": name,
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": configuration
                },
                "vm_config": {
                    "vm_id": name,
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": module.display().to_string()}}
                }
            }
        }
    })
}

/// The meshray filter's `pluginConfig` in the bench: defaults, the receiver as relay.
fn meshray_plugin_config() -> String {
    json!({"relay_cluster": RECEIVER_CLUSTER, "relay_authority": "receiver"}).to_string()
}

fn tracing(variant: Variant, layout: &Layout) -> Option<Value> {
    match variant {
        Variant::NativeXray => Some(json!({
            "random_sampling": {"value": 100},
            "provider": {
                "name": "envoy.tracers.xray",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.config.trace.v3.XRayConfig",
                    "daemon_endpoint": {"protocol": "UDP", "address": "127.0.0.1", "port_value": layout.receiver_udp_port},
                    "segment_name": "reviews-v1",
                    "sampling_rule_manifest": {
                        "inline_string": "{\"version\": 2, \"default\": {\"fixed_target\": 0, \"rate\": 1.0}, \"rules\": []}"
                    }
                }
            }
        })),
        Variant::Zipkin => Some(json!({
            "random_sampling": {"value": 100},
            "provider": {
                "name": "envoy.tracers.zipkin",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.config.trace.v3.ZipkinConfig",
                    "collector_cluster": RECEIVER_CLUSTER,
                    "collector_endpoint": "/api/v2/spans",
                    "collector_endpoint_version": "HTTP_JSON",
                    "trace_id_128bit": true,
                    "shared_span_context": false
                }
            }
        })),
        _ => None,
    }
}

fn listener(
    name: &str,
    direction: &str,
    port: u16,
    cluster: &str,
    variant: Variant,
    layout: &Layout,
) -> Value {
    let mut http_filters = Vec::new();
    match variant {
        Variant::Meshray => http_filters.push(wasm_filter(
            "meshray",
            &layout.meshray_wasm,
            &meshray_plugin_config(),
        )),
        Variant::EmptyWasm => http_filters.push(wasm_filter("empty", &layout.empty_wasm, "")),
        _ => {}
    }
    http_filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
    }));
    let mut hcm = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": name,
        "route_config": {
            "name": "9080",
            "virtual_hosts": [{
                "name": "reviews.default.svc.cluster.local:9080",
                "domains": ["*"],
                "routes": [{"name": "default", "match": {"prefix": "/"}, "route": {"cluster": cluster}}]
            }]
        },
        "http_filters": http_filters
    });
    if let (Some(tracing), Some(map)) = (tracing(variant, layout), hcm.as_object_mut()) {
        map.insert("tracing".to_owned(), tracing);
    }
    json!({
        "name": name,
        "address": address(port),
        "traffic_direction": direction,
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": hcm
        }]}]
    })
}

/// The bootstrap of the proxy under test for `variant`.
pub fn proxy_bootstrap(variant: Variant, layout: &Layout) -> Value {
    json!({
        "node": {
            "id": "sidecar~127.0.0.1~reviews-v1-6b9f8.default~default.svc.cluster.local",
            "cluster": "reviews.default",
            "metadata": {
                "WORKLOAD_NAME": "reviews-v1",
                "NAMESPACE": "default",
                "CLUSTER_ID": "Kubernetes",
                "MESH_ID": "cluster.local",
                "SERVICE_ACCOUNT": "bookinfo-reviews",
                "LABELS": {
                    "app": "reviews",
                    "version": "v1",
                    "service.istio.io/canonical-name": "reviews",
                    "service.istio.io/canonical-revision": "v1"
                }
            }
        },
        "admin": {"address": address(layout.admin_port)},
        "static_resources": {
            "listeners": [
                listener("0.0.0.0_9080", "OUTBOUND", layout.outbound_port, OUTBOUND_CLUSTER, variant, layout),
                listener("virtualInbound", "INBOUND", layout.inbound_port, INBOUND_CLUSTER, variant, layout)
            ],
            "clusters": [
                static_cluster(OUTBOUND_CLUSTER, layout.upstream_port),
                static_cluster(INBOUND_CLUSTER, layout.upstream_port),
                static_cluster(RECEIVER_CLUSTER, layout.receiver_port)
            ]
        }
    })
}

/// The upstream: an Envoy answering every request with a small JSON body.
pub fn upstream_bootstrap(layout: &Layout) -> Value {
    json!({
        "admin": {"address": address(layout.upstream_admin_port)},
        "static_resources": {
            "listeners": [{
                "name": "reviews",
                "address": address(layout.upstream_port),
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "upstream",
                        "route_config": {"virtual_hosts": [{
                            "name": "all",
                            "domains": ["*"],
                            "routes": [{
                                "match": {"prefix": "/"},
                                "direct_response": {
                                    "status": 200,
                                    "body": {"inline_string": "{\"reviews\":[{\"reviewer\":\"Reviewer1\",\"text\":\"An extremely entertaining play by Shakespeare.\"}]}\n"}
                                }
                            }]
                        }]},
                        "http_filters": [{
                            "name": "envoy.filters.http.router",
                            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
                        }]
                    }
                }]}]
            }]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout {
            admin_port: 1,
            outbound_port: 2,
            inbound_port: 3,
            upstream_port: 4,
            upstream_admin_port: 5,
            receiver_port: 6,
            receiver_udp_port: 7,
            meshray_wasm: "/m.wasm".into(),
            empty_wasm: "/e.wasm".into(),
        }
    }

    fn http_filter_names(bootstrap: &Value) -> Vec<String> {
        bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
            .as_array()
            .map(|filters| filters.iter().filter_map(|f| f["name"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }

    #[test]
    fn variants_differ_only_in_what_traces() {
        let l = layout();
        assert_eq!(
            http_filter_names(&proxy_bootstrap(Variant::Untraced, &l)),
            ["envoy.filters.http.router"]
        );
        assert_eq!(
            http_filter_names(&proxy_bootstrap(Variant::Meshray, &l)),
            ["envoy.filters.http.wasm", "envoy.filters.http.router"]
        );
        assert_eq!(
            http_filter_names(&proxy_bootstrap(Variant::EmptyWasm, &l)),
            ["envoy.filters.http.wasm", "envoy.filters.http.router"]
        );
        for (variant, provider) in [
            (Variant::NativeXray, "envoy.tracers.xray"),
            (Variant::Zipkin, "envoy.tracers.zipkin"),
        ] {
            let b = proxy_bootstrap(variant, &l);
            for listener in 0..2 {
                let hcm = &b["static_resources"]["listeners"][listener]["filter_chains"][0]["filters"]
                    [0]["typed_config"];
                assert_eq!(hcm["tracing"]["provider"]["name"], provider);
                assert_eq!(hcm["tracing"]["random_sampling"]["value"], 100);
            }
        }
        assert!(proxy_bootstrap(Variant::Untraced, &l)["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
            ["typed_config"]
            .get("tracing")
            .is_none());
    }

    #[test]
    fn listeners_are_shaped_like_an_istio_sidecar() {
        let b = proxy_bootstrap(Variant::Meshray, &layout());
        let listeners = &b["static_resources"]["listeners"];
        assert_eq!(listeners[0]["traffic_direction"], "OUTBOUND");
        assert_eq!(listeners[1]["traffic_direction"], "INBOUND");
        let route = |i: usize| {
            listeners[i]["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"][0]
                ["route"]["cluster"]
                .clone()
        };
        assert_eq!(route(0), OUTBOUND_CLUSTER);
        assert_eq!(route(1), INBOUND_CLUSTER);
        assert_eq!(b["node"]["metadata"]["LABELS"]["app"], "reviews");
    }
}
