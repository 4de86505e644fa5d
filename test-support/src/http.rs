//! A small HTTP/1 client (hyper-util's pooled client) with a per-request timeout.
//!
//! The sample app uses it for its calls through the sidecars, the harness for Envoy's
//! admin API, the end-to-end tests for their requests into the mesh, and the relay's tests
//! for their requests to the relay ([`request`]).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::http::{HeaderMap, HeaderName, HeaderValue, Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::error::{HarnessError, Result};

/// The timeout of [`HttpClient::get`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A response read in full.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl HttpResponse {
    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value as text, if present and valid.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON.
    ///
    /// # Errors
    /// [`HarnessError::Unexpected`], with the body, when it is not JSON.
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body).map_err(|e| {
            HarnessError::unexpected(
                format!("JSON body (status {})", self.status),
                format!("{e}: {}", self.text()),
            )
        })
    }
}

/// One request to `http://{addr}{path}` with a JSON `body` (may be empty), on a client of
/// its own (its connection closes with it), with [`DEFAULT_TIMEOUT`].
///
/// # Errors
/// As [`HttpClient::send`].
pub async fn request(
    addr: std::net::SocketAddr,
    method: Method,
    path: &str,
    body: &[u8],
) -> Result<HttpResponse> {
    let headers = header_map(&[("content-type", "application/json")])?;
    HttpClient::new()
        .send(
            method,
            &format!("http://{addr}{path}"),
            &headers,
            Bytes::copy_from_slice(body),
            DEFAULT_TIMEOUT,
        )
        .await
}

/// A cloneable HTTP/1 client with connection pooling.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: Client<HttpConnector, Full<Bytes>>,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient {
    /// A new client (its own connection pool).
    pub fn new() -> Self {
        Self {
            inner: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// `GET url` with no extra headers and [`DEFAULT_TIMEOUT`].
    ///
    /// # Errors
    /// [`HarnessError::Http`] when no response arrives (any status is a response).
    pub async fn get(&self, url: &str) -> Result<HttpResponse> {
        self.send(
            Method::GET,
            url,
            &HeaderMap::new(),
            Bytes::new(),
            DEFAULT_TIMEOUT,
        )
        .await
    }

    /// Sends one request and reads the whole response. A `host` header in `headers` is kept
    /// (it is how the app addresses a service through its sidecar's outbound listener).
    ///
    /// # Errors
    /// [`HarnessError::Http`] when the URL is bad, the connection fails, or `timeout` passes.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &HeaderMap,
        body: Bytes,
        timeout: Duration,
    ) -> Result<HttpResponse> {
        let fail = |reason: String| HarnessError::Http {
            method: method.to_string(),
            url: url.to_owned(),
            reason,
        };
        let mut request = Request::builder()
            .method(method.clone())
            .uri(url)
            .body(Full::new(body))
            .map_err(|e| fail(e.to_string()))?;
        request.headers_mut().extend(headers.clone());
        let exchange = async {
            let response = self
                .inner
                .request(request)
                .await
                .map_err(|e| fail(format!("{e:?}")))?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| fail(format!("reading body: {e}")))?
                .to_bytes();
            Ok(HttpResponse {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| fail(format!("no response within {timeout:?}")))?
    }
}

/// Builds a header map from `(name, value)` pairs.
///
/// # Errors
/// [`HarnessError::Unexpected`] for an invalid name or value.
pub fn header_map(pairs: &[(&str, &str)]) -> Result<HeaderMap> {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|e| {
            HarnessError::unexpected(format!("header name {name:?}"), e.to_string())
        })?;
        let value = HeaderValue::from_str(value).map_err(|e| {
            HarnessError::unexpected(format!("value of header {name}"), e.to_string())
        })?;
        map.append(header, value);
    }
    Ok(map)
}

// === In-process servers ===

/// An axum router served on 127.0.0.1 port 0 inside the test process; stopped on drop.
#[derive(Debug)]
pub struct LocalServer {
    addr: std::net::SocketAddr,
    /// The serving task; aborted on drop.
    task: tokio::task::JoinHandle<()>,
    /// Starts a graceful shutdown when sent to (or dropped).
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

/// How long [`LocalServer::stop`] lets open requests finish before aborting.
const STOP_GRACE: Duration = Duration::from_secs(5);

impl LocalServer {
    /// Binds 127.0.0.1:0 and serves `router` on the current tokio runtime.
    ///
    /// # Errors
    /// [`HarnessError::Io`] when the port cannot be bound.
    pub async fn start(what: &str, router: axum::Router) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| HarnessError::io(format!("bind {what}"), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| HarnessError::io(format!("local address of {what}"), e))?;
        let what = what.to_owned();
        let (shutdown, stop_requested) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serving = axum::serve(listener, router).with_graceful_shutdown(async move {
                // A dropped sender also means stop.
                let _stop = stop_requested.await;
            });
            if let Err(err) = serving.await {
                eprintln!("meshray-e2e: {what} stopped: {err}");
            }
        });
        Ok(Self {
            addr,
            task,
            shutdown: Some(shutdown),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Stops serving, as a crashed or scaled-down app would: the listening socket is closed
    /// at once (new connections are refused), idle keep-alive connections are closed, and
    /// requests in progress get up to 5 s to finish before the server is aborted.
    pub async fn stop(&mut self) {
        let Some(shutdown) = self.shutdown.take() else {
            return; // stopped before
        };
        // An error means the server already stopped.
        let _stopped = shutdown.send(());
        if tokio::time::timeout(STOP_GRACE, &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
