//! Renders kustomizations with `kubectl kustomize` (kubectl's built-in
//! kustomize; `make tools` provides kubectl), exactly what `kubectl apply -k` sends.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Environment variable naming the kubectl binary (default: `kubectl` on `PATH`).
pub const ENV_KUBECTL: &str = "MESHRAY_KUBECTL";

/// Why a kustomization did not render.
#[derive(Debug, thiserror::Error)]
pub enum KustomizeError {
    /// kubectl could not be started.
    #[error("cannot run {kubectl} (install it with `make tools`, or set {ENV_KUBECTL}): {source}")]
    NotAvailable {
        /// The binary tried.
        kubectl: String,
        /// Why it did not start.
        source: std::io::Error,
    },
    /// kustomize refused the kustomization.
    #[error("kubectl kustomize {dir} failed: {stderr}")]
    Render {
        /// The kustomization directory.
        dir: PathBuf,
        /// What kustomize said.
        stderr: String,
    },
}

/// The kubectl to run.
pub fn kubectl() -> String {
    std::env::var(ENV_KUBECTL).unwrap_or_else(|_| "kubectl".to_owned())
}

/// The rendered YAML stream of the kustomization in `dir`.
///
/// # Errors
/// [`KustomizeError`] when kubectl is missing or the kustomization is invalid.
pub fn render(dir: &Path) -> Result<String, KustomizeError> {
    let kubectl = kubectl();
    let output = Command::new(&kubectl)
        .arg("kustomize")
        .arg(dir)
        .output()
        .map_err(|source| KustomizeError::NotAvailable {
            kubectl: kubectl.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(KustomizeError::Render {
            dir: dir.to_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Every directory under `root` holding a `kustomization.yaml` of kind
/// `Kustomization` (renderable on its own; `Component`s are not), sorted.
pub fn kustomizations(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.file_name().is_some_and(|n| n == "kustomization.yaml")
                && fs::read_to_string(&path)
                    .is_ok_and(|text| text.lines().any(|l| l.trim() == "kind: Kustomization"))
            {
                found.push(dir.clone());
            }
        }
    }
    found.sort();
    found
}
