//! A bad `pluginConfig` is refused where an operator sees it.
//!
//! Needs the filter module, the relay binary, Envoy and moto (`make test`).

use meshray_e2e::{HarnessError, Mesh, MeshOptions};

/// A plugin config with an unknown field and a bad value makes the filter's
/// `on_configure` fail, so Envoy refuses the listener and exits at start-up; the harness
/// reports that with Envoy's log, which names both problems.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_refuses_an_invalid_plugin_config() {
    let result = Mesh::start(MeshOptions {
        plugin_config_json: r#"{"flush_interval_ms": -5, "no_such_field": 1}"#.into(),
        label: "bad-plugin-config".into(),
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
    assert!(tail.contains("no_such_field"), "{err}");
    assert!(tail.contains("flush_interval_ms"), "{err}");
    // The harness keeps a failed start's run directory for the operator; this failure
    // was the point, so clean up: <run dir>/<workload>/envoy.log.
    if let Some(run_dir) = log.parent().and_then(|p| p.parent()) {
        std::fs::remove_dir_all(run_dir).unwrap();
    }
}
