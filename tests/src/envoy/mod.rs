//! Envoy sidecars shaped like Istio's, generated and run by the harness.
//!
//! - [`bootstrap`]: what istiod would send a pod's proxy, as a static bootstrap.
//! - [`sidecar`]: the Envoy child process: start, wait for LIVE and listeners, stop.
//! - [`admin`]: reading Envoy's admin API (`/stats`, `/listeners`, `/clusters`) and the
//!   process's RSS.
//! - [`validate`]: `envoy --mode validate` on a config file.
//!
//! Everything listens on 127.0.0.1 port 0: the admin address comes from
//! `--admin-address-path`, listener ports from admin `GET /listeners?format=json`.

pub mod admin;
pub mod bootstrap;
pub mod sidecar;
pub mod validate;

pub use admin::{HostStatus, Stats, parse_cluster_hosts, parse_listeners, rss_bytes};
pub use bootstrap::{
    CLUSTER_ID, GATEWAY_LISTENER, INBOUND_CLUSTER, INBOUND_LISTENER, MESH_ID, OUTBOUND_LISTENER,
    RELAY_AUTHORITY, RELAY_CLUSTER, RelayTracer, SERVICE_PORT, SidecarSpec, Upstream, WasmFilter,
    Workload, ZIPKIN_CLUSTER, fqdn, outbound_cluster, write_json,
};
pub use sidecar::Sidecar;
pub use validate::validate;
