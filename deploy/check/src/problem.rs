//! One finding of a check, printed as `source: Kind/namespace/name: at path: message`.

use std::fmt;

use serde_json::Value;

/// Something a manifest gets wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file or kustomization the document came from.
    pub source: String,
    /// `Kind/namespace/name` of the document (`-` when it has none).
    pub object: String,
    /// JSON path inside the document (`/spec/selector`), empty for the whole document.
    pub path: String,
    /// What is wrong, in the validator's or the API server's words.
    pub message: String,
}

impl Problem {
    /// A finding about `object` in `source`.
    pub fn new(source: &str, object: &str, path: &str, message: impl Into<String>) -> Self {
        Problem {
            source: source.to_owned(),
            object: object.to_owned(),
            path: path.to_owned(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}: {}", self.source, self.object, self.message)
        } else {
            write!(
                f,
                "{}: {}: at {}: {}",
                self.source, self.object, self.path, self.message
            )
        }
    }
}

/// `Kind/namespace/name` (or `Kind/name` without a namespace) for messages.
pub fn object_name(document: &Value) -> String {
    let kind = document["kind"].as_str().unwrap_or("?");
    let name = document["metadata"]["name"].as_str().unwrap_or("?");
    match document["metadata"]["namespace"].as_str() {
        Some(namespace) => format!("{kind}/{namespace}/{name}"),
        None => format!("{kind}/{name}"),
    }
}
