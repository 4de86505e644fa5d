//! A `redis-server` a test controls: stopped and started again on the same port (an
//! outage), optionally with TLS (certificates from a private CA made with `openssl`) and
//! a password, and read back through `INFO commandstats`.
// Test helpers outside `#[test]` functions: a failed unwrap here is a failed test with a
// clear location, as clippy.toml allows inside tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::let_underscore_must_use
)]
#![allow(dead_code)] // each test file uses a different subset

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// How the server is reached.
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// Serve TLS only (`--tls-port`), with a certificate for 127.0.0.1 from a private CA.
    pub tls: bool,
    /// `--requirepass`.
    pub password: Option<String>,
}

/// A `redis-server` on 127.0.0.1 without persistence; killed when dropped.
pub struct ControlledRedis {
    /// The port, kept across restarts.
    pub port: u16,
    /// Certificates and the log live here.
    dir: PathBuf,
    /// How it was started.
    options: RedisOptions,
    /// The process while running.
    child: Option<Child>,
}

impl ControlledRedis {
    /// Starts a server in `dir` on a free port and waits until it accepts connections.
    pub async fn start(dir: &Path, options: RedisOptions) -> ControlledRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if options.tls {
            make_certificates(dir);
        }
        let mut redis = ControlledRedis {
            port,
            dir: dir.to_owned(),
            options,
            child: None,
        };
        redis.resume().await;
        redis
    }

    /// `redis://127.0.0.1:PORT` or `rediss://127.0.0.1:PORT` (no password in it).
    pub fn url(&self) -> String {
        let scheme = if self.options.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The CA certificate (PEM) that signed the server's certificate, with TLS.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Kills the server (SIGKILL: nothing is saved, clients see the connection drop).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }

    /// Starts the server again on the same port, empty.
    pub async fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let program =
            std::env::var("MESHRAY_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let port = self.port.to_string();
        let mut args: Vec<String> = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            .map(str::to_owned)
            .to_vec();
        if self.options.tls {
            let file = |name: &str| self.dir.join(name).display().to_string();
            args.extend([
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                port.clone(),
                "--tls-cert-file".into(),
                file("server.pem"),
                "--tls-key-file".into(),
                file("server.key"),
                "--tls-ca-cert-file".into(),
                file("ca.pem"),
                "--tls-auth-clients".into(),
                "no".into(),
            ]);
        } else {
            args.extend(["--port".into(), port.clone()]);
        }
        if let Some(password) = &self.options.password {
            args.extend(["--requirepass".into(), password.clone()]);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("redis.log"))
            .unwrap();
        let child = Command::new(&program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {program}: {e}; run `make tools` (or set MESHRAY_REDIS_SERVER)"
                )
            });
        self.child = Some(child);
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "redis-server did not listen on port {} within 5 s",
            self.port
        );
    }

    /// A connection of the test's own (plain servers only), sending nothing on connect
    /// (no `CLIENT SETINFO`), so that `INFO commandstats` shows only the relay's commands.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        use redis::IntoConnectionInfo;
        let mut url = self.url();
        if let Some(password) = &self.options.password {
            url = url.replace("://", &format!("://:{password}@"));
        }
        let info = url.into_connection_info().unwrap();
        let settings = info.redis_settings().clone().set_skip_set_lib_name();
        redis::Client::open(info.set_redis_settings(settings))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// Pauses the process (SIGSTOP): connections stay open but nothing answers, as a
    /// Redis that is overloaded or failing over; [`Self::unfreeze`] lets it go on.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Resumes a frozen process (SIGCONT).
    pub fn unfreeze(&self) {
        self.signal("-CONT");
    }

    /// Sends `signal` to the server with `kill`.
    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().and_then(Child::id).unwrap();
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// `calls` of every command since start or the last [`Self::reset_stats`], by
    /// `INFO commandstats` name (`evalsha`, `script|load`, …), leaving out the test's own
    /// `info` and `config|resetstat`.
    pub async fn command_calls(&self) -> BTreeMap<String, u64> {
        let mut connection = self.connection().await;
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut connection)
            .await
            .unwrap();
        info.lines()
            .filter_map(|line| {
                let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = stats
                    .split(',')
                    .find_map(|field| field.strip_prefix("calls="))?
                    .parse()
                    .ok()?;
                Some((name.to_owned(), calls))
            })
            .filter(|(name, _)| name != "info" && name != "config|resetstat")
            .collect()
    }

    /// `CONFIG RESETSTAT`, so [`Self::command_calls`] counts from now (the test's
    /// connection; the relay never sends `CONFIG`).
    pub async fn reset_stats(&self) {
        let mut connection = self.connection().await;
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut connection)
            .await
            .unwrap();
    }
}

/// A fresh, empty directory for one test (left behind for inspection).
pub fn temp_dir(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
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

/// Makes `ca.pem`/`ca.key` and `server.pem`/`server.key` (for IP 127.0.0.1) in `dir`.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let output = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run openssl: {e}; run `make tools`"));
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=meshray test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
}
