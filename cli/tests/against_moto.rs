//! The `meshray` binary against a real local X-Ray API (moto, `make tools`): the fixed
//! Bookinfo documents go in with `PutTraceSegments` (re-timed to now), and `meshray traces`
//! and `meshray view` read them back through the default chain with
//! `AWS_ENDPOINT_URL_XRAY`, as a user would run them.

// A failed unwrap in a helper is a failed test with a clear location (as clippy.toml
// allows in the tests themselves).
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use meshray_test_support::moto::{ACCESS_KEY_ID, Moto, REGION, SECRET_ACCESS_KEY};
use meshray_test_support::run_dir::RunDir;
use serde_json::Value;

/// The fixture's documents, moved to start one minute ago, with trace ids of this epoch.
fn documents_of_now() -> Vec<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let traces = common::bookinfo();
    let shift = now.as_secs_f64() - 60.0 - traces[0].start_time();
    let epoch = format!("{:08x}", now.as_secs());
    let mut out = Vec::new();
    for trace in traces {
        for doc in trace.documents {
            let mut raw = doc.raw;
            retime(&mut raw, shift);
            if let Some(id) = raw["trace_id"].as_str() {
                let fresh = format!("1-{epoch}-{}", &id[11..]);
                raw["trace_id"] = Value::String(fresh);
            }
            out.push(raw.to_string());
        }
    }
    out
}

fn retime(doc: &mut Value, shift: f64) {
    for key in ["start_time", "end_time"] {
        if let Some(t) = doc[key].as_f64() {
            doc[key] = serde_json::json!(t + shift);
        }
    }
    if let Some(subs) = doc.get_mut("subsegments").and_then(Value::as_array_mut) {
        subs.iter_mut().for_each(|s| retime(s, shift));
    }
}

fn meshray(moto: &Moto, args: &[&str]) -> (String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_meshray"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .env("AWS_ENDPOINT_URL_XRAY", moto.endpoint())
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "meshray {args:?} failed: {}\n{stdout}\n{stderr}",
        output.status
    );
    (stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_and_view_read_what_the_api_stored() {
    let dir = RunDir::new("cli-moto").unwrap();
    let moto = Moto::start(dir.path()).await.unwrap();
    let documents = documents_of_now();
    let stored = moto
        .client()
        .put_trace_segments()
        .set_trace_segment_documents(Some(documents))
        .send()
        .await
        .unwrap();
    assert!(stored.unprocessed_trace_segments().is_empty());

    // moto stores synchronously; poll briefly anyway until all 4 traces are listed.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (stdout, stderr) = loop {
        let (stdout, stderr) =
            tokio::task::block_in_place(|| meshray(&moto, &["traces", "--since", "5m"]));
        if stdout.matches("trace 1-").count() >= 4 || Instant::now() > deadline {
            break (stdout, stderr);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(
        stdout.matches("\ntrace 1-").count() + usize::from(stdout.starts_with("trace 1-")),
        4,
        "{stdout}"
    );
    assert!(
        stdout.contains("└─ istio-ingressgateway [segment]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ratings [segment]") && stdout.contains("http 503 fault"),
        "{stdout}"
    );
    assert!(
        stdout.contains("reviews -> ratings  (4 traces)"),
        "{stdout}"
    );
    assert!(stderr.contains("GetTraceSummaries: 4 traces"), "{stderr}");
    assert!(stderr.contains("GetServiceGraph: no services"), "{stderr}");

    let out = dir.path().join("view.html");
    let out_arg = out.display().to_string();
    let (stdout, _) = tokio::task::block_in_place(|| {
        meshray(&moto, &["view", "--since", "5m", "--out", &out_arg])
    });
    assert!(
        stdout.contains("view.html (4 traces, 4 services"),
        "{stdout}"
    );
    let html = std::fs::read_to_string(&out).unwrap();
    assert_eq!(html.matches("<g class=\"node ").count(), 4);
    assert!(html.contains("data-from=\"productpage\" data-to=\"reviews\" data-calls=\"4\""));
    assert!(html.contains("data-from=\"reviews\" data-to=\"ratings\" data-calls=\"4\""));
    assert_eq!(html.matches("<details class=\"trace ").count(), 4);
    assert_eq!(html.matches("<div class=\"bar ").count(), 32);
    assert!(html.contains(&format!("X-Ray API at {}", moto.endpoint())));

    // --limit keeps the most recent traces and says so.
    let (_, stderr) = tokio::task::block_in_place(|| {
        meshray(
            &moto,
            &["view", "--since", "5m", "--limit", "2", "--out", &out_arg],
        )
    });
    assert!(
        stderr.contains("4 traces; reading the 2 most recent"),
        "{stderr}"
    );
    let html = std::fs::read_to_string(&out).unwrap();
    assert_eq!(html.matches("<details class=\"trace ").count(), 2);
}

#[test]
fn a_missing_region_is_a_clear_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_meshray"))
        .args(["traces", "--since", "5m"])
        .env_clear()
        .env("HOME", std::env::temp_dir())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no AWS region is configured; set AWS_REGION"),
        "{stderr}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_meshray"))
        .args(["view", "--since", "5 minutes"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a duration"));
}
