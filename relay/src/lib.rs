//! meshray-relay: takes X-Ray segment documents from the meshray Envoy filter
//! (`POST /v1/segments`) and from X-Ray SDKs (the daemon's UDP protocol) and sends them
//! to AWS X-Ray.
//!
//! Pipeline: validate each document (meshray-core) → resolve the epoch of foreign trace
//! ids (one epoch cache call per batch) → bounded queue → batches of ≤ 50 → N
//! concurrent uploaders → `PutTraceSegments`, retrying throttling and transient errors
//! with full-jitter backoff. [`run`] is the whole service; the binary only parses
//! [`Config`], binds and passes a shutdown signal, so tests start it in-process.
//!
//! # Layout
//! - [`config`]: flags and `MESHRAY_*` variables → validated [`Config`], every error at once.
//! - [`server`]: accept loop, connection limit, graceful drain.
//! - [`routes`]: the HTTP endpoints.
//! - [`spans`]: Zipkin v2 and OTLP spans from Envoy's own tracers → X-Ray documents.
//! - [`body`]: request bodies: size limits, gzip.
//! - [`daemon`]: the X-Ray daemon UDP protocol.
//! - [`sampling`]: the X-Ray daemon TCP side: the sampling API proxy for SDKs.
//! - [`ingest`]: validation, epoch resolution, queueing; shared by HTTP and UDP.
//! - [`epoch_cache`]: the [`epoch_cache::EpochCache`] trait, `memory` and `redis` backends.
//! - [`queue`]: the bounded document queue.
//! - [`pipeline`]: the batcher and its uploaders.
//! - [`sink`]: X-Ray, stdout or file.
//! - [`xray`]: client, request builder, service, retry classification, upload loop.
//! - [`metrics`]: Prometheus counters.
//! - [`runtime`]: the binary's async runtime, sized from the CPUs the process may use.
//! - [`error`]: the [`RelayError`] type.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod body;
pub mod config;
pub mod daemon;
pub mod epoch_cache;
pub mod error;
pub mod ingest;
pub mod metrics;
pub mod pipeline;
pub mod queue;
pub mod routes;
pub mod runtime;
pub mod sampling;
pub mod server;
pub mod sink;
pub mod spans;
pub mod xray;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::oneshot;
use tokio::time::{Instant, timeout_at};
use tracing::{info, warn};

pub use config::{
    Cli, Config, ConfigError, ConfigErrors, EpochCacheKind, ForeignIds, LogFormat, SinkKind,
};
pub use error::RelayError;

use crate::ingest::Ingest;
use crate::metrics::{Metrics, fail};
use crate::pipeline::{BatcherSettings, InFlight};
use crate::routes::AppState;
use crate::sampling::SamplingProxy;
use crate::sink::Sink;

/// Runs the relay on `listener` until `shutdown` completes, then drains and returns.
///
/// Start-up: builds the sink (loading AWS settings from the default chain unless
/// [`Config::aws`] is set) and the epoch cache, binds the daemon UDP socket if
/// [`Config::daemon_listen`] is set, and writes [`Config::address_file`] (the HTTP
/// address on the first line, the UDP address on the second if on).
///
/// Shutdown: `/readyz` turns 503 at once and requests are still taken for
/// [`Config::shutdown_delay`] (while Kubernetes removes the pod from the endpoints); then,
/// within [`Config::drain_deadline`]: no new connection is accepted; open connections finish their requests; the UDP listener
/// stops; the queue is closed and what it holds is sent. Documents still unsent at the
/// deadline are counted as failed and the function returns anyway.
///
/// # Errors
/// [`RelayError`] when start-up fails: no AWS region, sink file, unusable epoch cache
/// URL or certificates, daemon socket or address file. A Redis that does not answer is
/// not an error: the relay starts resolving locally. Once serving, nothing fails the
/// relay.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RelayError> {
    let metrics = Arc::new(Metrics::new());
    let sink = Arc::new(Sink::build(&config, Arc::clone(&metrics)).await?);
    let cache = epoch_cache::build(&config, Arc::clone(&metrics)).await?;
    let (queue_tx, queue_rx) = queue::channel(config.queue_capacity);
    let ingest = Arc::new(
        Ingest::new(queue_tx, cache, Arc::clone(&metrics)).with_foreign_ids(config.foreign_ids),
    );

    let http_addr = listener.local_addr().map_err(RelayError::LocalAddr)?;
    let (daemon_socket, daemon_tcp) = match config.daemon_listen {
        Some(addr) => {
            let (udp, tcp) = bind_daemon(addr).await?;
            (Some(udp), Some(tcp))
        }
        None => (None, None),
    };
    let daemon_addr = match &daemon_socket {
        Some(socket) => Some(socket.local_addr().map_err(RelayError::LocalAddr)?),
        None => None,
    };
    if let Some(path) = &config.address_file {
        write_address_file(path, http_addr, daemon_addr).await?;
    }

    // Dropping `close_batcher` (or sending on it) closes the queue and drains it.
    let (close_batcher, close_rx) = oneshot::channel();
    let in_flight = Arc::new(InFlight::default());
    let mut batcher = tokio::spawn(pipeline::run_batcher(
        queue_rx,
        sink,
        BatcherSettings {
            interval: config.batch_interval,
            uploaders: config.uploaders,
        },
        Arc::clone(&in_flight),
        close_rx,
    ));
    // Dropping `stop_daemon` stops the UDP listener.
    let (stop_daemon, stop_daemon_rx) = oneshot::channel::<()>();
    let daemon = daemon_socket.map(|socket| {
        tokio::spawn(daemon::serve(
            socket,
            Arc::clone(&ingest),
            Arc::clone(&metrics),
            stop_daemon_rx,
        ))
    });

    // The daemon's TCP side: the sampling API proxy; stops with the UDP listener.
    let (stop_sampling, stop_sampling_rx) = oneshot::channel::<()>();
    let sampling = match daemon_tcp {
        Some(listener) => {
            let proxy = Arc::new(SamplingProxy::new(sampling_client(&config).await));
            let client_timeout = config.client_timeout;
            Some(tokio::spawn(async move {
                let connections = server::accept_until(
                    listener,
                    proxy.router(),
                    MAX_SAMPLING_CONNECTIONS,
                    client_timeout,
                    async {
                        let _stopped = stop_sampling_rx.await;
                    },
                )
                .await;
                connections.shutdown().await;
            }))
        }
        None => None,
    };

    let state = Arc::new(AppState {
        ingest: Arc::clone(&ingest),
        metrics: Arc::clone(&metrics),
        max_body_bytes: config.max_body_bytes,
        ready: AtomicBool::new(true),
    });
    info!(
        http = %http_addr,
        daemon = ?daemon_addr,
        sink = %config.sink,
        "Relay is serving."
    );
    let ready_state = Arc::clone(&state);
    let shutdown_delay = config.shutdown_delay;
    let shutdown = async move {
        shutdown.await;
        // Readiness off first, then keep serving while endpoints update: senders that
        // still pick this pod find it listening (zero-loss rollouts).
        ready_state.ready.store(false, Ordering::SeqCst);
        info!(
            delay_secs = shutdown_delay.as_secs_f64(),
            "Shutting down: /readyz answers 503; still accepting for --shutdown-delay."
        );
        tokio::time::sleep(shutdown_delay).await;
    };
    let connections = server::accept_until(
        listener,
        routes::router(Arc::clone(&state)),
        config.max_connections,
        config.client_timeout,
        shutdown,
    )
    .await;

    // === Drain ===
    let deadline = Instant::now() + config.drain_deadline;
    info!(
        deadline_secs = config.drain_deadline.as_secs(),
        queued = ingest.queue().depth(),
        "Shutting down: draining connections and the queue."
    );
    if timeout_at(deadline, connections.shutdown()).await.is_err() {
        warn!("Drain deadline passed with HTTP connections still open; closing them.");
    }
    drop(stop_daemon);
    drop(stop_sampling);
    if let Some(sampling) = sampling {
        let _finished = timeout_at(deadline, sampling).await;
    }
    if let Some(daemon) = daemon {
        // The listener returns at its next select; nothing to wait for beyond that.
        let _finished = timeout_at(deadline, daemon).await;
    }
    ingest.start_draining();
    drop(close_batcher);
    match timeout_at(deadline, &mut batcher).await {
        Ok(_) => info!(sent = metrics.sent.get(), "Drained; stopping."),
        Err(_) => {
            let lost = ingest.queue().depth() + in_flight.get();
            batcher.abort();
            metrics.fail(fail::DRAIN_DEADLINE, lost);
            warn!(
                documents = lost,
                "Drain deadline passed; dropping the documents not yet sent."
            );
        }
    }
    Ok(())
}

/// Concurrent SDK connections to the daemon's TCP port (each SDK keeps one or two).
const MAX_SAMPLING_CONNECTIONS: usize = 256;
/// Attempts to find a port free for both UDP and TCP when `--daemon-listen` has port 0.
const DAEMON_PORT_ATTEMPTS: usize = 16;

/// Binds the daemon address for UDP (segments) and TCP (sampling) on one port, as the
/// X-Ray daemon does; with port 0, picks a port free for both.
async fn bind_daemon(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), RelayError> {
    let attempts = if addr.port() == 0 {
        DAEMON_PORT_ATTEMPTS
    } else {
        1
    };
    let mut last_error = None;
    for _ in 0..attempts {
        let udp = UdpSocket::bind(addr)
            .await
            .map_err(|source| RelayError::DaemonBind { addr, source })?;
        let bound = udp.local_addr().map_err(RelayError::LocalAddr)?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(source) => last_error = Some((bound, source)),
        }
    }
    match last_error {
        Some((addr, source)) => Err(RelayError::DaemonBind { addr, source }),
        None => Err(RelayError::DaemonBind {
            addr,
            source: std::io::Error::other("no port free for both UDP and TCP"),
        }),
    }
}

/// The X-Ray client the sampling proxy uses: the injected AWS settings, else the default
/// chain when the sink is X-Ray (the relay has AWS settings then); else none, and SDKs get
/// the local fallback rule.
async fn sampling_client(config: &Config) -> Option<aws_sdk_xray::Client> {
    let sdk = match (&config.aws, &config.sink) {
        (Some(sdk), _) => sdk.clone(),
        (None, SinkKind::Xray) => xray::client::load_default_config().await,
        (None, _) => return None,
    };
    match xray::client::build(&sdk) {
        Ok(client) => Some(client),
        Err(e) => {
            warn!(error = %e, "The sampling proxy has no X-Ray client; SDKs get the local fallback rule.");
            None
        }
    }
}

/// Writes the bound addresses, one per line, replacing the file atomically so a reader
/// never sees half of it.
async fn write_address_file(
    path: &Path,
    http: SocketAddr,
    daemon: Option<SocketAddr>,
) -> Result<(), RelayError> {
    let mut text = format!("{http}\n");
    if let Some(daemon) = daemon {
        text.push_str(&format!("{daemon}\n"));
    }
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let result = async {
        tokio::fs::write(&temporary, text).await?;
        tokio::fs::rename(&temporary, path).await
    }
    .await;
    result.map_err(|source| RelayError::AddressFile {
        path: path.to_owned(),
        source,
    })
}
