//! What can go wrong while benchmarking, with what to do about it.

use std::path::PathBuf;

/// A failed benchmark step.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A file or process could not be read, written or started.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A tool the bench needs is missing.
    #[error("{path} not found: {hint}")]
    Missing {
        /// The missing file.
        path: PathBuf,
        /// How to get it.
        hint: &'static str,
    },
    /// A process did not become ready in time.
    #[error("{0} did not become ready; see its log in target/bench/logs")]
    NotReady(String),
    /// Output of a tool could not be understood.
    #[error("cannot read the output of {tool}: {detail}")]
    Output {
        /// The tool.
        tool: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// JSON could not be (de)serialised.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

/// Result of a benchmark step.
pub type Result<T> = std::result::Result<T, BenchError>;

/// Wraps an I/O error with what was being done.
pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
    let what = what.into();
    move |source| BenchError::Io { what, source }
}
