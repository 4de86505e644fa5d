//! A bad `pluginConfig` is refused where an operator sees it.
//!
//! Needs the filter module, the relay binary, Envoy and moto (`make test`).

// Test helpers outside `#[test]` functions: a failed unwrap or panic here is a failed test
// with a clear location, as clippy.toml allows inside tests.
#![allow(clippy::unwrap_used, clippy::panic)]

use meshray_e2e::{HarnessError, Mesh, MeshOptions};

/// Every kind of wrong field at once: a negative and an out-of-range number, a wrong
/// type, an unknown field, an empty string, a bad header name, an unknown propagation
/// format, a name template without `{service}`.
const EVERY_KIND_WRONG: &str = r#"{
    "flush_interval_ms": -5,
    "sampling_rate": 2,
    "max_batch": "ten",
    "no_such_field": 1,
    "relay_cluster": "",
    "annotate_headers": ["bad header"],
    "propagate": ["zipkin"],
    "service_name_format": "{svc}"
}"#;
/// The fields [`EVERY_KIND_WRONG`] gets wrong: each must be named in Envoy's log.
const WRONG_FIELDS: [&str; 8] = [
    "flush_interval_ms",
    "sampling_rate",
    "max_batch",
    "no_such_field",
    "relay_cluster",
    "annotate_headers",
    "propagate",
    "service_name_format",
];

/// A plugin config with every kind of wrong field makes the filter's `on_configure` fail,
/// so Envoy refuses the listener and exits at start-up; the harness reports that with
/// Envoy's log, which names every problem at once. A config that is not JSON at all is
/// refused the same way, saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_refuses_an_invalid_plugin_config() {
    let tail = refused_with(EVERY_KIND_WRONG, "bad-plugin-config").await;
    for field in WRONG_FIELDS {
        assert!(tail.contains(field), "{field} is not named in:\n{tail}");
    }
    let tail = refused_with("{not json", "plugin-config-not-json").await;
    assert!(tail.to_lowercase().contains("json"), "{tail}");
}

/// Starts a mesh with `plugin_config`, expects a sidecar to exit, and returns its log tail.
async fn refused_with(plugin_config: &str, label: &str) -> String {
    let result = Mesh::start(MeshOptions {
        plugin_config_json: plugin_config.into(),
        label: label.into(),
        ..MeshOptions::default()
    })
    .await;
    let err = match result {
        Ok(_) => panic!("the mesh started with an invalid plugin config"),
        Err(err) => err,
    };
    let HarnessError::Exited {
        what, tail, log, ..
    } = &err
    else {
        panic!("expected Envoy to exit, got: {err}");
    };
    assert!(what.contains("envoy sidecar"), "{err}");
    // The harness keeps a failed start's run directory for the operator; this failure
    // was the point, so clean up: <run dir>/<workload>/envoy.log.
    if let Some(run_dir) = log.parent().and_then(|p| p.parent()) {
        std::fs::remove_dir_all(run_dir).unwrap();
    }
    tail.clone()
}
