//! Native tests of the request logic against [`FakeHost`]: whole requests as a
//! sidecar sees them, from request headers to the document.

use meshray_core::ids::TraceId;
use meshray_core::propagation::Formats;
use serde_json::Value;

use crate::config::FilterConfig;
use crate::host::FakeHost;
use crate::metrics::Metrics;
use crate::tracer::{self, ActiveSpan, Random, Role};
use crate::workload::Workload;

pub(super) const NOW: u64 = 1_764_000_000;
/// How long each request takes between its headers and its log phase.
const REQUEST_NANOS: u64 = 12_500_000;
pub(super) const INBOUND: &str = "inbound|9080||";
const TO_REVIEWS: &str = "outbound|9080||reviews.default.svc.cluster.local";

/// `propagate: ["xray"]`: only x-amzn-trace-id is added, other formats only
/// updated when they arrived.
fn xray_only() -> FilterConfig {
    FilterConfig {
        propagate: Formats {
            xray: true,
            ..Formats::NONE
        },
        ..FilterConfig::default()
    }
}

/// Deterministic randomness: counts up.
struct Counter(u64);

impl Random for Counter {
    fn next_u64(&mut self) -> u64 {
        self.0 += 1;
        self.0 * 0x1111
    }
    fn next_f64(&mut self) -> f64 {
        0.5
    }
}

/// A bookinfo `productpage` pod whose upstream cluster is `cluster`, answering 200.
pub(super) fn pod(cluster: &str) -> FakeHost {
    FakeHost::at(NOW)
        .with_property("xds.cluster_name", cluster)
        .with_property("xds.node.metadata.WORKLOAD_NAME", "productpage-v1")
        .with_property("xds.node.metadata.NAMESPACE", "default")
        .with_property("xds.node.metadata.NAME", "productpage-v1-abc")
        .with_property("xds.node.metadata.SERVICE_ACCOUNT", "bookinfo-productpage")
        .with_property(
            "xds.node.metadata.LABELS.service.istio.io/canonical-name",
            "productpage",
        )
        .with_property(
            "xds.node.metadata.LABELS.service.istio.io/canonical-revision",
            "v1",
        )
        .with_int_property("request.time", (NOW * 1_000_000_000) as i64)
        .with_response_header(":status", "200")
        .with_int_property("response.size", 42)
        .with_property("source.address", "10.0.0.7:51234")
        .with_header(":method", "GET")
        .with_header(":scheme", "http")
        .with_header(":path", "/productpage")
}

/// The same pod (shared data, counters) seeing another request on another cluster.
fn same_pod(other: &FakeHost, cluster: &str) -> FakeHost {
    let mut next = pod(cluster);
    next.shared = other.shared.clone();
    next.counters = other.counters.clone();
    next.counter_names = other.counter_names.clone();
    next
}

struct Sidecar {
    config: FilterConfig,
    workload: Workload,
    metrics: Metrics,
    random: Counter,
}

impl Sidecar {
    fn new(host: &FakeHost, config: FilterConfig) -> Self {
        Self {
            workload: Workload::read(host, &config),
            metrics: Metrics::define(host),
            config,
            random: Counter(0),
        }
    }

    fn headers(&mut self, host: &FakeHost) -> Option<ActiveSpan> {
        tracer::on_request_headers(
            host,
            &self.config,
            &self.workload,
            &self.metrics,
            &mut self.random,
        )
    }

    fn request(&mut self, host: &FakeHost) -> Option<Value> {
        let span = self.headers(host)?;
        host.advance(REQUEST_NANOS);
        let json = tracer::on_log(host, span, &self.workload, &self.metrics)?;
        Some(serde_json::from_slice(&json).unwrap())
    }

    /// The document of a request something before the filter answered (only the log
    /// phase runs).
    fn unseen(&mut self, host: &FakeHost) -> Option<Value> {
        let json = tracer::on_log_unseen(
            host,
            &self.config,
            &self.workload,
            &self.metrics,
            &mut self.random,
        )?;
        Some(serde_json::from_slice(&json).unwrap())
    }
}

#[test]
fn inbound_root_mints_an_epoch_id_and_emits_a_full_segment() {
    let host = pod(INBOUND)
        .with_header(":authority", "productpage:9080")
        .with_header("user-agent", "curl/8");
    let mut sidecar = Sidecar::new(&host, FilterConfig::default());
    let doc = sidecar.request(&host).unwrap();

    let trace_id = doc["trace_id"].as_str().unwrap();
    assert!(trace_id.starts_with(&format!("1-{NOW:08x}-")), "{trace_id}");
    assert_eq!(doc["name"], "productpage");
    assert!(doc.get("parent_id").is_none(), "a root has no parent");
    assert!(doc.get("type").is_none());
    assert_eq!(doc["origin"], "AWS::EKS::Container");
    assert_eq!(doc["start_time"].as_f64().unwrap(), NOW as f64);
    assert_eq!(doc["end_time"].as_f64().unwrap(), NOW as f64 + 0.0125);
    assert_eq!(
        doc["http"]["request"]["url"],
        "http://productpage:9080/productpage"
    );
    assert_eq!(doc["http"]["request"]["client_ip"], "10.0.0.7");
    assert_eq!(doc["http"]["request"]["user_agent"], "curl/8");
    assert_eq!(doc["http"]["response"]["status"], 200);
    assert_eq!(doc["http"]["response"]["content_length"], 42);
    assert_eq!(doc["annotations"]["istio_canonical_service"], "productpage");
    assert_eq!(doc["annotations"]["istio_canonical_revision"], "v1");
    assert_eq!(doc["annotations"]["istio_namespace"], "default");
    assert_eq!(
        doc["metadata"]["k8s"]["service_account"],
        "bookinfo-productpage"
    );
    assert_eq!(doc["aws"]["eks"]["pod"], "productpage-v1-abc");

    // The app sees our segment as parent in every format a mesh app forwards.
    let id = doc["id"].as_str().unwrap();
    assert_eq!(host.header("x-b3-spanid").as_deref(), Some(id));
    assert!(host.header("traceparent").unwrap().contains(id));
    let amzn = host.header("x-amzn-trace-id").unwrap();
    assert_eq!(amzn, format!("Root={trace_id};Parent={id};Sampled=1"));
    assert_eq!(host.counter("meshray_headers_malformed_total"), 0);
}

#[test]
fn request_phase_reads_only_the_cluster_name() {
    let host = pod(TO_REVIEWS).with_header(":authority", "reviews:9080");
    let mut sidecar = Sidecar::new(&host, FilterConfig::default());
    host.property_reads.borrow_mut().clear();
    sidecar.headers(&host).unwrap();
    assert_eq!(*host.property_reads.borrow(), ["xds.cluster_name"]);
}

#[test]
fn outbound_call_links_to_the_pods_segment_even_when_b3_was_rewritten() {
    let inbound = pod(INBOUND)
        .with_header("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7")
        .with_header("x-b3-spanid", "e457b5a2e4d86bd1")
        .with_header("x-b3-sampled", "1");
    let mut sidecar = Sidecar::new(&inbound, xray_only());
    let segment = sidecar.request(&inbound).unwrap();
    assert_eq!(segment["parent_id"], "e457b5a2e4d86bd1");
    // Only the span id (and the parent span id, which names the caller's span) changed
    // among the B3 headers.
    let writes: Vec<String> = inbound
        .header_writes
        .borrow()
        .iter()
        .map(|(n, _)| n.clone())
        .collect();
    assert_eq!(
        writes,
        ["x-amzn-trace-id", "x-b3-spanid", "x-b3-parentspanid"]
    );
    assert_eq!(
        inbound.header("x-b3-parentspanid").as_deref(),
        Some("e457b5a2e4d86bd1")
    );

    // Envoy's Zipkin tracer replaced x-b3-spanid with its own span; the app forwarded that.
    let outbound = same_pod(&inbound, TO_REVIEWS)
        .with_header(":authority", "reviews:9080")
        .with_header("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7")
        .with_header("x-b3-spanid", "00000000000000aa")
        .with_header("x-b3-sampled", "1");
    let call = sidecar.request(&outbound).unwrap();
    assert_eq!(call["type"], "subsegment");
    assert_eq!(call["namespace"], "remote");
    assert_eq!(call["name"], "reviews");
    assert_eq!(call["parent_id"], segment["id"]);
    assert_eq!(call["trace_id"], segment["trace_id"]);
    assert_eq!(
        call["metadata"]["istio"]["destination_namespace"],
        "default"
    );
    // The callee reads x-amzn-trace-id first: it names our subsegment.
    let amzn = outbound.header("x-amzn-trace-id").unwrap();
    assert!(
        amzn.contains(&format!("Parent={}", call["id"].as_str().unwrap())),
        "{amzn}"
    );
}

#[test]
fn outbound_without_a_segment_becomes_a_client_segment() {
    let host = pod(TO_REVIEWS).with_header(":authority", "reviews:9080");
    let mut sidecar = Sidecar::new(&host, FilterConfig::default());
    let doc = sidecar.request(&host).unwrap();
    assert_eq!(doc["name"], "productpage");
    assert!(doc.get("type").is_none());
    let call = &doc["subsegments"][0];
    assert_eq!(call["name"], "reviews");
    assert_eq!(call["namespace"], "remote");
    let amzn = host.header("x-amzn-trace-id").unwrap();
    assert!(amzn.contains(&format!("Parent={}", call["id"].as_str().unwrap())));
}

#[test]
fn xray_instrumented_apps_parent_wins_on_outbound() {
    let host = pod(TO_REVIEWS).with_header(
        "x-amzn-trace-id",
        &format!("Root=1-{NOW:08x}-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1"),
    );
    let mut sidecar = Sidecar::new(&host, FilterConfig::default());
    let doc = sidecar.request(&host).unwrap();
    assert_eq!(doc["type"], "subsegment");
    assert_eq!(doc["parent_id"], "53995c3f42cd8ad8");
    assert_eq!(
        doc["trace_id"],
        format!("1-{NOW:08x}-0123456789abcdef01234567")
    );
}

#[test]
fn load_balancer_root_becomes_the_trace_id() {
    let host = pod(INBOUND).with_header(
        "x-amzn-trace-id",
        &format!(
            "Self=1-{NOW:08x}-aaaaaaaaaaaaaaaaaaaaaaaa;Root=1-{NOW:08x}-abcdef012345678912345678"
        ),
    );
    let mut sidecar = Sidecar::new(&host, FilterConfig::default());
    let doc = sidecar.request(&host).unwrap();
    assert_eq!(
        doc["trace_id"],
        format!("1-{NOW:08x}-abcdef012345678912345678")
    );
    assert!(doc.get("parent_id").is_none());
    // The app forwards B3 and traceparent only: the load balancer's trace goes on in those.
    assert_eq!(
        host.header("x-b3-traceid"),
        Some(format!("{NOW:08x}abcdef012345678912345678"))
    );
    assert_eq!(host.header("x-b3-spanid").as_deref(), doc["id"].as_str());
    assert!(
        host.header("traceparent")
            .unwrap()
            .contains(&format!("{NOW:08x}abcdef012345678912345678"))
    );
}

#[test]
fn unsampled_callers_get_nothing_emitted_and_headers_untouched() {
    for (name, value) in [
        ("x-b3-sampled", "0"),
        ("b3", "0"),
        ("b3", "463ac35c9f6413ad-a2fb4a1d1a96d312-0"),
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
        ),
    ] {
        let host = pod(INBOUND).with_header(name, value);
        let mut sidecar = Sidecar::new(&host, FilterConfig::default());
        assert!(sidecar.headers(&host).is_none(), "{name}: {value}");
        assert!(host.header_writes.borrow().is_empty(), "{name}: {value}");
    }
}

#[test]
fn an_unsampled_decision_only_in_xray_is_carried_to_the_next_hop() {
    // Apps do not forward x-amzn-trace-id: without x-b3-sampled: 0 the next hop would start a new trace.
    let host = pod(INBOUND).with_header(
        "x-amzn-trace-id",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0",
    );
    let mut sidecar = Sidecar::new(&host, FilterConfig::default());
    assert!(sidecar.headers(&host).is_none());
    assert_eq!(
        *host.header_writes.borrow(),
        [("x-b3-sampled".to_owned(), "0".to_owned())]
    );
}

#[test]
fn a_no_written_by_envoys_tracer_does_not_cut_a_trace_meshray_sampled() {
    // Inbound: meshray samples the root; Envoy's Zipkin tracer (at 1 %) then tells the app "x-b3-sampled: 0".
    let inbound = pod(INBOUND);
    let mut sidecar = Sidecar::new(&inbound, FilterConfig::default());
    let segment = sidecar.request(&inbound).unwrap();
    let trace_hex = inbound.header("x-b3-traceid").unwrap();
    let outbound = same_pod(&inbound, TO_REVIEWS)
        .with_header(":authority", "reviews:9080")
        .with_header("x-b3-traceid", &trace_hex)
        .with_header("x-b3-spanid", "00000000000000aa")
        .with_header("x-b3-sampled", "0");
    let call = sidecar.request(&outbound).unwrap();
    assert_eq!(call["parent_id"], segment["id"]);
    assert_eq!(outbound.header("x-b3-sampled").as_deref(), Some("1"));
    assert!(
        outbound
            .header("x-amzn-trace-id")
            .unwrap()
            .ends_with("Sampled=1")
    );
}

#[test]
fn b3_debug_flag_forces_sampling() {
    let host = pod(INBOUND)
        .with_header("x-b3-traceid", "463ac35c9f6413ad")
        .with_header("x-b3-spanid", "a2fb4a1d1a96d312")
        .with_header("x-b3-flags", "1");
    let config = FilterConfig {
        sampling_rate: 0.0,
        ..FilterConfig::default()
    };
    let mut sidecar = Sidecar::new(&host, config);
    assert!(sidecar.request(&host).is_some());
}

#[test]
fn roots_follow_the_sampling_rate_and_propagate_the_no() {
    let host = pod(INBOUND);
    let config = FilterConfig {
        sampling_rate: 0.25,
        ..FilterConfig::default()
    };
    let mut sidecar = Sidecar::new(&host, config);
    assert!(sidecar.headers(&host).is_none(), "0.5 >= 0.25: not sampled");
    assert!(
        host.header("x-amzn-trace-id")
            .unwrap()
            .ends_with("Sampled=0")
    );
    assert_eq!(host.header("x-b3-sampled").as_deref(), Some("0"));
    assert!(host.header("traceparent").unwrap().ends_with("-00"));
}

#[test]
fn malformed_headers_are_counted_and_ignored() {
    let host = pod(INBOUND)
        .with_header("traceparent", "00-nothex-b7ad6b7169203331-01")
        .with_header_bytes("b3", &[0xff, 0xfe])
        .with_header("x-b3-traceid", "463ac35c9f6413ad")
        .with_header("x-b3-spanid", "a2fb4a1d1a96d312");
    let fresh = host.clone();
    let mut sidecar = Sidecar::new(&host, xray_only());
    let doc = sidecar.request(&host).unwrap();
    assert_eq!(doc["parent_id"], "a2fb4a1d1a96d312");
    assert_eq!(host.counter("meshray_headers_malformed_total"), 2);
    // With the default `propagate`, the malformed traceparent is replaced by a valid one.
    let mut defaults = Sidecar::new(&fresh, FilterConfig::default());
    let doc = defaults.request(&fresh).unwrap();
    assert_eq!(
        fresh.header("traceparent"),
        Some(format!(
            "00-0000000000000000463ac35c9f6413ad-{}-01",
            doc["id"].as_str().unwrap()
        ))
    );
    let writes: Vec<String> = host
        .header_writes
        .borrow()
        .iter()
        .map(|(n, _)| n.clone())
        .collect();
    assert!(
        !writes.contains(&"traceparent".to_owned()),
        "malformed header left alone: {writes:?}"
    );
}

#[test]
fn foreign_64_bit_ids_are_sent_raw_and_kept_in_headers() {
    let host = pod(INBOUND)
        .with_header("x-b3-traceid", "463ac35c9f6413ad")
        .with_header("x-b3-spanid", "a2fb4a1d1a96d312");
    let mut sidecar = Sidecar::new(&host, FilterConfig::default());
    let doc = sidecar.request(&host).unwrap();
    assert_eq!(doc["trace_id"], "0000000000000000463ac35c9f6413ad");
    assert_eq!(
        host.header("x-b3-traceid").as_deref(),
        Some("463ac35c9f6413ad")
    );
    assert_eq!(host.header("x-b3-sampled").as_deref(), Some("1"));
}

#[test]
fn response_flags_and_status_mark_faults() {
    let host = pod(TO_REVIEWS)
        .with_header(":authority", "reviews:9080")
        .with_response_header(":status", "503")
        .with_int_property("response.flags", 0x20 | 0x8000);
    let mut sidecar = Sidecar::new(&host, FilterConfig::default());
    let doc = sidecar.request(&host).unwrap();
    let call = &doc["subsegments"][0];
    assert_eq!(call["fault"], true);
    assert_eq!(call["annotations"]["response_flags"], "UF,URX");
    assert_eq!(doc["fault"], true);

    let blackhole = pod("BlackHoleCluster")
        .with_header(":authority", "blocked.example.com")
        .with_response_header(":status", "502");
    let doc = sidecar.request(&blackhole).unwrap();
    assert_eq!(doc["subsegments"][0]["name"], "blocked.example.com");
    assert_eq!(doc["subsegments"][0]["fault"], true);

    let throttled = pod(INBOUND).with_response_header(":status", "429");
    let doc = sidecar.request(&throttled).unwrap();
    assert_eq!(
        (doc["error"].clone(), doc["throttle"].clone()),
        (Value::Bool(true), Value::Bool(true))
    );
}

#[test]
fn configured_headers_become_annotations() {
    let host = pod(INBOUND).with_header("x-user-tier", "gold");
    let config = FilterConfig {
        annotate_headers: vec!["x-user-tier".into()],
        cluster_name: Some("prod-eks".into()),
        ..FilterConfig::default()
    };
    let mut sidecar = Sidecar::new(&host, config);
    let doc = sidecar.request(&host).unwrap();
    assert_eq!(doc["annotations"]["x_user_tier"], "gold");
    assert_eq!(doc["aws"]["eks"]["cluster_name"], "prod-eks");
}

#[test]
fn the_filters_own_posts_are_not_traced() {
    let host = pod(INBOUND).with_header("x-meshray-batch", "1");
    let mut sidecar = Sidecar::new(&host, FilterConfig::default());
    assert!(sidecar.headers(&host).is_none());
    assert!(host.header_writes.borrow().is_empty());
}

#[test]
fn unknown_clusters_fall_back_to_listener_direction() {
    let host = pod("static-upstream")
        .with_int_property("xds.listener_direction", 2)
        .with_header(":authority", "api.example.com:443");
    let mut sidecar = Sidecar::new(&host, FilterConfig::default());
    let span = sidecar.headers(&host).unwrap();
    assert!(
        matches!(span.role, Role::ClientSegment { ref remote, .. } if remote.name == "api.example.com")
    );
}

#[test]
fn minted_ids_carry_the_epoch() {
    let host = pod(INBOUND);
    let mut sidecar = Sidecar::new(&host, FilterConfig::default());
    let span = sidecar.headers(&host).unwrap();
    assert_eq!(span.trace_id.embedded_epoch(NOW), Some(NOW as u32));
    assert_ne!(span.trace_id, TraceId::mint(NOW as u32, 0));
}

// === issue 8: what a real mesh sends through the filter ===

/// The `traceparent` an app forwards after our inbound rewrite.
fn traceparent_naming(trace_hex: &str, span: &str) -> String {
    format!("00-{trace_hex}-{span}-01")
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// An inbound request of trace [`TRACE`] from the caller's span `caller`.
fn inbound_of_trace(like: &FakeHost, caller: &str) -> FakeHost {
    same_pod(like, INBOUND).with_header("traceparent", &traceparent_naming(TRACE, caller))
}

/// The app's outbound call to reviews, forwarding `traceparent` naming `parent`.
fn call_forwarding(like: &FakeHost, parent: &str) -> FakeHost {
    same_pod(like, TO_REVIEWS)
        .with_header(":authority", "reviews:9080")
        .with_header("traceparent", &traceparent_naming(TRACE, parent))
}

/// Parallel fan-out: two requests of one trace in the pod at once; each app's
/// call hangs under its own request's segment, not under the latest.
#[test]
fn parallel_requests_of_one_trace_keep_their_own_calls() {
    let first = inbound_of_trace(&pod(INBOUND), "00000000000000c1");
    let mut sidecar = Sidecar::new(&first, FilterConfig::default());
    let a = sidecar.request(&first).unwrap();
    let second = inbound_of_trace(&first, "00000000000000c2");
    let b = sidecar.request(&second).unwrap();
    assert_ne!(a["id"], b["id"]);
    let a_id = a["id"].as_str().unwrap();
    let b_id = b["id"].as_str().unwrap();
    assert_eq!(
        sidecar.request(&call_forwarding(&first, a_id)).unwrap()["parent_id"],
        a["id"]
    );
    assert_eq!(
        sidecar.request(&call_forwarding(&first, b_id)).unwrap()["parent_id"],
        b["id"]
    );
    assert_eq!(
        sidecar.request(&call_forwarding(&first, a_id)).unwrap()["parent_id"],
        a["id"]
    );
    // An app that forwards nothing naming its segment: the latest segment of the trace.
    let bare = same_pod(&first, TO_REVIEWS)
        .with_header(":authority", "reviews:9080")
        .with_header("x-b3-traceid", TRACE)
        .with_header("x-b3-spanid", "00000000000000aa")
        .with_header("x-b3-sampled", "1");
    assert_eq!(sidecar.request(&bare).unwrap()["parent_id"], b["id"]);
}

/// A retry: the same caller span arrives twice; each attempt's calls stay with it.
#[test]
fn a_retried_request_keeps_each_attempts_calls() {
    let attempt = inbound_of_trace(&pod(INBOUND), "00000000000000c1");
    let mut sidecar = Sidecar::new(&attempt, FilterConfig::default());
    let first = sidecar.request(&attempt).unwrap();
    let retry = inbound_of_trace(&attempt, "00000000000000c1");
    let second = sidecar.request(&retry).unwrap();
    assert_eq!(first["parent_id"], second["parent_id"]);
    let late_call = call_forwarding(&attempt, first["id"].as_str().unwrap());
    assert_eq!(
        sidecar.request(&late_call).unwrap()["parent_id"],
        first["id"]
    );
}

/// A pod calling itself: A calls out, the call comes back in as B; B's calls
/// hang under B and A's later calls still under A. Envoy's Zipkin tracer
/// rewriting `x-b3-spanid` does not change that (`traceparent` survives it).
#[test]
fn a_pod_calling_itself_keeps_both_segments_apart() {
    let a_in = inbound_of_trace(&pod(INBOUND), "00000000000000c1");
    let mut sidecar = Sidecar::new(&a_in, FilterConfig::default());
    let a = sidecar.request(&a_in).unwrap();
    let a_id = a["id"].as_str().unwrap();
    let self_call = call_forwarding(&a_in, a_id);
    let s1 = sidecar.request(&self_call).unwrap();
    assert_eq!(s1["parent_id"], a["id"]);
    // The call arrives back at the same sidecar, with what the outbound side wrote.
    let b_in = same_pod(&a_in, INBOUND)
        .with_header("traceparent", &self_call.header("traceparent").unwrap());
    let b = sidecar.request(&b_in).unwrap();
    assert_eq!(b["parent_id"], s1["id"]);
    let b_id = b["id"].as_str().unwrap();
    let zipkin_rewrote_b3 = call_forwarding(&a_in, b_id)
        .with_header("x-b3-traceid", TRACE)
        .with_header("x-b3-spanid", "00000000000000ee")
        .with_header("x-b3-sampled", "1");
    assert_eq!(
        sidecar.request(&zipkin_rewrote_b3).unwrap()["parent_id"],
        b["id"]
    );
    assert_eq!(
        sidecar.request(&call_forwarding(&a_in, a_id)).unwrap()["parent_id"],
        a["id"]
    );
}

/// A gateway (node id `router~`) has no app: every request is the root segment
/// of its trace, named after the gateway, with the request's http block and the
/// response's status flags, and the call to the service inside.
#[test]
fn a_gateways_root_segment_carries_the_request_and_its_outcome() {
    let gateway = |code: i64, flags: i64| {
        pod("outbound|9080||productpage.default.svc.cluster.local")
            .with_property(
                "xds.node.id",
                "router~10.0.0.9~istio-ingressgateway-5d9.istio-system~istio-system.svc.cluster.local",
            )
            .with_property("xds.node.metadata.LABELS.service.istio.io/canonical-name", "istio-ingressgateway")
            .with_property("xds.node.metadata.NAMESPACE", "istio-system")
            .with_header(":authority", "shop.example.com")
            .with_header("user-agent", "curl/8")
            .with_header(
                "x-amzn-trace-id",
                &format!("Root=1-{NOW:08x}-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1"),
            )
            .with_response_header(":status", &code.to_string())
            .with_int_property("response.flags", flags)
    };
    let host = gateway(503, 0x20);
    let mut sidecar = Sidecar::new(&host, FilterConfig::default());
    let doc = sidecar.request(&host).unwrap();
    assert!(doc.get("type").is_none(), "a segment: {doc}");
    assert_eq!(doc["name"], "istio-ingressgateway");
    assert_eq!(
        doc["parent_id"], "53995c3f42cd8ad8",
        "the external caller's span"
    );
    assert_eq!(
        doc["http"]["request"]["url"],
        "http://shop.example.com/productpage"
    );
    assert_eq!(doc["http"]["request"]["method"], "GET");
    assert_eq!(doc["http"]["request"]["client_ip"], "10.0.0.7");
    assert_eq!(doc["http"]["request"]["user_agent"], "curl/8");
    assert_eq!(doc["http"]["response"]["status"], 503);
    assert_eq!(doc["fault"], true);
    assert_eq!(doc["annotations"]["response_flags"], "UF");
    let call = &doc["subsegments"][0];
    assert_eq!(call["name"], "productpage");
    assert_eq!(call["fault"], true);
    assert_eq!(
        call["cause"]["exceptions"][0]["message"],
        "upstream connection failure (UF)"
    );
    // The app's next hop names the call inside the gateway's segment.
    assert!(
        host.header("x-amzn-trace-id")
            .unwrap()
            .contains(call["id"].as_str().unwrap())
    );

    let throttled = gateway(429, 0);
    let doc = sidecar.request(&throttled).unwrap();
    assert_eq!(
        (doc["error"].clone(), doc["throttle"].clone()),
        (Value::Bool(true), Value::Bool(true))
    );
}

/// gRPC: HTTP 200 with `grpc-status` in the trailers (or the headers of a
/// trailers-only answer) marks the document and records the code.
#[test]
fn grpc_status_marks_the_call() {
    let grpc_call = || {
        pod(TO_REVIEWS)
            .with_header(":authority", "reviews:9080")
            .with_header("content-type", "application/grpc+proto")
    };
    let mut sidecar = Sidecar::new(&grpc_call(), FilterConfig::default());
    let unavailable = grpc_call()
        .with_response_trailer("grpc-status", "14")
        .with_response_trailer("grpc-message", "connection refused");
    let doc = sidecar.request(&unavailable).unwrap();
    let call = &doc["subsegments"][0];
    assert_eq!(call["http"]["response"]["status"], 200);
    assert_eq!(call["fault"], true);
    assert_eq!(call["annotations"]["grpc_status"], 14);
    assert_eq!(
        call["cause"]["exceptions"][0]["message"],
        "gRPC UNAVAILABLE (14): connection refused"
    );
    assert_eq!(doc["fault"], true, "the root segment too");

    let trailers_only = grpc_call().with_response_header("grpc-status", "8");
    let call = sidecar.request(&trailers_only).unwrap()["subsegments"][0].clone();
    assert_eq!(
        (call["throttle"].clone(), call["error"].clone()),
        (Value::Bool(true), Value::Bool(true))
    );
    assert!(call.get("fault").is_none());

    let ok = grpc_call().with_response_trailer("grpc-status", "0");
    let call = sidecar.request(&ok).unwrap()["subsegments"][0].clone();
    assert_eq!(call["annotations"]["grpc_status"], 0);
    assert!(
        call.get("fault").is_none() && call.get("error").is_none() && call.get("cause").is_none()
    );

    // Not a gRPC request: grpc-status is not even read.
    let plain = pod(TO_REVIEWS)
        .with_header(":authority", "reviews:9080")
        .with_response_trailer("grpc-status", "14");
    let call = sidecar.request(&plain).unwrap()["subsegments"][0].clone();
    assert!(call.get("fault").is_none());
}

/// A request something before the filter answered (RBAC 403, local rate limit
/// 429): the log phase reads the request and builds its segment, linked under
/// the caller's subsegment, writing no header.
#[test]
fn requests_answered_before_the_filter_get_their_segment() {
    let denied = pod(INBOUND)
        .with_header(":authority", "reviews:9080")
        .with_header(
            "x-amzn-trace-id",
            &format!("Root=1-{NOW:08x}-0123456789abcdef01234567;Parent=00000000000000c1;Sampled=1"),
        )
        .with_response_header(":status", "403");
    let mut sidecar = Sidecar::new(&denied, FilterConfig::default());
    let doc = sidecar.unseen(&denied).unwrap();
    assert_eq!(
        doc["trace_id"],
        format!("1-{NOW:08x}-0123456789abcdef01234567")
    );
    assert_eq!(doc["parent_id"], "00000000000000c1");
    assert_eq!(doc["http"]["response"]["status"], 403);
    assert_eq!(doc["error"], true);
    assert_eq!(
        doc["http"]["request"]["url"],
        "http://reviews:9080/productpage"
    );
    assert!(denied.header_writes.borrow().is_empty());

    let limited = pod(INBOUND)
        .with_response_header(":status", "429")
        .with_int_property("response.flags", 0x800);
    let doc = sidecar.unseen(&limited).unwrap();
    assert_eq!(doc["throttle"], true);
    assert_eq!(doc["annotations"]["response_flags"], "RL");
    assert_eq!(
        doc["cause"]["exceptions"][0]["message"],
        "rate limited locally (RL)"
    );

    // The filter's own posts and unsampled requests stay without a document.
    let unsampled = pod(INBOUND).with_header("x-b3-sampled", "0");
    assert!(sidecar.unseen(&unsampled).is_none());
}

/// A request answered before the filter whose `request.time` is no time (0, negative,
/// nanoseconds after the epoch, more than 30 days ago, after the clock — found by
/// `make fuzz`): the segment starts at the clock instead of at 0, which X-Ray (and the
/// relay) would refuse. A long request (a day) keeps Envoy's start.
#[test]
fn requests_answered_before_the_filter_with_no_start_time_start_at_the_clock() {
    let now_nanos = (NOW * 1_000_000_000) as i64;
    let day = 24 * 3600 * 1_000_000_000;
    for request_time in [
        0,
        -1,
        i64::MIN,
        176,
        now_nanos - 31 * day,
        now_nanos + 1_000_000_000,
    ] {
        let denied = pod(INBOUND)
            .with_int_property("request.time", request_time)
            .with_response_header(":status", "403");
        let mut sidecar = Sidecar::new(&denied, FilterConfig::default());
        let doc = sidecar.unseen(&denied).unwrap();
        assert_eq!(doc["start_time"], NOW as f64, "request.time {request_time}");
        assert!(
            meshray_core::validate::validate_document(doc.clone()).is_ok(),
            "{doc}"
        );
    }
}

/// A request answered before the filter that started a day ago (a long stream) keeps
/// Envoy's start time.
#[test]
fn requests_answered_before_the_filter_keep_a_plausible_envoy_start() {
    let day_ago = NOW - 24 * 3600;
    let denied = pod(INBOUND)
        .with_int_property("request.time", (day_ago * 1_000_000_000) as i64)
        .with_response_header(":status", "403");
    let mut sidecar = Sidecar::new(&denied, FilterConfig::default());
    let doc = sidecar.unseen(&denied).unwrap();
    assert_eq!(doc["start_time"], day_ago as f64);
}

/// `service_name_format`: a segment and the subsegments calling it agree.
#[test]
fn service_name_format_names_segments_and_their_callers_alike() {
    let config =
        FilterConfig::parse(br#"{"service_name_format":"{service}.{namespace}"}"#).unwrap();
    let host = pod(INBOUND);
    let mut sidecar = Sidecar::new(&host, config);
    assert_eq!(
        sidecar.request(&host).unwrap()["name"],
        "productpage.default"
    );
    let call = same_pod(&host, "outbound|9080||reviews.prod.svc.cluster.local")
        .with_header(":authority", "reviews.prod:9080");
    assert_eq!(
        sidecar.request(&call).unwrap()["subsegments"][0]["name"],
        "reviews.prod"
    );
    let external = same_pod(&host, "outbound|443||api.example.com")
        .with_header(":authority", "api.example.com");
    assert_eq!(
        sidecar.request(&external).unwrap()["subsegments"][0]["name"],
        "api.example.com"
    );
}

/// Host calls of one request, as a sidecar makes them (each costs microseconds in
/// Envoy, a property read or a header write the most: docs/BENCHMARKS.md prices them).
fn calls_of(host: &FakeHost, sidecar: &mut Sidecar) -> Vec<&'static str> {
    host.calls.borrow_mut().clear();
    host.property_reads.borrow_mut().clear();
    sidecar.request(host).unwrap();
    host.calls.borrow().clone()
}

/// A root call out (no context): one header-map read, the clock, the cluster name,
/// the seven propagation headers of the four formats (added: none arrived), then at log time the clock,
/// `:status` and three properties (flags, size, and the client address of the segment
/// that encloses the call). No link lookup: a trace minted here has no segment yet.
#[test]
fn an_outbound_root_costs_fifteen_host_calls_four_of_them_property_reads() {
    let root = pod(TO_REVIEWS).with_header(":authority", "reviews:9080");
    let mut sidecar = Sidecar::new(&root, FilterConfig::default());
    let mut expected = vec!["get_header_map_pairs", "get_current_time", "get_property"];
    // None of the seven arrived: each is added, not replaced.
    expected.extend(["add_header_map_value"; 7]);
    expected.extend([
        "get_current_time",
        "get_header_map_value",
        "get_property",
        "get_property",
        "get_property",
    ]);
    assert_eq!(calls_of(&root, &mut sidecar), expected);
    assert_eq!(
        *root.property_reads.borrow(),
        [
            "xds.cluster_name",
            "response.flags",
            "response.size",
            "source.address"
        ]
    );
}

/// An inbound request with B3 context: the link of the trace is recorded (one
/// shared-data read and write) and five headers change (`x-b3-traceid` and
/// `x-b3-sampled` keep their values).
#[test]
fn an_inbound_request_with_b3_costs_fifteen_host_calls_four_of_them_property_reads() {
    let inbound = pod(INBOUND)
        .with_header("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7")
        .with_header("x-b3-spanid", "e457b5a2e4d86bd1")
        .with_header("x-b3-sampled", "1");
    let mut sidecar = Sidecar::new(&inbound, FilterConfig::default());
    let mut expected = vec![
        "get_header_map_pairs",
        "get_current_time",
        "get_property",
        "get_shared_data",
        "set_shared_data",
    ];
    // x-amzn-trace-id, traceparent and b3 are added, x-b3-spanid replaced,
    // x-b3-parentspanid added.
    expected.extend([
        "add_header_map_value",
        "add_header_map_value",
        "add_header_map_value",
        "replace_header_map_value",
        "add_header_map_value",
    ]);
    expected.extend([
        "get_current_time",
        "get_header_map_value",
        "get_property",
        "get_property",
        "get_property",
    ]);
    assert_eq!(calls_of(&inbound, &mut sidecar), expected);
}

/// Each propagation header is written once: added when the request lacks it,
/// replaced when it carries it — even with a value that is not UTF-8 (unreadable,
/// so never in the parsed headers, but in Envoy's map all the same): an add there
/// would leave the old value first in the map.
#[test]
fn headers_the_request_lacks_are_added_and_those_it_carries_replaced() {
    let host = pod(INBOUND)
        .with_header("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7")
        .with_header("x-b3-spanid", "e457b5a2e4d86bd1")
        .with_header_bytes("b3", &[0xff, 0xfe])
        .with_header("traceparent", "00-nothex-b7ad6b7169203331-01");
    let mut sidecar = Sidecar::new(&host, FilterConfig::default());
    let doc = sidecar.request(&host).unwrap();
    let writes: Vec<(&str, String)> = host
        .calls
        .borrow()
        .iter()
        .filter(|call| call.ends_with("_header_map_value") && !call.starts_with("get"))
        .copied()
        .zip(
            host.header_writes
                .borrow()
                .iter()
                .map(|(name, _)| name.clone()),
        )
        .collect();
    let replaced = |name: &str| ("replace_header_map_value", name.to_owned());
    let added = |name: &str| ("add_header_map_value", name.to_owned());
    assert_eq!(
        writes,
        [
            added("x-amzn-trace-id"),
            replaced("traceparent"),
            replaced("b3"),
            replaced("x-b3-spanid"),
            added("x-b3-parentspanid"),
            added("x-b3-sampled"),
        ]
    );
    // Every header the next hop reads is there once, with the new value.
    let id = doc["id"].as_str().unwrap();
    for name in [
        "x-amzn-trace-id",
        "traceparent",
        "b3",
        "x-b3-spanid",
        "x-b3-parentspanid",
        "x-b3-sampled",
    ] {
        let entries = host
            .headers
            .borrow()
            .iter()
            .filter(|(n, _)| n == name)
            .count();
        assert_eq!(entries, 1, "{name}");
    }
    assert_eq!(host.header("x-b3-spanid").as_deref(), Some(id));
    assert!(host.header("b3").unwrap().contains(id));
}

/// A request whose header map cannot be read is traced as one without context, and each
/// propagation header is replaced, never added: the request may carry it, and a second
/// entry would leave the next hop two values to choose from.
#[test]
fn an_unreadable_header_map_replaces_every_propagation_header() {
    let mut host = pod(INBOUND).with_header("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7");
    host.request_headers_fail = true;
    let mut sidecar = Sidecar::new(&host, FilterConfig::default());
    let doc = sidecar.request(&host).unwrap();
    let calls = host.calls.borrow();
    let writes: Vec<&str> = calls
        .iter()
        .filter(|call| call.ends_with("_header_map_value") && !call.starts_with("get"))
        .copied()
        .collect();
    assert!(!writes.is_empty());
    assert!(
        writes
            .iter()
            .all(|call| *call == "replace_header_map_value"),
        "{writes:?}"
    );
    let entries = host
        .headers
        .borrow()
        .iter()
        .filter(|(name, _)| name == "x-b3-traceid")
        .count();
    assert_eq!(entries, 1);
    assert!(
        doc["trace_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("1-"))
    );
}
