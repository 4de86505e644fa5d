//! The HTTP accept loop: a connection limit, per-connection tasks, and graceful drain
//! through hyper-util's [`GracefulShutdown`].
//!
//! [`accept_until`] accepts until the shutdown future fires, then drops the listener (no
//! new connections) and returns the [`GracefulShutdown`] that tracks the open ones; the
//! caller awaits its `shutdown()` (which asks each connection to finish its in-flight
//! request and close) within the drain deadline.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, error};

/// First wait after a failed `accept`; doubles up to [`MAX_ACCEPT_BACKOFF`].
const FIRST_ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
/// Longest wait after failed `accept`s (e.g. out of file descriptors).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` with at most `max_connections` open connections until
/// `shutdown` fires; returns the tracker of the connections still open. A connection
/// that has not sent a request's headers `client_timeout` after connecting or after
/// its previous response is closed (slow-loris and idle clients free their slot).
pub async fn accept_until(
    listener: TcpListener,
    router: Router,
    max_connections: usize,
    client_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> GracefulShutdown {
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(client_timeout);
    // One permit per open connection; accept waits while none is free.
    let limit = Arc::new(Semaphore::new(max_connections.max(1)));
    let mut backoff = FIRST_ACCEPT_BACKOFF;
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&limit).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // never closed
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    backoff = FIRST_ACCEPT_BACKOFF;
                    accepted
                }
                Err(e) => {
                    error!(error = %e, backoff_ms = backoff.as_millis(), "Accepting a connection failed; retrying.");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(router.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // The HTTP version is detected from the first bytes, before hyper's header
            // timeout applies: a client that connects and sends nothing is closed here.
            let mut first_byte = [0u8; 1];
            if tokio::time::timeout(client_timeout, stream.peek(&mut first_byte))
                .await
                .is_err()
            {
                debug!(%peer, "Closing a connection that sent nothing within the client timeout.");
                return;
            }
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(connection).await {
                debug!(%peer, error = %e, "Connection ended with an error.");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful
}
