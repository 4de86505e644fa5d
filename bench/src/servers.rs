//! The bench's own servers, each run as a separate process pinned to the load core:
//! - the **receiver** of the filter benchmark: takes the meshray filter's posts
//!   (`POST /v1/segments`, answered like the relay), Envoy's Zipkin reports
//!   (`POST /api/v2/spans`, 202) and the native X-Ray tracer's UDP datagrams, and keeps
//!   the first documents it received so the relay benchmark posts real filter output;
//! - the **X-Ray sink** of the relay benchmark: answers `PutTraceSegments` at once (or
//!   never, to fill the relay's queue), counting documents.
//!
//! Both answer `GET /stats` with their counters as JSON.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::Mutex;

use crate::error::{Result, io};

/// How many filter documents the receiver keeps for the relay benchmark.
pub const CAPTURE_DOCUMENTS: usize = 1_000;

/// Counters of the receiver and the sink.
#[derive(Debug, Default)]
struct Counters {
    posts: AtomicU64,
    documents: AtomicU64,
    zipkin_reports: AtomicU64,
    udp_datagrams: AtomicU64,
}

impl Counters {
    fn json(&self) -> String {
        serde_json::json!({
            "posts": self.posts.load(Ordering::Relaxed),
            "documents": self.documents.load(Ordering::Relaxed),
            "zipkin_reports": self.zipkin_reports.load(Ordering::Relaxed),
            "udp_datagrams": self.udp_datagrams.load(Ordering::Relaxed),
        })
        .to_string()
    }
}

/// Filter documents kept for the relay benchmark, by shape.
#[derive(Default)]
struct Captured {
    /// Documents with embedded subsegments (outbound calls with no segment of ours).
    roots: Vec<Box<RawValue>>,
    /// Other segments.
    segments: Vec<Box<RawValue>>,
}

/// What the receiver shares between connections.
struct ReceiverState {
    counters: Counters,
    /// Documents kept so far (roots, other segments), and where to write them once there
    /// are enough.
    captured: Mutex<Captured>,
    capture_file: Option<PathBuf>,
}

fn response(status: u16, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    response
}

async fn read_body(request: Request<Incoming>) -> Bytes {
    request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default()
}

async fn receive(
    state: Arc<ReceiverState>,
    request: Request<Incoming>,
) -> std::result::Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    match path.as_str() {
        "/stats" => Ok(response(200, state.counters.json())),
        "/api/v2/spans" => {
            read_body(request).await;
            state
                .counters
                .zipkin_reports
                .fetch_add(1, Ordering::Relaxed);
            Ok(response(202, String::new()))
        }
        _ => {
            let body = read_body(request).await;
            let documents: Vec<Box<RawValue>> = serde_json::from_slice(&body).unwrap_or_default();
            let n = documents.len();
            state.counters.posts.fetch_add(1, Ordering::Relaxed);
            state
                .counters
                .documents
                .fetch_add(n as u64, Ordering::Relaxed);
            if let Some(file) = &state.capture_file {
                state.capture(documents, file).await;
            }
            Ok(response(
                200,
                format!("{{\"accepted\":{n},\"rejected\":[]}}"),
            ))
        }
    }
}

impl ReceiverState {
    /// Keeps documents until it has [`CAPTURE_DOCUMENTS`], half of them roots (documents
    /// with embedded subsegments: outbound calls with no segment of ours) and half
    /// segments without, so the relay benchmark posts both shapes; then writes them to `file`.
    async fn capture(&self, documents: Vec<Box<RawValue>>, file: &std::path::Path) {
        let mut captured = self.captured.lock().await;
        let Captured { roots, segments } = &mut *captured;
        if roots.len() + segments.len() >= CAPTURE_DOCUMENTS {
            return;
        }
        for document in documents {
            let is_root =
                serde_json::from_str::<std::collections::HashMap<&str, &RawValue>>(document.get())
                    .is_ok_and(|fields| fields.contains_key("subsegments"));
            let half = if is_root { &mut *roots } else { &mut *segments };
            if half.len() < CAPTURE_DOCUMENTS / 2 {
                half.push(document);
            }
        }
        if roots.len() + segments.len() >= CAPTURE_DOCUMENTS {
            let all: Vec<&RawValue> = roots.iter().chain(segments.iter()).map(|d| &**d).collect();
            if let Ok(json) = serde_json::to_vec(&all) {
                std::fs::write(file, json).ok();
            }
        }
    }
}

/// Serves connections from `listener` with `handle` until the process is killed.
async fn serve<F, Fut>(listener: TcpListener, handle: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = std::result::Result<Response<Full<Bytes>>, Infallible>>
        + Send
        + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        stream.set_nodelay(true).ok();
        let handle = handle.clone();
        tokio::spawn(async move {
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .await
                .ok();
        });
    }
}

/// Runs the receiver on `http` and `udp` until killed.
///
/// # Errors
/// When a port cannot be bound.
pub async fn run_receiver(
    http: SocketAddr,
    udp: SocketAddr,
    capture_file: Option<PathBuf>,
) -> Result<()> {
    let listener = TcpListener::bind(http)
        .await
        .map_err(io(format!("binding {http}")))?;
    let socket = UdpSocket::bind(udp)
        .await
        .map_err(io(format!("binding udp {udp}")))?;
    let state = Arc::new(ReceiverState {
        counters: Counters::default(),
        captured: Mutex::new(Captured::default()),
        capture_file,
    });
    let udp_state = Arc::clone(&state);
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 65_536];
        while socket.recv_from(&mut buffer).await.is_ok() {
            udp_state
                .counters
                .udp_datagrams
                .fetch_add(1, Ordering::Relaxed);
        }
    });
    serve(listener, move |request| {
        receive(Arc::clone(&state), request)
    })
    .await;
    Ok(())
}

/// The part of a `PutTraceSegments` request the sink reads.
#[derive(Deserialize)]
struct PutTraceSegments {
    #[serde(rename = "TraceSegmentDocuments", default)]
    documents: Vec<IgnoredAny>,
}

async fn sink(
    counters: Arc<Counters>,
    stall: bool,
    request: Request<Incoming>,
) -> std::result::Result<Response<Full<Bytes>>, Infallible> {
    if request.uri().path() == "/stats" {
        return Ok(response(200, counters.json()));
    }
    let body = read_body(request).await;
    if stall {
        // Never answer: the relay's uploads hang and its queue fills.
        std::future::pending::<()>().await;
    }
    let n = serde_json::from_slice::<PutTraceSegments>(&body)
        .map(|p| p.documents.len())
        .unwrap_or(0);
    counters.posts.fetch_add(1, Ordering::Relaxed);
    counters.documents.fetch_add(n as u64, Ordering::Relaxed);
    Ok(response(
        200,
        "{\"UnprocessedTraceSegments\":[]}".to_owned(),
    ))
}

/// Runs the X-Ray sink on `addr` until killed; with `stall` it never answers.
///
/// # Errors
/// When the port cannot be bound.
pub async fn run_xray_sink(addr: SocketAddr, stall: bool) -> Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(io(format!("binding {addr}")))?;
    let counters = Arc::new(Counters::default());
    serve(listener, move |request| {
        sink(Arc::clone(&counters), stall, request)
    })
    .await;
    Ok(())
}
