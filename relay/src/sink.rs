//! Where batches go: X-Ray, or JSON lines on stdout or in a file.
//!
//! The line sinks write exactly the document strings that would be sent to X-Ray, one
//! per line, a whole batch per write, so lines of concurrent batches never interleave.

use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Mutex;
use tracing::error;

use crate::config::{Config, SinkKind};
use crate::error::RelayError;
use crate::metrics::{Metrics, as_u64, fail};
use crate::queue::QueuedDocument;
use crate::xray::client;
use crate::xray::service::XrayService;
use crate::xray::upload::XrayUploader;

/// A configured destination for batches.
#[derive(Debug)]
pub enum Sink {
    /// `PutTraceSegments` with retries.
    Xray(XrayUploader),
    /// JSON lines to a writer.
    Lines(LineWriter),
}

impl Sink {
    /// Builds the sink `config` names: loads AWS settings (unless injected) and checks
    /// the region for `xray`, opens the file for `file:PATH`.
    ///
    /// # Errors
    /// [`RelayError::Xray`] without a region; [`RelayError::SinkFile`] if the file cannot
    /// be opened for appending.
    pub async fn build(config: &Config, metrics: Arc<Metrics>) -> Result<Sink, RelayError> {
        match &config.sink {
            SinkKind::Xray => {
                let sdk = match &config.aws {
                    Some(sdk) => sdk.clone(),
                    None => client::load_default_config().await,
                };
                let client = client::build(&sdk)?;
                Ok(Sink::Xray(XrayUploader::new(
                    XrayService::new(client),
                    config.retry_for,
                    metrics,
                )))
            }
            SinkKind::Stdout => Ok(Sink::Lines(LineWriter::new(
                "stdout",
                Box::new(tokio::io::stdout()),
                metrics,
            ))),
            SinkKind::File(path) => {
                let file = open_append(path)
                    .await
                    .map_err(|source| RelayError::SinkFile {
                        path: path.clone(),
                        source,
                    })?;
                Ok(Sink::Lines(LineWriter::new(
                    "file",
                    Box::new(file),
                    metrics,
                )))
            }
        }
    }

    /// Delivers one batch; failures are logged and counted, never returned.
    pub async fn deliver(&self, batch: Vec<QueuedDocument>) {
        match self {
            Sink::Xray(uploader) => uploader.deliver(batch).await,
            Sink::Lines(writer) => writer.deliver(batch).await,
        }
    }
}

/// Opens `path` for appending, creating it.
async fn open_append(path: &Path) -> std::io::Result<tokio::fs::File> {
    tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
}

/// Writes batches as JSON lines.
pub struct LineWriter {
    /// `stdout` or `file`, for logs.
    name: &'static str,
    /// The destination; one batch holds the lock for its whole write.
    out: Mutex<Box<dyn AsyncWrite + Send + Unpin>>,
    /// Counters.
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for LineWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineWriter")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl LineWriter {
    /// A line sink on `out`.
    pub fn new(
        name: &'static str,
        out: Box<dyn AsyncWrite + Send + Unpin>,
        metrics: Arc<Metrics>,
    ) -> Self {
        LineWriter {
            name,
            out: Mutex::new(out),
            metrics,
        }
    }

    /// Writes and flushes one batch.
    pub async fn deliver(&self, batch: Vec<QueuedDocument>) {
        let mut text = String::with_capacity(batch.iter().map(|d| d.json.len() + 1).sum());
        for document in &batch {
            text.push_str(&document.json);
            text.push('\n');
        }
        let mut out = self.out.lock().await;
        let written = match out.write_all(text.as_bytes()).await {
            Ok(()) => out.flush().await,
            Err(e) => Err(e),
        };
        match written {
            Ok(()) => {
                self.metrics.sent.inc_by(as_u64(batch.len()));
            }
            Err(e) => {
                error!(sink = self.name, documents = batch.len(), error = %e, "Writing documents failed; dropping them.");
                self.metrics.fail(fail::WRITE, batch.len());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines are exactly the documents, one per line.
    #[tokio::test]
    async fn writes_json_lines() {
        let (client, mut server) = tokio::io::duplex(4096);
        let metrics = Arc::new(Metrics::new());
        let writer = LineWriter::new("test", Box::new(client), metrics.clone());
        writer
            .deliver(vec![
                QueuedDocument {
                    id: None,
                    json: "{\"a\":1}".into(),
                },
                QueuedDocument {
                    id: None,
                    json: "{\"b\":2}".into(),
                },
            ])
            .await;
        drop(writer);
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut server, &mut text)
            .await
            .unwrap();
        assert_eq!(text, "{\"a\":1}\n{\"b\":2}\n");
        assert_eq!(metrics.sent.get(), 2);
    }
}
