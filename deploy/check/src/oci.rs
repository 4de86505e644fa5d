//! Reads an `oci-archive` (a tar of an OCI image layout, what `buildah commit
//! oci-archive:…` writes) without a container runtime: the manifest and its
//! digest, the config, and each layer's bytes, every blob checked against its
//! content address. Tar handling is delegated to the system `tar`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Why an archive could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// `tar` failed or could not be run.
    #[error("tar {what}: {reason}")]
    Tar {
        /// What was being read.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// The layout is not what the OCI image spec says.
    #[error("{archive}: {reason}")]
    Layout {
        /// The archive.
        archive: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// One layer of an image.
#[derive(Debug, Clone)]
pub struct Layer {
    /// e.g. `application/vnd.oci.image.layer.v1.tar+gzip`.
    pub media_type: String,
    /// `sha256:<hex>` of the blob.
    pub digest: String,
    /// The blob as stored (compressed as its media type says).
    pub blob: Vec<u8>,
}

/// An image read from an archive.
#[derive(Debug, Clone)]
pub struct Image {
    /// sha256 (hex) of the manifest bytes: the image digest registries and Istio use.
    pub manifest_digest: String,
    /// The manifest.
    pub manifest: Value,
    /// The image config.
    pub config: Value,
    /// The layers, in order.
    pub layers: Vec<Layer>,
}

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads the single image of the archive at `path`.
///
/// # Errors
/// [`OciError`] when the archive is missing, not an OCI layout, holds other than
/// one image, or a blob does not match its digest.
pub fn read(path: &Path) -> Result<Image, OciError> {
    let layout = |reason: String| OciError::Layout {
        archive: path.to_owned(),
        reason,
    };
    let index: Value = json(&member(path, "index.json")?).map_err(layout)?;
    let [entry] = index["manifests"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    else {
        return Err(layout(
            "index.json must list exactly one manifest".to_owned(),
        ));
    };
    let manifest_bytes = blob(path, &entry["digest"])?;
    let manifest: Value = json(&manifest_bytes).map_err(layout)?;
    let config: Value = json(&blob(path, &manifest["config"]["digest"])?).map_err(layout)?;
    let mut layers = Vec::new();
    for layer in manifest["layers"].as_array().into_iter().flatten() {
        layers.push(Layer {
            media_type: layer["mediaType"].as_str().unwrap_or_default().to_owned(),
            digest: layer["digest"].as_str().unwrap_or_default().to_owned(),
            blob: blob(path, &layer["digest"])?,
        });
    }
    Ok(Image {
        manifest_digest: sha256_hex(&manifest_bytes),
        manifest,
        config,
        layers,
    })
}

/// The names of the entries of a layer (`gzip`: the blob is tar+gzip).
///
/// # Errors
/// [`OciError::Tar`] when the blob is not a (compressed) tar.
pub fn layer_entries(layer: &[u8], gzip: bool) -> Result<Vec<String>, OciError> {
    let listing = tar_stdin(layer, &[if gzip { "-tz" } else { "-t" }], "layer listing")?;
    Ok(String::from_utf8_lossy(&listing)
        .lines()
        .map(str::to_owned)
        .collect())
}

/// The bytes of file `name` in a layer.
///
/// # Errors
/// [`OciError::Tar`] when the layer has no such file or is not a tar.
pub fn layer_file(layer: &[u8], gzip: bool, name: &str) -> Result<Vec<u8>, OciError> {
    tar_stdin(layer, &[if gzip { "-xzO" } else { "-xO" }, name], name)
}

fn blob(archive: &Path, digest: &Value) -> Result<Vec<u8>, OciError> {
    let layout = |reason: String| OciError::Layout {
        archive: archive.to_owned(),
        reason,
    };
    let digest = digest
        .as_str()
        .ok_or_else(|| layout("a descriptor has no digest".to_owned()))?;
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| layout(format!("{digest} is not a sha256 digest")))?;
    let bytes = member(archive, &format!("blobs/sha256/{hex}"))?;
    let actual = sha256_hex(&bytes);
    if actual != hex {
        return Err(layout(format!("blob {hex} has sha256 {actual}")));
    }
    Ok(bytes)
}

fn member(archive: &Path, name: &str) -> Result<Vec<u8>, OciError> {
    let output = Command::new("tar")
        .arg("-xOf")
        .arg(archive)
        .arg(name)
        .output()
        .map_err(|e| OciError::Tar {
            what: name.to_owned(),
            reason: e.to_string(),
        })?;
    if !output.status.success() {
        return Err(OciError::Tar {
            what: format!("{name} of {}", archive.display()),
            reason: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(output.stdout)
}

fn tar_stdin(input: &[u8], args: &[&str], what: &str) -> Result<Vec<u8>, OciError> {
    let fail = |reason: String| OciError::Tar {
        what: what.to_owned(),
        reason,
    };
    let mut child = Command::new("tar")
        .args(args.iter().take(1))
        .arg("-f")
        .arg("-")
        .args(args.iter().skip(1))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| fail("no stdin".to_owned()))?;
    let input = input.to_vec();
    // Feed tar from another thread: it writes its output while reading its input.
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    let written = writer
        .join()
        .map_err(|_| fail("writer thread failed".to_owned()))?;
    if !output.status.success() {
        return Err(fail(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ));
    }
    written.map_err(|e| fail(e.to_string()))?;
    Ok(output.stdout)
}

fn json(bytes: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))
}
