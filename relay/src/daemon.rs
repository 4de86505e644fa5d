//! The X-Ray daemon's UDP protocol (its TCP side, the sampling proxy, is [`crate::sampling`]), so X-Ray SDKs (and Envoy's native X-Ray tracer) can
//! send to the relay: each datagram is a header line `{"format":"json","version":1}`,
//! a newline, and one segment document. Documents take the same ingest path as
//! `POST /v1/segments`; a datagram that cannot be queued is dropped and counted (UDP has
//! no way to answer). Datagrams that are already waiting when one arrives join it in one
//! ingest batch (at most [`MAX_DATAGRAMS_PER_BATCH`]), so a burst of SDK documents with
//! foreign ids costs one epoch cache round trip, not one per datagram.

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::Value;
use serde_json::value::RawValue;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tracing::debug;

use crate::ingest::Ingest;
use crate::metrics::{Metrics, endpoint, refuse, reject};

/// Largest datagram read; X-Ray documents are at most 64 KiB plus the header.
const MAX_DATAGRAM_BYTES: usize = 65_536 + 64;
/// Most datagrams taken into one ingest batch.
pub const MAX_DATAGRAMS_PER_BATCH: usize = 50;

/// Why a datagram was not a daemon-protocol document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatagramError {
    /// No newline separates the header from the document.
    #[error(
        "datagram has no header line; expected {{\"format\":\"json\",\"version\":1}}\\n{{document}}"
    )]
    NoHeader,
    /// The header is not `{"format":"json","version":1}`.
    #[error("unsupported datagram header {0:?}; expected {{\"format\":\"json\",\"version\":1}}")]
    Header(String),
    /// The document is not JSON.
    #[error("datagram document is not valid JSON: {0}")]
    Json(String),
}

/// Splits a datagram into its document (its JSON text, copied out of the datagram).
///
/// # Errors
/// [`DatagramError`] for a missing or unsupported header, or a body that is not JSON.
pub fn parse_datagram(datagram: &[u8]) -> Result<Box<RawValue>, DatagramError> {
    let newline = datagram
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(DatagramError::NoHeader)?;
    let (header, body) = datagram.split_at(newline);
    let header_ok = serde_json::from_slice::<Value>(header).is_ok_and(|h| {
        h.get("format").and_then(Value::as_str) == Some("json")
            && h.get("version").and_then(Value::as_u64) == Some(1)
    });
    if !header_ok {
        let shown: String = String::from_utf8_lossy(header).chars().take(80).collect();
        return Err(DatagramError::Header(shown));
    }
    serde_json::from_slice(body.get(1..).unwrap_or_default())
        .map_err(|e| DatagramError::Json(e.to_string()))
}

/// Receives datagrams on `socket` until `stop` fires (or its sender is dropped).
pub async fn serve(
    socket: UdpSocket,
    ingest: Arc<Ingest>,
    metrics: Arc<Metrics>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut buffer = vec![0u8; MAX_DATAGRAM_BYTES];
    loop {
        let received = tokio::select! {
            _ = &mut stop => return,
            received = socket.recv_from(&mut buffer) => received,
        };
        let mut batch = Batch::default();
        batch.take(received, &buffer, &metrics);
        // What has already arrived joins this batch, without waiting for more.
        while batch.peers.len() < MAX_DATAGRAMS_PER_BATCH {
            match socket.try_recv_from(&mut buffer) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                received => batch.take(received, &buffer, &metrics),
            }
        }
        if batch.documents.is_empty() {
            continue;
        }
        let Batch { documents, peers } = batch;
        let n = documents.len();
        metrics.endpoint_received(endpoint::DAEMON, n);
        let documents: Vec<&RawValue> = documents.iter().map(AsRef::as_ref).collect();
        match ingest.submit(&documents).await {
            Ok(report) => {
                metrics.endpoint_rejected(endpoint::DAEMON, reject::INVALID, report.rejected.len());
                for rejection in report.rejected {
                    let peer = peers.get(rejection.index);
                    debug!(?peer, error = %rejection.error, "Dropping an invalid document from a datagram.");
                }
            }
            Err(e) => {
                metrics.endpoint_rejected(endpoint::DAEMON, e.reason(), n);
                debug!(documents = n, error = %e, "Dropping datagram documents.");
            }
        }
    }
}

/// The documents of the datagrams taken so far, with their senders.
#[derive(Default)]
struct Batch {
    /// The documents' texts, in arrival order.
    documents: Vec<Box<RawValue>>,
    /// The sender of each document.
    peers: Vec<SocketAddr>,
}

impl Batch {
    /// Adds the datagram in `buffer` (as `received` reports it), or counts it as
    /// invalid.
    fn take(
        &mut self,
        received: std::io::Result<(usize, SocketAddr)>,
        buffer: &[u8],
        metrics: &Metrics,
    ) {
        let (len, peer) = match received {
            Ok(received) => received,
            Err(e) => {
                // Typically ICMP errors surfacing on the socket; the socket stays usable.
                debug!(error = %e, "Receiving a datagram failed.");
                return;
            }
        };
        match parse_datagram(buffer.get(..len).unwrap_or_default()) {
            Ok(document) => {
                self.documents.push(document);
                self.peers.push(peer);
            }
            Err(e) => {
                metrics.received.inc();
                metrics.reject(reject::INVALID, 1);
                metrics.endpoint_received(endpoint::DAEMON, 1);
                metrics.endpoint_rejected(endpoint::DAEMON, refuse::MALFORMED, 1);
                debug!(%peer, error = %e, "Dropping a datagram.");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The daemon header line, then one document (a trailing newline is fine).
    #[test]
    fn parses_the_daemon_format() {
        let doc =
            parse_datagram(b"{\"format\": \"json\", \"version\": 1}\n{\"name\":\"a\"}\n").unwrap();
        assert_eq!(doc.get(), "{\"name\":\"a\"}");
    }

    /// No header, another version, or a body that is not JSON.
    #[test]
    fn rejects_other_datagrams() {
        assert!(matches!(
            parse_datagram(b"{\"name\":\"a\"}"),
            Err(DatagramError::NoHeader)
        ));
        assert!(matches!(
            parse_datagram(b"{\"format\":\"json\",\"version\":2}\n{}"),
            Err(DatagramError::Header(_))
        ));
        assert!(matches!(
            parse_datagram(b"{\"format\":\"json\",\"version\":1}\n{"),
            Err(DatagramError::Json(_))
        ));
    }
}
