//! meshray-cli: the `meshray` command-line tool's library. It reads what a mesh sent to an
//! X-Ray API (AWS, or a local one such as moto) back for a time window and shows it: the
//! text tree of each trace (`meshray traces`) or one self-contained HTML page with the
//! service map, a sortable trace list and a waterfall per trace (`meshray view`).
//!
//! The demo (`make demo`) and the end-to-end tests use the same pieces.
//!
//! # Layout
//! - [`aws`]: the default credential chain, `AWS_ENDPOINT_URL_XRAY`, the X-Ray client.
//! - [`xray`]: [`XrayReader`]: `GetTraceSummaries` (with moto's workaround),
//!   `BatchGetTraces`, `GetServiceGraph`.
//! - [`service_graph`]: `GetServiceGraph`'s services as a [`meshray_core::trace::ServiceMap`].
//! - [`collect`]: one window's traces and map, with progress.
//! - [`since`]: `--since 5m`.
//! - [`saved`]: traces saved as JSON (the tests' fixed documents).
//! - [`view`]: the HTML page (pure function of the documents).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod aws;
pub mod collect;
pub mod saved;
pub mod service_graph;
pub mod since;
pub mod view;
pub mod xray;

pub use collect::{Collected, Progress, collect};
pub use xray::{ReadError, XrayReader};
