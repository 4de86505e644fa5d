//! meshray-test-support: what meshray's tests need to run real components on loopback,
//! shared by the relay's integration tests (`relay/tests`) and the end-to-end tests
//! (`tests/`).
//!
//! Everything binds 127.0.0.1 and an ephemeral port and is stopped when dropped. It only
//! depends on crates the relay already builds with, so the relay's tests compile little
//! more than this crate.
//!
//! # Layout
//! - [`error`]: [`HarnessError`], the one error type of the test support.
//! - [`paths`]: where the Envoy, moto, filter and relay artifacts live (env overrides).
//! - [`run_dir`]: a per-test scratch directory for configs and logs, kept when a test fails.
//! - [`process`]: a child process that is killed on drop and logs to a file.
//! - [`ports`]: a free port for servers that cannot bind port 0 themselves.
//! - [`http`]: a small HTTP/1 client and an in-process axum server.
//! - [`ids`]: trace ids a test client sends, and reading back the ones the filter wrote.
//! - [`moto`]: `moto_server` on an ephemeral port; THE AWS SDK config of every test.
//! - [`redis`]: `redis-server` on an ephemeral port.
//! - [`relay`]: the `meshray-relay` binary as a child: start, stop, restart on the same port.
//! - [`xray`]: reading traces from the X-Ray API (with moto's workaround) and polling.
//! - [`wait`]: waiting until a condition holds.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod http;
pub mod ids;
pub mod moto;
pub mod paths;
pub mod ports;
pub mod process;
pub mod redis;
pub mod relay;
pub mod run_dir;
pub mod wait;
pub mod xray;

pub use error::{HarnessError, Result};
