//! `envoy --mode validate`: Envoy's own check of a config file, without starting it.

use std::path::Path;

use crate::error::{HarnessError, Result};
use crate::paths;

/// Runs `envoy --mode validate -c <config>`.
///
/// # Errors
/// [`HarnessError::Missing`] without Envoy; [`HarnessError::Unexpected`] with Envoy's output
/// when the config is rejected.
pub async fn validate(config: &Path) -> Result<()> {
    let envoy = paths::envoy()?;
    let output = tokio::process::Command::new(&envoy)
        .args([
            "--mode",
            "validate",
            "--disable-hot-restart",
            "-l",
            "error",
            "-c",
        ])
        .arg(config)
        .output()
        .await
        .map_err(|source| HarnessError::Spawn {
            what: "envoy --mode validate".to_owned(),
            program: envoy.clone(),
            source,
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(HarnessError::unexpected(
            format!("envoy validation of {}", config.display()),
            format!(
                "{}\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envoy::bootstrap::tests::spec;
    use crate::envoy::bootstrap::{RELAY_CLUSTER, RelayTracer, SidecarSpec, write_json};

    /// The generated bootstrap (without the filter, whose module may not be built) passes
    /// `envoy --mode validate`.
    #[tokio::test]
    async fn bootstrap_passes_envoy_validation() {
        let dir = crate::run_dir::RunDir::new("envoy-validate").unwrap();
        let path = dir.path().join("envoy.json");
        write_json(&path, &spec().bootstrap()).unwrap();
        validate(&path).await.unwrap();
        // Two relay replicas behind a health-checked cluster (the rolling-restart drill).
        let replicas = SidecarSpec {
            relay_addrs: vec![
                "127.0.0.1:10003".parse().unwrap(),
                "127.0.0.1:10006".parse().unwrap(),
            ],
            relay_health_check: Some(std::time::Duration::from_millis(250)),
            ..spec()
        };
        write_json(&path, &replicas.bootstrap()).unwrap();
        validate(&path).await.unwrap();
        // And with each of Envoy's tracers reporting to the relay.
        for tracer in [RelayTracer::Zipkin, RelayTracer::OpenTelemetry] {
            let spec = SidecarSpec {
                zipkin_collector: None,
                tracer_to_relay: Some(tracer),
                ..spec()
            };
            let bootstrap = spec.bootstrap();
            let listeners = bootstrap["static_resources"]["listeners"]
                .as_array()
                .unwrap();
            for listener in listeners {
                let hcm = &listener["filter_chains"][0]["filters"][0]["typed_config"];
                let provider = &hcm["tracing"]["provider"]["typed_config"];
                let cluster = provider["collector_cluster"]
                    .as_str()
                    .or(provider["http_service"]["http_uri"]["cluster"].as_str());
                assert_eq!(cluster, Some(RELAY_CLUSTER), "{tracer:?}");
            }
            write_json(&path, &bootstrap).unwrap();
            validate(&path).await.unwrap();
        }
    }
}
