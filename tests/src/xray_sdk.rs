//! What an X-Ray SDK app behind a sidecar does with the `x-amzn-trace-id` it receives: it
//! records its own segment under that header's `Root=` and `Parent=` and sends it to the
//! X-Ray daemon's UDP port (here the relay's, [`crate::relay::RelayOptions::daemon`]) in
//! the daemon's datagram format, `{"format":"json","version":1}\n{document}`.

use std::net::SocketAddr;

use serde_json::{Value, json};

use crate::error::{HarnessError, Result};
use crate::ids::{now_secs, random_hex};

/// The daemon protocol's header line.
pub const DAEMON_HEADER: &str = r#"{"format":"json","version":1}"#;

/// The trace context an SDK reads from `x-amzn-trace-id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeader {
    /// `Root=`: the trace id the app reports under.
    pub root: String,
    /// `Parent=`: the sidecar's segment the app's segment hangs under.
    pub parent: Option<String>,
}

impl TraceHeader {
    /// Parses `Root=…;Parent=…;Sampled=…` (fields in any order, other fields ignored).
    pub fn parse(header: &str) -> Option<Self> {
        let field = |name: &str| {
            header.split(';').find_map(|f| {
                let (key, value) = f.trim().split_once('=')?;
                key.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| value.trim().to_owned())
            })
        };
        Some(Self {
            root: field("root")?,
            parent: field("parent"),
        })
    }
}

/// The segment an SDK app named `name` records for one request under `context`, lasting
/// from `start` to now.
pub fn segment(context: &TraceHeader, name: &str, start: f64) -> Value {
    let mut document = json!({
        "name": name,
        "id": random_hex(16),
        "trace_id": context.root,
        "start_time": start,
        "end_time": now_secs().max(start),
        "origin": "AWS::EC2::Instance",
        "aws": {"xray": {"sdk": "X-Ray for Rust (meshray e2e)", "sdk_version": "0.0.0"}},
    });
    if let Some(parent) = &context.parent {
        document["parent_id"] = json!(parent);
    }
    document
}

/// Sends `document` to the daemon at `daemon` as one datagram, as an SDK's emitter does.
///
/// # Errors
/// [`HarnessError::Io`] when the datagram cannot be sent.
pub async fn send_to_daemon(daemon: SocketAddr, document: &Value) -> Result<()> {
    let socket = tokio::net::UdpSocket::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| HarnessError::io("bind a UDP socket for the SDK app", e))?;
    let datagram = format!("{DAEMON_HEADER}\n{document}");
    socket
        .send_to(datagram.as_bytes(), daemon)
        .await
        .map_err(|e| HarnessError::io(format!("send a segment to the daemon at {daemon}"), e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_root_and_parent_of_the_header() {
        let header = TraceHeader::parse(
            "Root=1-00000000-00000000a2fb4a1d1a96d312;Parent=53995c3f42cd8ad8;Sampled=1",
        )
        .unwrap();
        assert_eq!(header.root, "1-00000000-00000000a2fb4a1d1a96d312");
        assert_eq!(header.parent.as_deref(), Some("53995c3f42cd8ad8"));
        assert_eq!(TraceHeader::parse("Sampled=1"), None);
        let doc = segment(&header, "ratings-sdk", 1.0);
        assert_eq!(doc["trace_id"], "1-00000000-00000000a2fb4a1d1a96d312");
        assert_eq!(doc["parent_id"], "53995c3f42cd8ad8");
        assert!(doc["end_time"].as_f64().unwrap() >= 1.0);
    }
}
