//! [`RelayError`]: why the relay could not start or stop cleanly.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::epoch_cache::EpochCacheError;
use crate::xray::client::ClientError;

/// A failure that ends [`crate::run`]; each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The HTTP address could not be bound (binary only).
    #[error("cannot listen on {addr}: {source}; choose another --listen address")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The X-Ray daemon address could not be bound (UDP for segments, TCP for sampling).
    #[error(
        "cannot bind the X-Ray daemon port {addr} (UDP and TCP): {source}; choose another --daemon-listen address or `off`"
    )]
    DaemonBind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The listener's bound address could not be read.
    #[error("cannot read the bound address of the HTTP listener: {0}")]
    LocalAddr(#[source] std::io::Error),
    /// The address file could not be written.
    #[error("cannot write the address file {path}: {source}; check --address-file")]
    AddressFile {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The `file:PATH` sink could not be opened.
    #[error("cannot open the sink file {path} for appending: {source}; check --sink")]
    SinkFile {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The X-Ray client could not be built.
    #[error(transparent)]
    Xray(#[from] ClientError),
    /// The epoch cache URL or certificates cannot be used.
    #[error(transparent)]
    EpochCache(#[from] EpochCacheError),
}
