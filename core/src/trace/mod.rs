//! Reading traces back: the documents X-Ray stores for one trace as a tree, its text
//! rendering, and the service graph derived from the documents.
//!
//! This is the one model the end-to-end harness, the demo and the `meshray` CLI share.
//!
//! # Layout
//! - [`document`]: one stored document (segment, independent or embedded subsegment).
//! - [`tree`]: [`Trace`], the documents of one trace linked by enclosure and `parent_id`,
//!   with the structural problems that break the tree.
//! - [`render`]: the trace as an indented text tree.
//! - [`graph`]: the calls between services and the service-graph edges, derived from the
//!   documents.
//! - [`map`]: the service map: nodes and edges with request counts, rates and latency.

pub mod document;
pub mod graph;
pub mod map;
pub mod render;
pub mod tree;

pub use document::{Document, DocumentParseError, Kind, is_span_id, is_xray_trace_id};
pub use graph::{Call, Edge, render_graph, service_graph};
pub use map::{MapEdge, Node, NodeKind, ServiceMap, Stats};
pub use tree::Trace;
