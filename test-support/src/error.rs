//! The harness's error type.
//!
//! Every fallible harness function returns [`HarnessError`]; each variant names what failed
//! and carries enough context (a path, a URL, the tail of a child's log) for a test failure
//! to be understood without re-running it.

use std::path::PathBuf;
use std::time::Duration;

/// What went wrong while starting, driving or reading the local mesh.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A binary or artifact the harness needs is not there.
    #[error("{what} not found at {path} (override with ${env}); {hint}")]
    Missing {
        /// What is missing, e.g. "envoy".
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
        /// The environment variable that overrides the location.
        env: &'static str,
        /// How to get it, e.g. which `make` target builds it.
        hint: &'static str,
    },
    /// Several binaries or artifacts are missing (each line as in [`HarnessError::Missing`]).
    #[error("missing prerequisites:{list}")]
    Prerequisites {
        /// One `\n  - …` line per missing item.
        list: String,
    },
    /// A child process could not be spawned.
    #[error("failed to spawn {what} ({program}): {source}")]
    Spawn {
        /// The role of the child, e.g. "relay".
        what: String,
        /// The program that was run.
        program: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A child process exited while the harness still needed it.
    #[error("{what} exited ({status}); log {log}:\n{tail}")]
    Exited {
        /// The role of the child.
        what: String,
        /// Its exit status.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of its log.
        tail: String,
    },
    /// Something did not become ready in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long the harness waited.
        after: Duration,
    },
    /// A file-system or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the harness was doing.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An HTTP request made by the harness failed below HTTP (connect, timeout, bad URL).
    #[error("http request {method} {url} failed: {reason}")]
    Http {
        /// The request method.
        method: String,
        /// The request URL.
        url: String,
        /// Why it failed.
        reason: String,
    },
    /// An X-Ray API call failed.
    #[error("x-ray {operation} failed: {reason}")]
    Xray {
        /// The API operation, e.g. "BatchGetTraces".
        operation: &'static str,
        /// The SDK's error, with its full context.
        reason: String,
    },
    /// A response, file or document did not have the expected shape.
    #[error("unexpected {what}: {reason}")]
    Unexpected {
        /// What was read.
        what: String,
        /// What was wrong with it.
        reason: String,
    },
}

impl HarnessError {
    /// An [`HarnessError::Io`] with a description of what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    /// An [`HarnessError::Unexpected`] about `what`.
    pub fn unexpected(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Unexpected {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// The harness's result type.
pub type Result<T, E = HarnessError> = std::result::Result<T, E>;
