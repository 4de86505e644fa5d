//! meshray-e2e: the end-to-end harness of meshray.
//!
//! It runs what a mesh runs, on loopback and on ephemeral ports only: a local X-Ray API
//! (`moto_server`), the real `meshray-relay` binary, and three Envoy sidecars shaped like
//! Istio's (node metadata, `inbound|…`/`outbound|…` clusters, the relay's Service cluster)
//! with the meshray wasm filter, around a Bookinfo-like sample app served in-process.
//! Tests then read the traces back through `GetTraceSummaries`/`BatchGetTraces` and check
//! ids, parent links and the service graph themselves (moto does not build service graphs).
//!
//! # Layout
//! From [`meshray_test_support`], shared with the relay's tests and re-exported here:
//! - [`error`]: [`HarnessError`], the one error type of the harness.
//! - [`paths`]: where the Envoy, moto, filter and relay artifacts live (env overrides).
//! - [`run_dir`]: a per-test scratch directory for configs and logs, kept when a test fails.
//! - [`process`]: a child process that is killed on drop and logs to a file.
//! - [`http`]: a small HTTP/1 client used by the app, the admin helpers and the tests.
//! - [`ids`]: trace ids a test client sends, and reading back the ones the filter wrote.
//! - [`moto`]: `moto_server` on an ephemeral port and an X-Ray client pointed at it.
//! - [`relay`]: the `meshray-relay` binary as a child: start, stop, restart on the same port.
//! - [`xray`]: fetching traces from the X-Ray API and polling; the trace model (tree,
//!   rendering, service-graph edges) of [`meshray_core::trace`].
//!
//! Of this crate:
//! - [`envoy`]: Istio-shaped sidecar configs, the Envoy child, admin stats and RSS.
//! - [`zipkin`]: an in-test Zipkin collector that counts what Envoy's Zipkin tracer posts.
//! - [`app`]: the sample app: productpage → reviews → ratings, forwarding like Bookinfo.
//! - [`mesh`]: wires all of the above into one local mesh.
//! - [`load`]: steady application load with latencies, for the drills.
//! - [`delay_proxy`]: a slow relay (an HTTP proxy that holds every request), for the drills.
//! - [`schema`]: every document against AWS's segment document schema and the relay's validator.
//! - [`check`]: the checks the tests and the demo apply to a trace and to a Bookinfo trace.
//! - [`xray_sdk`]: what an X-Ray SDK app does with the `x-amzn-trace-id` it receives.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod check;
pub mod delay_proxy;
pub mod envoy;
pub mod load;
pub mod mesh;
pub mod schema;
pub mod xray_sdk;
pub mod zipkin;

pub use meshray_test_support::{error, http, ids, moto, paths, process, relay, run_dir, xray};

pub use error::{HarnessError, Result};
pub use mesh::{Mesh, MeshOptions};
