//! Requests answered before the filter runs — an AuthorizationPolicy denial (RBAC, 403)
//! and local rate limiting (429) — get their segment too, built in the log phase
//! (issue 8, item 4).
//!
//! Needs the filter module, the relay binary, Envoy and moto (`make test`).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::start_mesh;
use meshray_e2e::MeshOptions;
use meshray_e2e::app::Service;
use meshray_e2e::check::BOOKINFO_DOCUMENTS;
use meshray_e2e::xray::{Expectation, Trace};
use serde_json::{Value, json};

/// What Istio makes of an `AuthorizationPolicy` with `action: DENY` for requests whose
/// path carries `deny=ratings` (the sample app passes the query down the chain).
fn rbac_deny() -> Value {
    json!({
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": {
                "action": "DENY",
                "policies": {
                    "ns[default]-policy[deny-ratings]-rule[0]": {
                        "permissions": [{"header": {
                            "name": ":path",
                            "string_match": {"contains": "deny=ratings"},
                        }}],
                        "principals": [{"any": true}],
                    },
                },
            },
        },
    })
}

/// Istio's local rate limit (EnvoyFilter recipe): 3 requests, then 429 for an hour.
fn local_rate_limit() -> Value {
    let all = json!({"numerator": 100, "denominator": "HUNDRED"});
    json!({
        "name": "envoy.filters.http.local_ratelimit",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": "http_local_rate_limiter",
            "token_bucket": {"max_tokens": 3, "tokens_per_fill": 1, "fill_interval": "3600s"},
            "filter_enabled": {"runtime_key": "local_rate_limit_enabled", "default_value": all},
            "filter_enforced": {"runtime_key": "local_rate_limit_enforced", "default_value": all},
        },
    })
}

/// Five requests; ratings' sidecar has RBAC and a local rate limit before meshray. The
/// second is denied at ratings (403), the fifth finds the bucket empty (429). Every
/// request is one trace of all five documents: the denied and the limited request have
/// a ratings segment with their status (`error`, `throttle`), parented by reviews'
/// subsegment of the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_and_rate_limited_requests_get_their_segment() {
    let options = MeshOptions {
        inbound_filters: BTreeMap::from([(
            Service::Ratings,
            vec![rbac_deny(), local_rate_limit()],
        )]),
        ..MeshOptions::default()
    };
    let mut mesh = start_mesh("denied-requests", options).await;
    for query in ["", "deny=ratings", "", "", ""] {
        if let Err(err) = mesh.request_productpage(query).await {
            panic!("{err}\n{}", mesh.diagnostics().await);
        }
    }
    let expect = Expectation {
        traces: 5,
        documents_per_trace: BOOKINFO_DOCUMENTS,
    };
    let collected = mesh.wait_for_traces(expect, Duration::from_secs(60)).await;
    if !collected.complete {
        panic!(
            "expected 5 traces of {BOOKINFO_DOCUMENTS} documents\n{}\n{}",
            collected.describe(),
            mesh.diagnostics().await
        );
    }
    let ratings_status = |trace: &Trace| trace.single("ratings", false).and_then(|d| d.http_status);
    let with_status = |status: u64| {
        collected
            .traces
            .iter()
            .find(|t| ratings_status(t) == Some(status))
            .unwrap_or_else(|| {
                panic!(
                    "no trace whose ratings segment answered {status}\n{}",
                    collected.describe()
                )
            })
    };
    for (status, what) in [(403, "denied"), (429, "rate limited")] {
        let trace = with_status(status);
        let segment = trace.single("ratings", false).unwrap();
        let call = trace.single("ratings", true).unwrap_or_else(|| {
            panic!(
                "{what}: no reviews → ratings subsegment\n{}",
                trace.render()
            )
        });
        assert_eq!(
            segment.parent_id.as_deref(),
            Some(call.id.as_str()),
            "{what}: the ratings segment hangs under reviews' call\n{}",
            trace.render()
        );
        assert!(segment.error, "{what}: error\n{}", trace.render());
        if status == 429 {
            assert!(
                segment.throttle,
                "rate limited: throttle\n{}",
                trace.render()
            );
        }
    }
    let ok = collected
        .traces
        .iter()
        .filter(|t| ratings_status(t) == Some(200))
        .count();
    assert_eq!(ok, 3, "{}", collected.describe());
}
