//! meshray-core: the host-independent logic shared by the meshray filter and relay.
//!
//! Nothing here does I/O or knows about proxy-wasm or tokio; it compiles for
//! `wasm32-wasip1` and natively and is tested on the host.
//!
//! # Layout
//! - [`ids`]: trace and span ids, the epoch window and the X-Ray trace id mapping.
//! - [`propagation`]: codecs for `x-amzn-trace-id`, W3C `traceparent`, B3 single and
//!   B3 multi headers, their precedence, and the minimal header rewrite.
//! - [`cluster`]: classification of Envoy `upstream_cluster` names (Istio's naming).
//! - [`segment`]: the X-Ray segment document model and its builder.
//! - [`json_writer`]: the minimal JSON writer documents serialise themselves with.
//! - [`grpc`]: gRPC status codes and their X-Ray meaning.
//! - [`limits`]: X-Ray limits and sanitisation of names, keys and values.
//! - [`response_flags`]: Envoy response flag codes and what they mean for X-Ray.
//! - [`validate`]: validation of incoming documents, shared by the relay and the tests.
//! - [`trace`]: stored traces read back: document tree, text rendering, service graph.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cluster;
pub mod grpc;
pub mod ids;
pub mod json_writer;
pub mod limits;
pub mod propagation;
pub mod response_flags;
pub mod segment;
pub mod trace;
pub mod validate;
