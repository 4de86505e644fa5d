//! A scratch directory per test run: generated Envoy configs, address files and the logs
//! of every child process.
//!
//! It is removed on drop when the run went well. It is kept, and its path printed, when the
//! dropping thread is panicking (a failed test) or when `$MESHRAY_KEEP_RUN_DIR` is set, so
//! the logs of a failure can be read afterwards.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{HarnessError, Result};

/// Set (to anything non-empty) to keep every run directory.
pub const ENV_KEEP_RUN_DIR: &str = "MESHRAY_KEEP_RUN_DIR";
/// Overrides the parent of run directories (default: the system temp dir).
pub const ENV_RUN_DIR_BASE: &str = "MESHRAY_RUN_DIR_BASE";

/// Distinguishes run directories created by one process.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// A directory that lives as long as the test run that owns it.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    keep: bool,
}

impl RunDir {
    /// Creates `<base>/meshray-e2e-<label>-<pid>-<n>-<nanos>`.
    ///
    /// # Errors
    /// [`HarnessError::Io`] when the directory cannot be created.
    pub fn new(label: &str) -> Result<Self> {
        let base = match std::env::var_os(ENV_RUN_DIR_BASE) {
            Some(base) if !base.is_empty() => PathBuf::from(base),
            _ => std::env::temp_dir(),
        };
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let label: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let path = base.join(format!(
            "meshray-e2e-{label}-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)
            .map_err(|e| HarnessError::io(format!("create run dir {}", path.display()), e))?;
        let keep = std::env::var_os(ENV_KEEP_RUN_DIR).is_some_and(|v| !v.is_empty());
        Ok(Self { path, keep })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates (if needed) and returns the sub-directory `name`.
    ///
    /// # Errors
    /// [`HarnessError::Io`] when it cannot be created.
    pub fn subdir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.path.join(name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| HarnessError::io(format!("create {}", dir.display()), e))?;
        Ok(dir)
    }

    /// Keeps the directory after drop whatever happens (e.g. for the demo).
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if self.keep || std::thread::panicking() {
            eprintln!("meshray-e2e: logs kept in {}", self.path.display());
        } else if let Err(err) = std::fs::remove_dir_all(&self.path) {
            eprintln!(
                "meshray-e2e: could not remove {}: {err}",
                self.path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_on_drop_and_unique() {
        let a = RunDir::new("unit test").unwrap();
        let b = RunDir::new("unit test").unwrap();
        assert_ne!(a.path(), b.path());
        let sub = a.subdir("pod").unwrap();
        assert!(sub.is_dir());
        let path = a.path().to_path_buf();
        drop(a);
        assert!(!path.exists() || std::env::var_os(ENV_KEEP_RUN_DIR).is_some());
    }
}
