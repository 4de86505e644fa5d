//! Shared by the manifest and image tests: the repository's paths and rendered
//! kustomizations. Needs kubectl (`make tools`); run through `make test`.

// Test helpers: a failure here is a failed test, reported with what was expected.
#![allow(dead_code, clippy::panic)]

use std::path::{Path, PathBuf};

use meshray_deploy_check::{Schemas, kustomize, repo_root, yaml};
use serde_json::Value;

/// The vendored schemas, compiled.
pub fn schemas() -> Schemas {
    Schemas::vendored().unwrap_or_else(|e| panic!("vendored schemas: {e}"))
}

/// `root`-relative display of a path.
pub fn shown(path: &Path) -> String {
    path.strip_prefix(repo_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The kustomizations users apply: everything under istio/ and deploy/ except
/// this crate's test data.
pub fn shipped_kustomizations() -> Vec<PathBuf> {
    let root = repo_root();
    let mut found = kustomize::kustomizations(&root.join("istio"));
    found.extend(
        kustomize::kustomizations(&root.join("deploy"))
            .into_iter()
            .filter(|dir| !dir.starts_with(root.join("deploy/check"))),
    );
    found
}

/// The documents `kubectl kustomize <dir>` renders (`dir` relative to the repo root).
pub fn rendered(dir: &str) -> Vec<Value> {
    let path = repo_root().join(dir);
    let text = kustomize::render(&path).unwrap_or_else(|e| panic!("{e}"));
    yaml::parse_stream(&text).unwrap_or_else(|e| panic!("{dir}: {e}"))
}

/// The one document of `kind` named `name` among `documents`.
pub fn find<'a>(documents: &'a [Value], kind: &str, name: &str) -> &'a Value {
    let matching: Vec<&Value> = documents
        .iter()
        .filter(|d| {
            d["kind"] == kind
                && d["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(name))
        })
        .collect();
    match matching.as_slice() {
        [one] => one,
        _ => panic!(
            "expected one {kind} named {name}*, found {}",
            matching.len()
        ),
    }
}
