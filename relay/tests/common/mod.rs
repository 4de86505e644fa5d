//! What the relay's integration tests share beyond `meshray_test_support` (moto, Redis,
//! HTTP, ids, X-Ray reads, run directories): the relay in-process on an ephemeral port,
//! the test config, and document builders.
// Test helpers outside `#[test]` functions: a failed unwrap here is a failed test with a
// clear location, as clippy.toml allows inside tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::let_underscore_must_use
)]
#![allow(dead_code)] // each test file uses a different subset

pub mod fake_xray;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use hyper::http::Method;
use meshray_relay::{Config, RelayError};
use meshray_test_support::http::{HttpResponse, request};
use meshray_test_support::ids::random_hex;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

// === The relay ===

/// A relay running in this process.
pub struct Relay {
    /// Its HTTP address.
    pub addr: SocketAddr,
    /// Fires the shutdown future passed to `run`.
    shutdown: Option<oneshot::Sender<()>>,
    /// The `run` task.
    task: Option<JoinHandle<Result<(), RelayError>>>,
}

impl Relay {
    /// Binds 127.0.0.1:0 and runs the relay with `config`.
    pub async fn start(config: Config) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(meshray_relay::run(listener, config, async {
            let _ = signal.await;
        }));
        Relay {
            addr,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    /// Runs the relay with `config` and the daemon UDP port on an ephemeral port, which
    /// it learns from the address file `address_file`; returns the relay and that port.
    pub async fn start_with_daemon(config: Config, address_file: &Path) -> (Relay, SocketAddr) {
        let relay = Relay::start(Config {
            daemon_listen: Some("127.0.0.1:0".parse().unwrap()),
            address_file: Some(address_file.to_owned()),
            ..config
        })
        .await;
        for _ in 0..200 {
            let text = std::fs::read_to_string(address_file).unwrap_or_default();
            if let Some(udp) = text.lines().nth(1) {
                return (relay, udp.parse().unwrap());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "the relay wrote no daemon address to {}",
            address_file.display()
        );
    }

    /// Signals shutdown and waits for `run` to return.
    pub async fn stop(mut self) -> Result<(), RelayError> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the relay did not stop within 30 s")
            .expect("the relay task panicked")
    }

    /// `POST /v1/segments` with `body`.
    pub async fn post_segments(&self, body: &Value) -> HttpResponse {
        request(
            self.addr,
            Method::POST,
            "/v1/segments",
            body.to_string().as_bytes(),
        )
        .await
        .unwrap()
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> HttpResponse {
        request(self.addr, Method::GET, path, b"").await.unwrap()
    }

    /// The value of an unlabelled metric line, e.g. `meshray_relay_documents_sent_total`.
    pub async fn metric(&self, line_start: &str) -> f64 {
        let text = self.get("/metrics").await.text();
        text.lines()
            .find_map(|line| line.strip_prefix(line_start)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// The relay binary of this package, with no `MESHRAY_*` variables from the caller's
/// environment, killed when dropped.
pub fn relay_command() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_meshray-relay"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("MESHRAY_") {
            command.env_remove(key);
        }
    }
    command
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    command
}

/// A test config: everything on 127.0.0.1 ephemeral ports, daemon off, short batches.
pub fn test_config() -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        daemon_listen: None,
        batch_interval: Duration::from_millis(50),
        drain_deadline: Duration::from_secs(10),
        retry_for: Duration::from_secs(2),
        // In-process relays have no endpoints to leave: stop at once.
        shutdown_delay: Duration::ZERO,
        ..Config::default()
    }
}

/// The JSON lines of a file sink.
pub fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

// === Documents ===

/// A minimal valid segment.
pub fn segment(name: &str, trace_id: &str, start: f64) -> Value {
    json!({
        "name": name,
        "id": random_hex(16),
        "trace_id": trace_id,
        "start_time": start,
        "end_time": start + 0.125,
        "http": {"request": {"method": "GET", "url": "http://productpage:9080/"}, "response": {"status": 200}},
    })
}
