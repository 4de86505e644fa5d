//! Shared helpers for the relay's integration tests: the relay in-process on an
//! ephemeral port, `moto_server` and `redis-server` as child processes on ephemeral
//! ports (killed when dropped), a tiny HTTP client, and document builders.
// Test helpers outside `#[test]` functions: a failed unwrap here is a failed test with a
// clear location, as clippy.toml allows inside tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::let_underscore_must_use
)]
#![allow(dead_code)] // each test file uses a different subset

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_xray::config::{Credentials, Region, SharedCredentialsProvider};
use meshray_relay::{Config, RelayError};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};
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
    pub async fn post_segments(&self, body: &Value) -> Response {
        http(
            self.addr,
            "POST",
            "/v1/segments",
            body.to_string().as_bytes(),
        )
        .await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Response {
        http(self.addr, "GET", path, b"").await
    }

    /// The value of an unlabelled metric line, e.g. `meshray_relay_documents_sent_total`.
    pub async fn metric(&self, line_start: &str) -> f64 {
        let text = self.get("/metrics").await.body;
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

/// A test config: everything on 127.0.0.1 ephemeral ports, daemon off, short batches.
pub fn test_config() -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        daemon_listen: None,
        batch_interval: Duration::from_millis(50),
        drain_deadline: Duration::from_secs(10),
        // In-process relays have no endpoints to leave: stop at once.
        shutdown_delay: Duration::ZERO,
        max_attempts: 3,
        ..Config::default()
    }
}

/// A fresh, empty directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "meshray-relay-{name}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The JSON lines of a file sink.
pub fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

// === HTTP ===

/// A response, read whole.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body as text.
    pub body: String,
}

impl Response {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`).
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Response {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_owned(),
    }
}

// === Documents ===

/// Seconds since the epoch, now.
pub fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// `n` random hex digits.
pub fn hex(n: usize) -> String {
    (0..n)
        .map(|_| char::from_digit(fastrand::u32(0..16), 16).unwrap())
        .collect()
}

/// A fresh X-Ray trace id with the current epoch.
pub fn xray_trace_id() -> String {
    format!("1-{:08x}-{}", now_secs() as u32, hex(24))
}

/// A minimal valid segment.
pub fn segment(name: &str, trace_id: &str, start: f64) -> Value {
    json!({
        "name": name,
        "id": hex(16),
        "trace_id": trace_id,
        "start_time": start,
        "end_time": start + 0.125,
        "http": {"request": {"method": "GET", "url": "http://productpage:9080/"}, "response": {"status": 200}},
    })
}

// === Child processes ===

/// Where `moto_server` is: `$MESHRAY_MOTO_SERVER`, else `<workspace>/.venv/bin/moto_server`.
pub fn moto_server_path() -> PathBuf {
    let path = std::env::var_os("MESHRAY_MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/moto_server"));
    assert!(
        path.exists(),
        "moto_server not found at {}: run `make tools` (or set MESHRAY_MOTO_SERVER)",
        path.display()
    );
    path
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// A local X-Ray API (`moto_server`) on 127.0.0.1, killed when dropped.
pub struct Moto {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The process; `kill_on_drop`.
    _child: Child,
}

impl Moto {
    /// Starts `moto_server -H 127.0.0.1 -p 0` and waits for the port it reports.
    pub async fn start() -> Moto {
        let mut child = Command::new(moto_server_path())
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("cannot start moto_server");
        // Read both streams for ever (werkzeug logs every request; a full pipe would block it).
        let (lines_tx, mut lines) = mpsc::unbounded_channel::<String>();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for stream in [
            Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
            Box::new(stderr),
        ] {
            let lines_tx = lines_tx.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    let _ = lines_tx.send(line);
                }
            });
        }
        drop(lines_tx);
        let endpoint = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.recv().await {
                if let Some(at) = line.find("http://127.0.0.1:") {
                    return line[at..]
                        .trim_end_matches(|c: char| !c.is_ascii_digit())
                        .to_owned();
                }
            }
            panic!("moto_server exited before reporting its port");
        })
        .await
        .expect("moto_server did not report its port within 60 s");
        // Keep draining its output in the background.
        tokio::spawn(async move { while lines.recv().await.is_some() {} });
        Moto {
            endpoint,
            _child: child,
        }
    }

    /// AWS settings for this moto: fixed region, dummy static credentials.
    pub fn sdk_config(&self) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "testing", "testing", None, None, "static",
            )))
            .endpoint_url(&self.endpoint)
            .build()
    }

    /// An X-Ray client on this moto, to read back what the relay sent.
    pub fn client(&self) -> aws_sdk_xray::Client {
        aws_sdk_xray::Client::new(&self.sdk_config())
    }
}

/// The documents of `trace_id` stored in X-Ray (empty if none yet).
pub async fn trace_documents(client: &aws_sdk_xray::Client, trace_id: &str) -> Vec<Value> {
    let output = client
        .batch_get_traces()
        .trace_ids(trace_id)
        .send()
        .await
        .unwrap();
    output
        .traces()
        .iter()
        .filter(|t| t.id() == Some(trace_id))
        .flat_map(|t| t.segments())
        .filter_map(|s| s.document())
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

/// Polls until `trace_id` has `count` documents in X-Ray (20 s at most).
pub async fn wait_for_trace(
    client: &aws_sdk_xray::Client,
    trace_id: &str,
    count: usize,
) -> Vec<Value> {
    let mut documents = Vec::new();
    for _ in 0..200 {
        documents = trace_documents(client, trace_id).await;
        if documents.len() >= count {
            return documents;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "trace {trace_id} has {} documents in X-Ray, expected {count}",
        documents.len()
    );
}

/// A free TCP port on 127.0.0.1, for servers that cannot bind port 0 themselves.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A `redis-server` on 127.0.0.1, no persistence, killed when dropped.
pub struct RedisServer {
    /// `redis://127.0.0.1:PORT`.
    pub url: String,
    /// The process; `kill_on_drop`.
    _child: Child,
}

impl RedisServer {
    /// Starts `redis-server` (`$MESHRAY_REDIS_SERVER` or from `PATH`) and waits until it
    /// accepts connections.
    pub async fn start() -> RedisServer {
        let program =
            std::env::var("MESHRAY_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let port = free_port();
        let child = Command::new(&program)
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {program}: {e}; run `make tools` (or set MESHRAY_REDIS_SERVER)"
                )
            });
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return RedisServer {
                    url: format!("redis://127.0.0.1:{port}"),
                    _child: child,
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not listen on port {port} within 5 s");
    }
}
