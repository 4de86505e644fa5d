//! A slow relay for the drills: an HTTP proxy in front of the relay that holds every
//! request for a delay the test sets (and changes) at run time before forwarding it, so
//! every answer the sidecars get comes that much later — a relay that is overloaded, far
//! away, or stuck behind a slow network.
//!
//! It forwards method, path, headers and body as they came and returns the relay's
//! status, headers and body; it counts the requests it forwarded and how many of them it
//! held back.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::error::Result;
use crate::http::{HttpClient, LocalServer};

/// How long the proxy waits for the relay's answer after forwarding.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);
/// Headers about one hop's connection, never forwarded.
const HOP_BY_HOP: [&str; 4] = ["connection", "keep-alive", "transfer-encoding", "upgrade"];

/// What the proxy shares with its handler.
#[derive(Debug, Default)]
struct ProxyState {
    /// Where requests go; `None` until [`DelayProxy::set_upstream`].
    upstream: Mutex<Option<SocketAddr>>,
    /// The current delay, in milliseconds.
    delay_ms: AtomicU64,
    /// Requests forwarded.
    forwarded: AtomicU64,
    /// Requests held back for a non-zero delay.
    delayed: AtomicU64,
    client: HttpClient,
}

/// The running proxy; stops on drop.
#[derive(Debug)]
pub struct DelayProxy {
    server: LocalServer,
    state: Arc<ProxyState>,
}

impl DelayProxy {
    /// Starts the proxy on 127.0.0.1:0, with no delay and no upstream yet (requests get
    /// 502 until [`Self::set_upstream`]).
    ///
    /// # Errors
    /// [`crate::HarnessError::Io`] when the port cannot be bound.
    pub async fn start() -> Result<Self> {
        let state = Arc::new(ProxyState::default());
        let router = axum::Router::new()
            .fallback(forward)
            .with_state(Arc::clone(&state));
        let server = LocalServer::start("delaying proxy", router).await?;
        Ok(Self { server, state })
    }

    /// Where the sidecars send (instead of the relay).
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Forwards to `upstream` from now on.
    pub fn set_upstream(&self, upstream: SocketAddr) {
        if let Ok(mut slot) = self.state.upstream.lock() {
            *slot = Some(upstream);
        }
    }

    /// Holds every request arriving from now on for `delay` before forwarding it.
    pub fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.state.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Requests forwarded so far.
    pub fn forwarded(&self) -> u64 {
        self.state.forwarded.load(Ordering::SeqCst)
    }

    /// Requests held back for a non-zero delay so far.
    pub fn delayed(&self) -> u64 {
        self.state.delayed.load(Ordering::SeqCst)
    }
}

/// Waits the current delay, then sends the request to the upstream and returns its answer
/// (502 when there is no upstream or it does not answer).
async fn forward(
    State(state): State<Arc<ProxyState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let delay = Duration::from_millis(state.delay_ms.load(Ordering::SeqCst));
    if !delay.is_zero() {
        state.delayed.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(delay).await;
    }
    let upstream = state.upstream.lock().ok().and_then(|slot| *slot);
    let Some(upstream) = upstream else {
        return (StatusCode::BAD_GATEWAY, "no upstream yet\n").into_response();
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut forwarded_headers = headers;
    for name in HOP_BY_HOP {
        forwarded_headers.remove(name);
    }
    let answer = state
        .client
        .send(
            method,
            &format!("http://{upstream}{path}"),
            &forwarded_headers,
            body,
            UPSTREAM_TIMEOUT,
        )
        .await;
    state.forwarded.fetch_add(1, Ordering::SeqCst);
    match answer {
        Ok(answer) => {
            let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut headers = answer.headers;
            for name in HOP_BY_HOP.iter().chain(&["content-length"]) {
                headers.remove(*name);
            }
            (status, headers, answer.body).into_response()
        }
        Err(err) => (StatusCode::BAD_GATEWAY, format!("{err}\n")).into_response(),
    }
}
