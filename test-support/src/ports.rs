//! Free ports, for servers that cannot bind port 0 and report the port themselves
//! (`redis-server`).

use std::net::TcpListener;

use crate::error::{HarnessError, Result};

/// A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it).
///
/// # Errors
/// [`HarnessError::Io`] when no port can be bound.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| HarnessError::io("bind 127.0.0.1:0 for a free port", e))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|e| HarnessError::io("local address of a free port", e))
}
