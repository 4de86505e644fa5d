//! meshray-filter: a proxy-wasm HTTP filter that turns every request an Istio
//! sidecar handles into an AWS X-Ray segment (inbound) or subsegment (outbound)
//! and ships them to the meshray relay.
//!
//! # Layout
//! - [`config`]: the WasmPlugin `pluginConfig`, validated with every problem listed.
//! - [`host`]: the [`host::Host`] trait, the only way the logic reaches Envoy.
//! - [`workload`]: who the sidecar belongs to (Istio node metadata).
//! - [`tracer`]: per-request logic: classify, link, propagate, build the document.
//! - [`links`]: trace → segment map in the VM's shared data.
//! - [`shipper`]: bounded buffer and batched posts to the relay.
//! - [`worker`]: one worker VM's state; the configure step, the timer, the relay's answers.
//! - [`metrics`]: counters visible in Envoy's `/stats`.
//! - `adapter` (wasm32 only): the proxy-wasm root and HTTP contexts and `ProxyWasmHost`.
#![forbid(unsafe_code)]

pub mod config;
pub mod host;
pub mod links;
pub mod metrics;
pub mod shipper;
pub mod tracer;
pub mod worker;
pub mod workload;

#[cfg(target_arch = "wasm32")]
mod adapter;
