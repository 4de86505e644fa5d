//! Offline checks of meshray's install manifests (`istio/`, `deploy/`) and of the
//! filter's OCI image, so everything a platform team applies is known good without
//! a cluster.
//!
//! A manifest passes when every document
//! - parses as YAML and is an object with `apiVersion`, `kind`, `metadata.name`;
//! - validates against the strict JSON schema of its kind: Istio's CRD schemas
//!   (Istio 1.30.3) or Kubernetes' (1.33 and 1.37), vendored in `deploy/schemas/`,
//!   which reject unknown fields, wrong types and unknown `apiVersion`s;
//! - keeps the rules the API server enforces beyond the schema: the WasmPlugin
//!   CRD's CEL rules and every Istio list-map key (see [`rules`]).
//!
//! # Layout
//! - [`problem`]: one finding, with the file, object and JSON path it concerns.
//! - [`yaml`]: YAML streams to JSON values.
//! - [`select`]: the rule paths (`.spec.match[*].ports`) over a JSON value.
//! - [`go_url`]: Go's `url.ParseRequestURI`, which the WasmPlugin `url` rule uses.
//! - [`schemas`]: the vendored schemas, chosen by `apiVersion` + `kind`.
//! - [`rules`]: CEL and list-map rules as code.
//! - [`kustomize`]: renders a kustomization with `kubectl kustomize`.
//! - [`oci`]: reads an `oci-archive` (manifest digest, layers, one file of a layer).

pub mod go_url;
pub mod kustomize;
pub mod oci;
pub mod problem;
pub mod rules;
pub mod schemas;
pub mod select;
pub mod yaml;

use std::path::{Path, PathBuf};

pub use problem::Problem;
pub use schemas::Schemas;

/// The repository root (this crate lives in `deploy/check`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Every problem of one YAML stream (a file or a rendered kustomization), named
/// `source` in the findings. Empty documents (`---` alone) are skipped.
pub fn check_stream(schemas: &Schemas, source: &str, text: &str) -> Vec<Problem> {
    let documents = match yaml::parse_stream(text) {
        Ok(documents) => documents,
        Err(err) => return vec![Problem::new(source, "-", "", err.to_string())],
    };
    if documents.is_empty() {
        return vec![Problem::new(source, "-", "", "no document")];
    }
    documents
        .iter()
        .flat_map(|document| check_document(schemas, source, document))
        .collect()
}

/// Every problem of one document: its schema, then the rules beyond the schema.
pub fn check_document(
    schemas: &Schemas,
    source: &str,
    document: &serde_json::Value,
) -> Vec<Problem> {
    let object = problem::object_name(document);
    let mut problems: Vec<Problem> = schemas
        .check(document)
        .into_iter()
        .map(|(path, message)| Problem::new(source, &object, &path, message))
        .collect();
    problems.extend(
        rules::check(schemas, document)
            .into_iter()
            .map(|(path, message)| Problem::new(source, &object, &path, message)),
    );
    problems
}
