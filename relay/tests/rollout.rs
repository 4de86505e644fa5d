//! The `meshray-relay` binary in a rolling update and in a log pipeline: SIGTERM under
//! load loses no accepted document; logs carry no ANSI codes when not on a terminal, and
//! `--log-format json` writes one JSON object per line.

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
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{read_lines, relay_command, segment};
use hyper::http::Method;
use meshray_test_support::http::request;
use meshray_test_support::ids::{new_xray_trace_id, now_secs};
use meshray_test_support::run_dir::RunDir;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

/// Starts the relay with `args` (plus a listen address, no daemon, an address file and a
/// file sink in `dir`); returns the process and its HTTP address.
async fn start(dir: &Path, args: &[&str]) -> (Child, SocketAddr) {
    let address_file = dir.join("addresses");
    let mut child = relay_command()
        .args(["--listen", "127.0.0.1:0", "--daemon-listen", "off"])
        .arg("--address-file")
        .arg(&address_file)
        .arg("--sink")
        .arg(format!("file:{}", dir.join("segments.jsonl").display()))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if let Ok(text) = std::fs::read_to_string(&address_file)
            && let Some(addr) = text.lines().next().and_then(|l| l.parse().ok())
        {
            return (child, addr);
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the relay exited early with {status}:\n{}",
                stderr_of(&mut child).await
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the relay wrote no address file within 10 s");
}

/// Sends SIGTERM to `child`.
async fn sigterm(child: &Child) {
    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
}

/// Waits for exit (30 s at most) and returns the exit code and stderr.
async fn wait(child: &mut Child) -> (Option<i32>, String) {
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the relay did not exit within 30 s")
        .unwrap();
    (status.code(), stderr_of(child).await)
}

async fn stderr_of(child: &mut Child) -> String {
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        pipe.read_to_string(&mut stderr).await.unwrap();
    }
    stderr
}

/// A rolling update as Kubernetes does it: SIGTERM while four senders post batches; the
/// senders stop picking this pod once `/readyz` fails (as the endpoints controller and
/// kube-proxy would), requests already on their way still land. Every document the relay
/// answered 200 for is in the sink after it exits 0, and it still took requests after
/// readiness failed (`--shutdown-delay`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_no_accepted_document() {
    let run_dir = RunDir::new("rollout").unwrap();
    let dir = run_dir.path();
    // A delay long enough that the check below surely falls inside it on a busy machine.
    let (mut child, addr) =
        start(dir, &["--shutdown-delay", "6", "--batch-interval-ms", "50"]).await;

    let unready = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for _ in 0..4 {
        let (unready, accepted) = (Arc::clone(&unready), Arc::clone(&accepted));
        senders.push(tokio::spawn(async move {
            while !unready.load(Ordering::SeqCst) {
                let trace = new_xray_trace_id();
                let batch: Vec<Value> = (0..10)
                    .map(|_| segment("productpage", &trace, now_secs()))
                    .collect();
                let response = request(
                    addr,
                    Method::POST,
                    "/v1/segments",
                    json!(batch).to_string().as_bytes(),
                )
                .await
                .unwrap();
                if response.status == 200 {
                    accepted.fetch_add(
                        response.json().unwrap()["accepted"].as_u64().unwrap() as usize,
                        Ordering::SeqCst,
                    );
                }
            }
        }));
    }
    let watcher = {
        let unready = Arc::clone(&unready);
        tokio::spawn(async move {
            loop {
                if request(addr, Method::GET, "/readyz", b"")
                    .await
                    .unwrap()
                    .status
                    == 503
                {
                    unready.store(true, Ordering::SeqCst);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_sigterm = accepted.load(Ordering::SeqCst);
    assert!(before_sigterm > 0, "the senders got nothing accepted");
    sigterm(&child).await;
    watcher.await.unwrap();
    for sender in senders {
        sender.await.unwrap();
    }
    // Readiness failed, yet the relay still takes documents during the delay.
    let late = json!([segment("reviews", &new_xray_trace_id(), now_secs())]);
    let response = request(
        addr,
        Method::POST,
        "/v1/segments",
        late.to_string().as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(
        response.status,
        200,
        "not accepting during --shutdown-delay: {}",
        response.text()
    );
    let total = accepted.load(Ordering::SeqCst) + 1;

    let (code, stderr) = wait(&mut child).await;
    assert_eq!(code, Some(0), "{stderr}");
    let written = read_lines(&dir.join("segments.jsonl"));
    assert_eq!(
        written.len(),
        total,
        "accepted {total}, written {}:\n{stderr}",
        written.len()
    );
    assert!(
        stderr.contains("still accepting for --shutdown-delay"),
        "{stderr}"
    );
}

/// Logs piped to a file carry no ANSI escape codes; `--log-format json` gives one JSON
/// object per line with level, message and the event's fields at the top level.
#[tokio::test]
async fn logs_are_plain_text_or_json_lines() {
    for format in ["text", "json"] {
        let run_dir = RunDir::new("logs").unwrap();
        let dir = run_dir.path();
        let (mut child, addr) =
            start(dir, &["--log-format", format, "--shutdown-delay", "0"]).await;
        let body = json!([segment("productpage", &new_xray_trace_id(), now_secs())]);
        assert_eq!(
            request(
                addr,
                Method::POST,
                "/v1/segments",
                body.to_string().as_bytes()
            )
            .await
            .unwrap()
            .status,
            200
        );
        sigterm(&child).await;
        let (code, stderr) = wait(&mut child).await;
        assert_eq!(code, Some(0), "{stderr}");
        assert!(
            !stderr.contains('\u{1b}'),
            "{format}: ANSI escape codes in piped logs:\n{stderr}"
        );
        if format == "json" {
            let lines: Vec<Value> = stderr
                .lines()
                .map(|line| {
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
                })
                .collect();
            let serving = lines
                .iter()
                .find(|l| l["message"] == "Relay is serving.")
                .unwrap_or_else(|| panic!("no start-up line in {stderr}"));
            assert_eq!(serving["level"], "INFO");
            assert_eq!(
                serving["http"],
                addr.to_string(),
                "fields at the top level: {serving}"
            );
            assert!(serving["timestamp"].is_string());
        } else {
            assert!(stderr.contains("Relay is serving."), "{stderr}");
            assert!(
                serde_json::from_str::<Value>(stderr.lines().next().unwrap_or_default()).is_err()
            );
        }
    }
}
