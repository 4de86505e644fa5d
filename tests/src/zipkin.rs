//! An in-test Zipkin collector: what Envoy's Zipkin tracer reports to when a test turns it on.
//!
//! It answers `POST /api/v2/spans` with 202 (as a collector does; Envoy posts chunked JSON
//! arrays without content-length) and keeps every span, so a test can prove the tracer
//! really ran next to the meshray filter.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::Value;

use crate::error::Result;
use crate::http::LocalServer;

/// Spans received so far, and how many posts carried them.
#[derive(Debug, Default)]
struct Received {
    spans: Vec<Value>,
    posts: usize,
    bad_posts: usize,
}

/// A running Zipkin sink; stopped on drop.
#[derive(Debug)]
pub struct ZipkinSink {
    server: LocalServer,
    received: Arc<Mutex<Received>>,
}

impl ZipkinSink {
    /// Starts the sink on 127.0.0.1 port 0.
    ///
    /// # Errors
    /// [`crate::HarnessError::Io`] when it cannot bind.
    pub async fn start() -> Result<Self> {
        let received = Arc::new(Mutex::new(Received::default()));
        let router = Router::new()
            .route("/api/v2/spans", post(collect))
            .with_state(Arc::clone(&received));
        let server = LocalServer::start("zipkin sink", router).await?;
        Ok(Self { server, received })
    }

    /// The sink's address (endpoint of the Zipkin cluster).
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.addr()
    }

    /// How many spans arrived.
    pub fn span_count(&self) -> usize {
        self.with(|r| r.spans.len())
    }

    /// How many posts arrived (and how many of them were not a JSON array).
    pub fn post_count(&self) -> (usize, usize) {
        self.with(|r| (r.posts, r.bad_posts))
    }

    /// A copy of every span received.
    pub fn spans(&self) -> Vec<Value> {
        self.with(|r| r.spans.clone())
    }

    /// Waits until at least `min` spans arrived or `timeout` passed; returns the count.
    pub async fn wait_for_spans(&self, min: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let count = self.span_count();
            if count >= min || Instant::now() >= deadline {
                return count;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn with<T>(&self, read: impl FnOnce(&Received) -> T) -> T {
        match self.received.lock() {
            Ok(guard) => read(&guard),
            Err(poisoned) => read(&poisoned.into_inner()),
        }
    }
}

async fn collect(State(received): State<Arc<Mutex<Received>>>, body: Bytes) -> StatusCode {
    let spans = serde_json::from_slice::<Vec<Value>>(&body).ok();
    let mut guard = match received.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    guard.posts += 1;
    match spans {
        Some(spans) => guard.spans.extend(spans),
        None => guard.bad_posts += 1,
    }
    StatusCode::ACCEPTED
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{HttpClient, header_map};
    use hyper::http::Method;

    #[tokio::test]
    async fn counts_posted_spans() {
        let sink = ZipkinSink::start().await.unwrap();
        let url = format!("http://{}/api/v2/spans", sink.addr());
        let headers = header_map(&[("content-type", "application/json")]).unwrap();
        let body = Bytes::from_static(br#"[{"id":"a"},{"id":"b"}]"#);
        let response = HttpClient::new()
            .send(Method::POST, &url, &headers, body, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(response.status, 202);
        assert_eq!(sink.wait_for_spans(2, Duration::from_secs(1)).await, 2);
        assert_eq!(sink.post_count(), (1, 0));
    }
}
