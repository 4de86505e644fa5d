//! The sample app: a Bookinfo-like chain productpage → reviews → ratings, served in-process.
//!
//! Each service is a small axum server on 127.0.0.1 port 0 behind its own sidecar:
//! - productpage `GET /productpage` calls reviews `GET /reviews/1`,
//! - reviews `GET /reviews/{id}` calls ratings `GET /ratings/1`,
//! - ratings `GET /ratings/{id}` answers JSON.
//!
//! A caller sends its request to its own sidecar's OUTBOUND listener with
//! `Host: <callee>:9080`; since that listener's port is only known once the sidecar runs,
//! the upstream address is set afterwards ([`AppServer::set_upstream`]).
//!
//! Like Bookinfo, each service forwards exactly [`FORWARDED_HEADERS`] (B3, W3C,
//! `x-request-id`) and NOT `x-amzn-trace-id`, and degrades instead of failing when its
//! callee fails (200 with an error field). Query parameters, passed down the chain, shape
//! what the services do:
//! - `fail=<service>` makes that service answer 503 (`fail=1` means `ratings`);
//! - `fanout=<n>` makes productpage call reviews `n` times in parallel, each call with
//!   `call=<i>` added to its query (a page built from parallel backend calls);
//! - `delay_ms=<n>` makes every caller wait `n` ms before it calls its callee (so parallel
//!   requests overlap at the callee's sidecar);
//! - `grpc=<code>` makes reviews call ratings as a gRPC client (`POST`,
//!   `content-type: application/grpc`, `te: trailers`, one message frame), and ratings
//!   answer like a gRPC server: HTTP 200, `content-type: application/grpc`, and
//!   `grpc-status: <code>` (+ `grpc-message`) in the headers — a trailers-only answer — or,
//!   with `grpc_in=trailers`, a message frame followed by the status in the trailers
//!   (which needs HTTP/2 to ratings: [`crate::MeshOptions::grpc_services`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::http::Method;
use serde_json::{Value, json};

use crate::envoy::SERVICE_PORT;
use crate::error::{HarnessError, Result};
use crate::http::{HttpClient, LocalServer};

/// The headers Bookinfo's services forward from their inbound request to their outbound
/// calls. `x-amzn-trace-id` is deliberately absent, as in Bookinfo.
pub const FORWARDED_HEADERS: [&str; 9] = [
    "x-request-id",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
    "traceparent",
    "tracestate",
];

/// How long a service waits for its callee.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The three services of the sample app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    /// The front end; calls reviews.
    Productpage,
    /// Calls ratings.
    Reviews,
    /// The leaf.
    Ratings,
}

impl Service {
    /// Every service, callers first.
    pub const ALL: [Self; 3] = [Self::Productpage, Self::Reviews, Self::Ratings];

    /// The service (and `app` label) name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Productpage => "productpage",
            Self::Reviews => "reviews",
            Self::Ratings => "ratings",
        }
    }

    /// The `version` label of its single deployment.
    pub fn version(self) -> &'static str {
        "v1"
    }

    /// The service it calls, if any.
    pub fn callee(self) -> Option<Self> {
        match self {
            Self::Productpage => Some(Self::Reviews),
            Self::Reviews => Some(Self::Ratings),
            Self::Ratings => None,
        }
    }

    /// The path its caller (or a client, for productpage) requests.
    pub fn request_path(self) -> &'static str {
        match self {
            Self::Productpage => "/productpage",
            Self::Reviews => "/reviews/1",
            Self::Ratings => "/ratings/1",
        }
    }

    fn route(self) -> &'static str {
        match self {
            Self::Productpage => "/productpage",
            Self::Reviews => "/reviews/{id}",
            Self::Ratings => "/ratings/{id}",
        }
    }
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What one service has seen.
#[derive(Debug, Default)]
pub struct AppStats {
    requests: AtomicU64,
    /// Headers of the last request received (name, value), for debugging.
    last_headers: Mutex<Vec<(String, String)>>,
}

impl AppStats {
    /// Requests received.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The headers of the last request received.
    pub fn last_headers(&self) -> Vec<(String, String)> {
        match self.last_headers.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The value of header `name` (lowercase) in the last request received, if it had one.
    pub fn last_header(&self, name: &str) -> Option<String> {
        self.last_headers()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

struct AppState {
    service: Service,
    /// The caller's own sidecar outbound listener; set once the sidecar is up.
    upstream: Arc<OnceLock<SocketAddr>>,
    client: HttpClient,
    stats: Arc<AppStats>,
}

/// One running service of the sample app; stopped on drop.
#[derive(Debug)]
pub struct AppServer {
    service: Service,
    server: LocalServer,
    upstream: Arc<OnceLock<SocketAddr>>,
    stats: Arc<AppStats>,
}

impl AppServer {
    /// Starts `service` on 127.0.0.1 port 0. A service with a callee answers 500 until
    /// [`AppServer::set_upstream`] is called.
    ///
    /// # Errors
    /// [`HarnessError::Io`] when it cannot bind.
    pub async fn start(service: Service) -> Result<Self> {
        let upstream = Arc::new(OnceLock::new());
        let stats = Arc::new(AppStats::default());
        let state = Arc::new(AppState {
            service,
            upstream: Arc::clone(&upstream),
            client: HttpClient::new(),
            stats: Arc::clone(&stats),
        });
        let router = Router::new()
            .route(service.route(), get(handle).post(handle))
            .with_state(state);
        let server = LocalServer::start(service.name(), router).await?;
        Ok(Self {
            service,
            server,
            upstream,
            stats,
        })
    }

    /// Which service this is.
    pub fn service(&self) -> Service {
        self.service
    }

    /// The app's port (the sidecar's inbound cluster endpoint).
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Points the app's outgoing calls at its sidecar's outbound listener.
    ///
    /// # Errors
    /// [`HarnessError::Unexpected`] when it was already set to another address.
    pub fn set_upstream(&self, outbound: SocketAddr) -> Result<()> {
        let current = self.upstream.get_or_init(|| outbound);
        if *current == outbound {
            Ok(())
        } else {
            Err(HarnessError::unexpected(
                format!("upstream of {}", self.service),
                format!("already {current}, not {outbound}"),
            ))
        }
    }

    /// What the service has seen.
    pub fn stats(&self) -> &AppStats {
        &self.stats
    }

    /// Stops the app as if its container died: its port refuses connections from now on
    /// and idle connections are closed (see [`LocalServer::stop`]); the sidecar stays up.
    pub async fn stop(&mut self) {
        self.server.stop().await;
    }
}

/// Which service the `fail=` query parameter names, if any (`fail=1` is `ratings`).
pub fn fail_target(query: &str) -> Option<&str> {
    match query_param(query, "fail") {
        Some("1") => Some("ratings"),
        other => other,
    }
}

/// The value of query parameter `name`, if present.
pub fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|pair| pair.split_once('=').filter(|(k, _)| *k == name))
        .map(|(_, v)| v)
}

/// The numeric query parameter `name`, if present and a number.
fn number_param(query: &str, name: &str) -> Option<u64> {
    query_param(query, name).and_then(|v| v.parse().ok())
}

/// Most parallel calls `fanout=` may ask for.
const MAX_FANOUT: u64 = 16;

/// The `content-type` of gRPC.
pub const GRPC_CONTENT_TYPE: &str = "application/grpc";

/// A gRPC message frame: not compressed, 4-byte big-endian length, the message.
fn grpc_frame(message: &[u8]) -> Bytes {
    let mut frame = vec![0u8];
    let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(message);
    Bytes::from(frame)
}

/// What ratings answers to a gRPC call: status `code` in the headers (trailers-only) or,
/// with `in_trailers`, after one message frame in the trailers.
fn grpc_answer(code: u64, in_trailers: bool) -> Response {
    let mut status = HeaderMap::new();
    status.insert("grpc-status", HeaderValue::from(code));
    if code != 0 {
        status.insert(
            "grpc-message",
            HeaderValue::from_static("ratings backend is unavailable"),
        );
    }
    let mut response = if in_trailers {
        // A message (field 1 = 5: the rating), then the status in the trailers.
        let body =
            Full::new(grpc_frame(&[0x08, 0x05])).with_trailers(async move { Some(Ok(status)) });
        Response::new(Body::new(body))
    } else {
        let mut response = Response::new(Body::empty());
        response.headers_mut().extend(status);
        response
    };
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static(GRPC_CONTENT_TYPE));
    response
}

async fn handle(State(app): State<Arc<AppState>>, uri: Uri, headers: HeaderMap) -> Response {
    app.stats.requests.fetch_add(1, Ordering::Relaxed);
    let seen = headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    match app.stats.last_headers.lock() {
        Ok(mut guard) => *guard = seen,
        Err(poisoned) => *poisoned.into_inner() = seen,
    }

    let service = app.service;
    let query = uri.query().unwrap_or("");
    if fail_target(query) == Some(service.name()) {
        let body = json!({"service": service.name(), "error": "injected fault"});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    let is_grpc = headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(GRPC_CONTENT_TYPE.as_bytes()));
    let Some(callee) = service.callee() else {
        if is_grpc {
            let code = number_param(query, "grpc").unwrap_or(0);
            return grpc_answer(code, query_param(query, "grpc_in") == Some("trailers"));
        }
        let body = json!({"id": 1, "ratings": {"Reviewer1": 5, "Reviewer2": 4}});
        return (StatusCode::OK, Json(body)).into_response();
    };
    let Some(upstream) = app.upstream.get() else {
        let body = json!({"service": service.name(), "error": "no upstream configured"});
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response();
    };

    let mut outgoing = HeaderMap::new();
    for name in FORWARDED_HEADERS {
        for value in headers.get_all(name) {
            outgoing.append(name, value.clone());
        }
    }
    if let Ok(host) = HeaderValue::from_str(&format!("{}:{SERVICE_PORT}", callee.name())) {
        outgoing.insert("host", host);
    }
    if let Some(delay) = number_param(query, "delay_ms") {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let fanout = match service {
        Service::Productpage => number_param(query, "fanout")
            .unwrap_or(1)
            .clamp(1, MAX_FANOUT),
        _ => 1,
    };
    let calls = (0..fanout).map(|i| {
        let query = if fanout > 1 {
            format!("{query}&call={i}")
        } else {
            query.to_owned()
        };
        call(&app, *upstream, callee, &query, &outgoing)
    });
    let mut answers = join_all(calls).await;
    let body = if answers.len() == 1 {
        answers.remove(0)
    } else {
        json!({"service": service.name(), "calls": answers})
    };
    // Bookinfo degrades: a failed callee still yields a 200 page.
    (StatusCode::OK, Json(body)).into_response()
}

/// Runs `futures` concurrently and returns their outputs in order.
async fn join_all<T: Send + 'static>(
    futures: impl Iterator<Item = impl std::future::Future<Output = T> + Send + 'static>,
) -> Vec<T> {
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok(value) = task.await {
            out.push(value);
        }
    }
    out
}

/// One call of `app`'s service to `callee` through its sidecar at `upstream`; the JSON its
/// page shows for it (the callee's answer, or why there is none).
fn call(
    app: &Arc<AppState>,
    upstream: SocketAddr,
    callee: Service,
    query: &str,
    outgoing: &HeaderMap,
) -> impl std::future::Future<Output = Value> + Send + use<> {
    let app = Arc::clone(app);
    let mut outgoing = outgoing.clone();
    let service = app.service;
    let suffix = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    let url = format!("http://{upstream}{}{suffix}", callee.request_path());
    let grpc = callee.callee().is_none() && query_param(query, "grpc").is_some();
    let (method, request_body) = if grpc {
        outgoing.insert("content-type", HeaderValue::from_static(GRPC_CONTENT_TYPE));
        outgoing.insert("te", HeaderValue::from_static("trailers"));
        (Method::POST, grpc_frame(&[0x08, 0x01]))
    } else {
        (Method::GET, Bytes::new())
    };
    async move {
        let result = app
            .client
            .send(method, &url, &outgoing, request_body, CALL_TIMEOUT)
            .await;
        answer_of(service, callee, result)
    }
}

/// What a page shows for one call's `result`.
fn answer_of(
    service: Service,
    callee: Service,
    result: Result<crate::http::HttpResponse>,
) -> Value {
    match result {
        Ok(response) if response.status == 200 => {
            let inner =
                serde_json::from_slice(&response.body).unwrap_or_else(|_| json!(response.text()));
            json!({"service": service.name(), callee.name(): inner})
        }
        Ok(response) => json!({
            "service": service.name(),
            "error": format!("{callee} unavailable"),
            "status": response.status,
        }),
        Err(err) => json!({
            "service": service.name(),
            "error": format!("{callee} unreachable: {err}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_parameter_names_the_failing_service() {
        for (query, expected) in [
            ("", None),
            ("fail=1", Some("ratings")),
            ("a=b&fail=reviews", Some("reviews")),
            ("failure=1", None),
        ] {
            assert_eq!(fail_target(query), expected, "{query}");
        }
    }

    /// Without sidecars: ratings answers; reviews forwards exactly the Bookinfo headers with
    /// `Host: ratings:9080` (here straight to ratings) and not `x-amzn-trace-id`.
    #[tokio::test]
    async fn forwards_bookinfo_headers_only() {
        let ratings = AppServer::start(Service::Ratings).await.unwrap();
        let reviews = AppServer::start(Service::Reviews).await.unwrap();
        reviews.set_upstream(ratings.addr()).unwrap();
        let headers = crate::http::header_map(&[
            ("x-request-id", "req-1"),
            ("x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124"),
            ("x-b3-spanid", "a2fb4a1d1a96d312"),
            ("x-b3-sampled", "1"),
            (
                "traceparent",
                "00-463ac35c9f6413ad48485a3953bb6124-a2fb4a1d1a96d312-01",
            ),
            (
                "x-amzn-trace-id",
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
            ),
            ("x-other", "no"),
        ])
        .unwrap();
        let url = format!("http://{}/reviews/1", reviews.addr());
        let response = HttpClient::new()
            .send(Method::GET, &url, &headers, Bytes::new(), CALL_TIMEOUT)
            .await
            .unwrap();
        assert_eq!(response.status, 200, "{}", response.text());
        assert!(response.text().contains("Reviewer1"), "{}", response.text());
        let seen = ratings.stats().last_headers();
        let get = |name: &str| {
            seen.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("x-request-id"), Some("req-1"));
        assert_eq!(get("x-b3-spanid"), Some("a2fb4a1d1a96d312"));
        assert_eq!(get("host"), Some("ratings:9080"));
        assert_eq!(get("x-amzn-trace-id"), None);
        assert_eq!(get("x-other"), None);
    }

    #[tokio::test]
    async fn injected_fault_degrades_the_caller() {
        let ratings = AppServer::start(Service::Ratings).await.unwrap();
        let reviews = AppServer::start(Service::Reviews).await.unwrap();
        reviews.set_upstream(ratings.addr()).unwrap();
        let client = HttpClient::new();
        let direct = client
            .get(&format!("http://{}/ratings/1?fail=1", ratings.addr()))
            .await
            .unwrap();
        assert_eq!(direct.status, 503);
        let page = client
            .get(&format!("http://{}/reviews/1?fail=1", reviews.addr()))
            .await
            .unwrap();
        assert_eq!(page.status, 200);
        assert!(
            page.text().contains("ratings unavailable"),
            "{}",
            page.text()
        );
    }
}
