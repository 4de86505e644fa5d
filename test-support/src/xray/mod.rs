//! Reading traces back from the X-Ray API and waiting for them.
//!
//! - [`api`]: [`XrayApi`], the `GetTraceSummaries`/`BatchGetTraces` calls with moto's
//!   workaround.
//! - [`poll`]: [`wait_for_traces`] and [`wait_for_documents`].
//!
//! The trace model itself (documents, tree, rendering, service graph) is
//! [`meshray_core::trace`], re-exported here so tests import one module.

pub mod api;
pub mod poll;

pub use api::{MAX_BATCH_GET, XrayApi};
pub use meshray_core::trace::{
    Document, DocumentParseError, Edge, Kind, Trace, is_span_id, is_xray_trace_id, render_graph,
    service_graph,
};
pub use poll::{Collected, Expectation, wait_for_documents, wait_for_traces};
