//! The daemon port's TCP side: X-Ray SDKs' centralized sampling through the relay.
//!
//! moto has no sampling API, so X-Ray is a scripted endpoint here that answers
//! `GetSamplingRules` / `GetSamplingTargets` as the X-Ray API reference shows and records
//! what it was asked. The SDK is the real PyPI `aws-xray-sdk` (in `.venv`, `make tools`).

// Test helpers outside `#[test]` functions: a failed unwrap here is a failed test with a
// clear location, as clippy.toml allows inside tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::let_underscore_must_use
)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_xray::config::{Credentials, Region, SharedCredentialsProvider};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Json;
use axum::routing::post;
use meshray_relay::{Config, SinkKind};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use common::{Relay, test_config};
use hyper::http::Method;
use meshray_test_support::http::request;
use meshray_test_support::ids::now_secs;
use meshray_test_support::paths::{self, workspace_root};
use meshray_test_support::ports::free_port;
use meshray_test_support::run_dir::RunDir;

/// What the scripted X-Ray endpoint was asked: path, `authorization`, body.
type Calls = Arc<Mutex<Vec<(String, String, Value)>>>;

/// The access key the relay signs with.
const RELAY_ACCESS_KEY: &str = "AKIDMESHRAYRELAY";

/// Starts the scripted X-Ray endpoint; returns its address and the calls it records.
async fn scripted_xray() -> (SocketAddr, Calls) {
    let calls: Calls = Arc::default();
    let record = |path: &'static str| {
        move |State(calls): State<Calls>, headers: HeaderMap, body: Bytes| async move {
            let authorization = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            calls
                .lock()
                .unwrap()
                .push((path.to_owned(), authorization, body));
            Json(if path == "/GetSamplingRules" {
                rules()
            } else {
                targets()
            })
        }
    };
    let router = Router::new()
        .route("/GetSamplingRules", post(record("/GetSamplingRules")))
        .route("/SamplingTargets", post(record("/SamplingTargets")))
        .with_state(Arc::clone(&calls));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (addr, calls)
}

/// A rule record as `GetSamplingRules` returns it.
fn rule(name: &str, priority: i32, rate: f64, path: &str, service: &str) -> Value {
    json!({
        "SamplingRule": {
            "RuleName": name,
            "RuleARN": format!("arn:aws:xray:us-east-1:123456789012:sampling-rule/{name}"),
            "ResourceARN": "*", "Priority": priority, "FixedRate": rate, "ReservoirSize": 0,
            "ServiceName": service, "ServiceType": "*", "Host": "*", "HTTPMethod": "*",
            "URLPath": path, "Version": 1, "Attributes": {}
        },
        "CreatedAt": 1.7e9, "ModifiedAt": 1.7e9
    })
}

/// Four rules: always, never, later (0 until targets say 1.0), and a Default that samples nothing.
fn rules() -> Value {
    json!({"SamplingRuleRecords": [
        rule("meshray-always", 1, 1.0, "/always", "sdk-app"),
        rule("meshray-never", 2, 0.0, "/never", "sdk-app"),
        rule("meshray-later", 3, 0.0, "/later", "sdk-app"),
        rule("Default", 10000, 0.0, "*", "*"),
    ]})
}

/// Targets: `meshray-later` goes to a fixed rate of 1.0.
fn targets() -> Value {
    json!({
        "SamplingTargetDocuments": [{
            "RuleName": "meshray-later", "FixedRate": 1.0, "ReservoirQuota": 0,
            "ReservoirQuotaTTL": now_secs() + 300.0, "Interval": 10
        }],
        "LastRuleModification": 1.7e9,
        "UnprocessedStatistics": []
    })
}

/// AWS settings pointing at `endpoint` with the relay's own static credentials.
fn relay_aws(endpoint: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            RELAY_ACCESS_KEY,
            "relay-secret",
            None,
            None,
            "static",
        )))
        .endpoint_url(endpoint)
        .build()
}

/// A relay with the daemon on an ephemeral port; returns it, its run directory (keep it
/// while the relay runs) and the daemon address.
async fn relay_with_daemon(aws: SdkConfig, name: &str) -> (Relay, RunDir, SocketAddr) {
    let run_dir = RunDir::new(name).unwrap();
    let dir = run_dir.path();
    let address_file = dir.join("addresses");
    let config = Config {
        sink: SinkKind::File(dir.join("segments.jsonl")),
        daemon_listen: Some("127.0.0.1:0".parse().unwrap()),
        address_file: Some(address_file.clone()),
        aws: Some(aws),
        ..test_config()
    };
    let relay = Relay::start(config).await;
    let mut daemon = None;
    for _ in 0..100 {
        let text = std::fs::read_to_string(&address_file).unwrap_or_default();
        if let Some(line) = text.lines().nth(1) {
            daemon = line.parse().ok();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (
        relay,
        run_dir,
        daemon.expect("the relay wrote no daemon address"),
    )
}

/// The real aws-xray-sdk, with the relay as its daemon, gets X-Ray's rules and targets
/// through the relay: it samples by the centralized rules, applies the new rate the
/// targets call gives, and logs no error; X-Ray saw calls signed with the relay's
/// credentials, carrying the SDK's statistics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xray_sdk_samples_by_rules_proxied_through_the_relay() {
    let (xray, calls) = scripted_xray().await;
    let (relay, _dir, daemon) =
        relay_with_daemon(relay_aws(&format!("http://{xray}")), "sampling").await;

    let script = workspace_root().join("relay/tests/sdk/sampling_client.py");
    let output = tokio::process::Command::new(paths::python().unwrap())
        .arg(&script)
        .arg(daemon.to_string())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .expect("the SDK script did not finish within 60 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "SDK script failed: {stdout}\n{stderr}"
    );
    let result: Value = serde_json::from_str(stdout.trim()).unwrap();

    assert_eq!(
        result["rules"],
        json!([
            "Default",
            "meshray-always",
            "meshray-later",
            "meshray-never"
        ]),
        "{result}"
    );
    assert_eq!(result["always"], 20, "{result}");
    assert_eq!(result["never"], 0, "{result}");
    assert_eq!(result["later_before"], 0, "{result}");
    assert_eq!(result["later_after"], 20, "{result}");
    assert_eq!(
        result["errors"],
        json!([]),
        "the SDK logged errors: {result}\n{stderr}"
    );

    let calls = calls.lock().unwrap().clone();
    let rules_calls = calls
        .iter()
        .filter(|(p, _, _)| p == "/GetSamplingRules")
        .count();
    assert!(rules_calls >= 1, "{calls:?}");
    for (path, authorization, _) in &calls {
        assert!(
            authorization.starts_with(&format!("AWS4-HMAC-SHA256 Credential={RELAY_ACCESS_KEY}/"))
                && authorization.contains("/us-east-1/xray/aws4_request"),
            "{path} was not signed with the relay's credentials: {authorization:?}"
        );
    }
    let (_, _, statistics) = calls
        .iter()
        .find(|(p, _, _)| p == "/SamplingTargets")
        .expect("no SamplingTargets call reached X-Ray");
    let later = statistics["SamplingStatisticsDocuments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["RuleName"] == "meshray-later")
        .unwrap_or_else(|| panic!("no statistics for meshray-later: {statistics}"));
    assert_eq!(later["RequestCount"], 20, "{later}");
    assert_eq!(later["SampledCount"], 0, "{later}");
    assert!(
        later["ClientID"].as_str().is_some_and(|id| id.len() == 24),
        "{later}"
    );
    assert!(later["Timestamp"].as_f64().is_some(), "{later}");

    relay.stop().await.unwrap();
}

/// With X-Ray unreachable the daemon port still answers: X-Ray's default rule (1/s then
/// 5 %) and no new targets, in the shapes SDKs parse.
#[tokio::test]
async fn answers_the_fallback_rule_when_xray_is_unreachable() {
    let closed = free_port().unwrap();
    let (relay, _dir, daemon) = relay_with_daemon(
        relay_aws(&format!("http://127.0.0.1:{closed}")),
        "sampling-down",
    )
    .await;

    let rules = request(daemon, Method::POST, "/GetSamplingRules", b"{}")
        .await
        .unwrap();
    assert_eq!(rules.status, 200, "{}", rules.text());
    let rules = rules.json().unwrap();
    let records = rules["SamplingRuleRecords"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{rules}");
    let rule = &records[0]["SamplingRule"];
    assert_eq!(rule["RuleName"], "Default");
    assert_eq!(
        (rule["ReservoirSize"].as_i64(), rule["FixedRate"].as_f64()),
        (Some(1), Some(0.05))
    );
    for (key, value) in [
        ("ResourceARN", "*"),
        ("ServiceName", "*"),
        ("ServiceType", "*"),
        ("Host", "*"),
        ("HTTPMethod", "*"),
        ("URLPath", "*"),
    ] {
        assert_eq!(rule[key], value, "{key}");
    }
    assert_eq!(rule["Version"], 1);

    let body = json!({"SamplingStatisticsDocuments": [{
        "RuleName": "Default", "ClientID": "0123456789abcdef01234567", "Timestamp": 1764000000,
        "RequestCount": 5, "SampledCount": 1, "BorrowCount": 1
    }]});
    let targets = request(
        daemon,
        Method::POST,
        "/SamplingTargets",
        body.to_string().as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(targets.status, 200, "{}", targets.text());
    assert_eq!(
        targets.json().unwrap(),
        json!({"SamplingTargetDocuments": [], "LastRuleModification": 0.0, "UnprocessedStatistics": []})
    );

    let bad = request(
        daemon,
        Method::POST,
        "/SamplingTargets",
        b"{\"SamplingStatisticsDocuments\": 5}",
    )
    .await
    .unwrap();
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json().unwrap()["__type"], "InvalidRequestException");
    assert_eq!(
        request(daemon, Method::POST, "/Other", b"")
            .await
            .unwrap()
            .status,
        404
    );
    relay.stop().await.unwrap();
}
