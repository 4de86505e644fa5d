//! The vendored schemas (`deploy/schemas/`, see its README for sources and
//! licenses), compiled once and chosen per document by `apiVersion` + `kind`:
//! - Istio: `istio/index.json` names one strict draft-07 schema per served
//!   version of each kind meshray uses (Istio 1.30.3);
//! - Kubernetes: `kubernetes/v<version>/*.json`, strict 2020-12 schemas, each
//!   naming its group/version/kind; every document is checked against each
//!   vendored Kubernetes version (the oldest EKS runs and the newest).
//!
//! A document whose `apiVersion` + `kind` has no schema is a problem too: that is
//! how a wrong `apiVersion` (or a kind not vendored yet) shows.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use jsonschema::Validator;
use serde_json::Value;

/// `(apiVersion, kind)`.
type Gvk = (String, String);

/// Why the vendored schemas could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is not JSON or lacks what it should hold.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Every vendored schema, compiled.
pub struct Schemas {
    /// The Istio release the Istio schemas come from.
    pub istio_version: String,
    istio: BTreeMap<Gvk, (String, Validator)>,
    /// Kubernetes version → validators.
    kubernetes: BTreeMap<String, BTreeMap<Gvk, Validator>>,
    /// `x-kubernetes-rules.json` `rules`, by Istio schema file name.
    istio_rules: serde_json::Map<String, Value>,
}

impl Schemas {
    /// The schemas in this repository's `deploy/schemas/`.
    ///
    /// # Errors
    /// [`SchemaError`] when a vendored file is missing or broken.
    pub fn vendored() -> Result<Self, SchemaError> {
        Self::load(&crate::repo_root().join("deploy/schemas"))
    }

    /// The schemas under `dir` (`istio/` and `kubernetes/v*/`).
    ///
    /// # Errors
    /// [`SchemaError`] when a file is missing, not JSON, or does not compile.
    pub fn load(dir: &Path) -> Result<Self, SchemaError> {
        let istio_dir = dir.join("istio");
        let index_path = istio_dir.join("index.json");
        let index = read_json(&index_path)?;
        let istio_version = index["source"]
            .as_str()
            .and_then(|source| source.split("(tag ").nth(1))
            .and_then(|rest| rest.split(')').next())
            .unwrap_or("?")
            .to_owned();
        let mut istio = BTreeMap::new();
        for entry in index["schemas"].as_array().into_iter().flatten() {
            let (Some(api_version), Some(kind), Some(file)) = (
                entry["apiVersion"].as_str(),
                entry["kind"].as_str(),
                entry["file"].as_str(),
            ) else {
                return Err(invalid(
                    &index_path,
                    format!("entry {entry} lacks apiVersion, kind or file"),
                ));
            };
            let path = istio_dir.join(file);
            let validator = compile(&path)?;
            istio.insert(
                (api_version.to_owned(), kind.to_owned()),
                (file.to_owned(), validator),
            );
        }
        let rules_path = istio_dir.join("x-kubernetes-rules.json");
        let istio_rules = match read_json(&rules_path)?.get_mut("rules").map(Value::take) {
            Some(Value::Object(rules)) => rules,
            _ => return Err(invalid(&rules_path, "no `rules` object".to_owned())),
        };

        let kube_dir = dir.join("kubernetes");
        let mut kubernetes = BTreeMap::new();
        for version_dir in sorted_entries(&kube_dir)? {
            let Some(version) = version_dir
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix('v'))
            else {
                continue;
            };
            let mut validators = BTreeMap::new();
            for path in sorted_entries(&version_dir)? {
                if path.extension().is_some_and(|e| e == "json") {
                    let schema = read_json(&path)?;
                    let gvk = kubernetes_gvk(&schema).ok_or_else(|| {
                        invalid(&path, "no x-kubernetes-group-version-kind".to_owned())
                    })?;
                    validators.insert(gvk, build(&path, &schema)?);
                }
            }
            kubernetes.insert(version.to_owned(), validators);
        }
        if istio.is_empty() || kubernetes.is_empty() {
            return Err(invalid(
                dir,
                "no Istio or no Kubernetes schemas found".to_owned(),
            ));
        }
        Ok(Schemas {
            istio_version,
            istio,
            kubernetes,
            istio_rules,
        })
    }

    /// The Kubernetes versions checked against.
    pub fn kubernetes_versions(&self) -> Vec<&str> {
        self.kubernetes.keys().map(String::as_str).collect()
    }

    /// `x-kubernetes-rules.json`'s entry for an Istio kind (CEL rules, list-map keys).
    pub fn istio_rules(&self, api_version: &str, kind: &str) -> Option<&Value> {
        let (file, _) = self.istio.get(&(api_version.to_owned(), kind.to_owned()))?;
        self.istio_rules.get(file)
    }

    /// Every schema violation of `document`, as (JSON pointer, message).
    pub fn check(&self, document: &Value) -> Vec<(String, String)> {
        let (Some(api_version), Some(kind)) =
            (document["apiVersion"].as_str(), document["kind"].as_str())
        else {
            return vec![(
                String::new(),
                "not a Kubernetes object: `apiVersion` and `kind` are required".to_owned(),
            )];
        };
        let gvk = (api_version.to_owned(), kind.to_owned());
        if let Some((_, validator)) = self.istio.get(&gvk) {
            return errors(
                validator,
                document,
                &format!("Istio {}", self.istio_version),
            );
        }
        let mut problems = Vec::new();
        let mut known = false;
        for (version, validators) in &self.kubernetes {
            if let Some(validator) = validators.get(&gvk) {
                known = true;
                problems.extend(errors(
                    validator,
                    document,
                    &format!("Kubernetes {version}"),
                ));
            }
        }
        if !known {
            return vec![(String::new(), self.unknown(api_version, kind))];
        }
        problems.extend(crate::rules::kubernetes_metadata(document));
        problems
    }

    fn unknown(&self, api_version: &str, kind: &str) -> String {
        let mut served: Vec<&str> = self
            .istio
            .keys()
            .chain(self.kubernetes.values().flat_map(BTreeMap::keys))
            .filter(|(_, k)| k == kind)
            .map(|(v, _)| v.as_str())
            .collect();
        served.sort_unstable();
        served.dedup();
        if served.is_empty() {
            format!(
                "no schema for {api_version} {kind}: not a kind meshray's manifests use \
                 (vendor its schema into deploy/schemas/ first)"
            )
        } else {
            format!(
                "{api_version} does not serve {kind}; use apiVersion {}",
                served.join(" or ")
            )
        }
    }
}

fn errors(validator: &Validator, document: &Value, against: &str) -> Vec<(String, String)> {
    validator
        .iter_errors(document)
        .map(|error| {
            (
                error.instance_path().to_string(),
                format!("{error} ({against} schema)"),
            )
        })
        .collect()
}

fn kubernetes_gvk(schema: &Value) -> Option<Gvk> {
    let gvk = schema["x-kubernetes-group-version-kind"]
        .as_array()?
        .first()?;
    let (group, version, kind) = (
        gvk["group"].as_str()?,
        gvk["version"].as_str()?,
        gvk["kind"].as_str()?,
    );
    let api_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some((api_version, kind.to_owned()))
}

fn compile(path: &Path) -> Result<Validator, SchemaError> {
    build(path, &read_json(path)?)
}

fn build(path: &Path, schema: &Value) -> Result<Validator, SchemaError> {
    jsonschema::options()
        .build(schema)
        .map_err(|e| invalid(path, format!("schema does not compile: {e}")))
}

fn read_json(path: &Path) -> Result<Value, SchemaError> {
    let text = fs::read_to_string(path).map_err(|source| SchemaError::Read {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| invalid(path, format!("not JSON: {e}")))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, SchemaError> {
    let read = |source| SchemaError::Read {
        path: dir.to_owned(),
        source,
    };
    let mut entries = fs::read_dir(dir)
        .map_err(read)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(read)?;
    entries.sort();
    Ok(entries)
}

fn invalid(path: &Path, reason: String) -> SchemaError {
    SchemaError::Invalid {
        path: path.to_owned(),
        reason,
    }
}
