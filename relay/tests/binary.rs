//! The `meshray-relay` binary: bad configuration exits 2 listing every problem; a real
//! run writes its address file, serves, writes documents to stdout (logs go to stderr)
//! and exits 0 after SIGTERM.

// Test helpers outside `#[test]` functions: a failed unwrap here is a failed test with a
// clear location, as clippy.toml allows inside tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::let_underscore_must_use
)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{relay_command, segment};
use hyper::http::Method;
use meshray_test_support::http::request;
use meshray_test_support::ids::{new_xray_trace_id, now_secs};
use meshray_test_support::moto::Moto;
use meshray_test_support::run_dir::RunDir;
use meshray_test_support::xray::wait_for_documents;
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// Waits (up to 10 s) for the relay to write its address file and returns its text;
/// fails the test, with the relay's stderr when it was piped, if the relay exits first.
async fn wait_for_address_file(
    path: &std::path::Path,
    child: &mut tokio::process::Child,
) -> String {
    let mut addresses = String::new();
    for _ in 0..200 {
        addresses = std::fs::read_to_string(path).unwrap_or_default();
        if !addresses.is_empty() {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                pipe.read_to_string(&mut stderr).await.unwrap();
            }
            panic!("the relay exited early with {status}:\n{stderr}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    addresses
}

/// Several bad flags and variables: exit code 2 and one line per problem.
#[tokio::test]
async fn bad_config_exits_2_listing_every_problem() {
    let output = relay_command()
        .args(["--listen", "nowhere", "--sink", "kafka"])
        .env("MESHRAY_EPOCH_TTL", "soon")
        .env("MESHRAY_UPLOADERS", "0")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "--listen (MESHRAY_LISTEN) = \"nowhere\"",
        "--sink (MESHRAY_SINK) = \"kafka\"",
        "--epoch-ttl (MESHRAY_EPOCH_TTL) = \"soon\"",
        "--uploaders (MESHRAY_UPLOADERS) = \"0\"",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}

/// `--help` documents every flag with its variable.
#[tokio::test]
async fn help_documents_every_flag() {
    let output = relay_command().arg("--help").output().await.unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--listen",
        "MESHRAY_LISTEN",
        "--sink",
        "MESHRAY_SINK",
        "--epoch-cache",
        "MESHRAY_EPOCH_CACHE",
        "--epoch-ttl",
        "MESHRAY_EPOCH_TTL",
        "--daemon-listen",
        "MESHRAY_DAEMON_LISTEN",
        "--queue-capacity",
        "--max-body",
        "--uploaders",
        "--batch-interval-ms",
        "--drain-deadline",
        "--max-connections",
        "--retry-for",
        "--client-timeout",
        "--address-file",
        "MESHRAY_ADDRESS_FILE",
        "AWS_ENDPOINT_URL_XRAY",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}

/// A real process: address file, a POST, SIGTERM, the document on stdout, exit 0.
#[tokio::test]
async fn serves_and_exits_cleanly_on_sigterm() {
    let dir = RunDir::new("relay-binary").unwrap();
    let address_file = dir.path().join("addresses");
    let mut child = relay_command()
        .args(["--sink", "stdout", "--daemon-listen", "127.0.0.1:0"])
        .env("MESHRAY_LISTEN", "127.0.0.1:0")
        .env("MESHRAY_BATCH_INTERVAL_MS", "60000")
        .env("MESHRAY_ADDRESS_FILE", &address_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addresses = wait_for_address_file(&address_file, &mut child).await;
    let lines: Vec<&str> = addresses.lines().collect();
    assert_eq!(lines.len(), 2, "address file: {addresses:?}");
    let http_addr = lines[0].parse().unwrap();
    assert!(lines[1].starts_with("127.0.0.1:"));

    let document = segment("productpage", &new_xray_trace_id(), now_secs());
    let body = json!([document]).to_string();
    let response = request(http_addr, Method::POST, "/v1/segments", body.as_bytes())
        .await
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());

    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the relay did not exit within 20 s of SIGTERM")
        .unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .await
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0), "stderr:\n{stderr}");
    let written: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(written, [document], "stderr:\n{stderr}");
    assert!(stderr.contains("SIGTERM received"), "{stderr}");
}

/// The default `xray` sink takes region, credentials and `AWS_ENDPOINT_URL_XRAY` from
/// the environment (here: the child's, pointing at moto).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xray_sink_uses_the_default_chain_and_endpoint_variable() {
    let dir = RunDir::new("relay-binary-xray").unwrap();
    let moto = Moto::start(dir.path()).await.unwrap();
    let address_file = dir.path().join("addresses");
    let mut child = relay_command()
        .args(["--listen", "127.0.0.1:0", "--daemon-listen", "off"])
        .arg("--address-file")
        .arg(&address_file)
        .env("AWS_ENDPOINT_URL_XRAY", moto.endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("MESHRAY_BATCH_INTERVAL_MS", "20")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addresses = wait_for_address_file(&address_file, &mut child).await;
    let http_addr = addresses.trim().parse().unwrap();
    let trace = new_xray_trace_id();
    let body = json!([segment("productpage", &trace, now_secs())]).to_string();
    let response = request(http_addr, Method::POST, "/v1/segments", body.as_bytes())
        .await
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    let documents = wait_for_documents(&moto.api(), &trace, 1, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(documents[0]["name"], "productpage");
    child.kill().await.unwrap();
}
