//! YAML streams (one or more `---`-separated documents) to JSON values, the form
//! the API server validates.
//!
//! YAML 1.2 core schema: `yes`/`on` are strings here, while Kubernetes' YAML 1.1
//! reader takes them as booleans; yamllint's `truthy` rule (`make manifests`)
//! flags such values, so they never reach a cluster ambiguous.

use serde_json::{Map, Number, Value};
use yaml_rust2::{Yaml, YamlLoader};

/// Why a stream could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YamlError {
    /// Not well-formed YAML.
    #[error("not valid YAML: {0}")]
    Syntax(String),
    /// Well-formed, but not representable as JSON (the API server's form).
    #[error("document {document}: {reason}")]
    NotJson {
        /// 1-based index of the document in the stream.
        document: usize,
        /// What could not be converted.
        reason: String,
    },
}

/// Every non-empty document of `text`, as JSON.
///
/// # Errors
/// [`YamlError`] when the text is not YAML, or holds non-scalar keys or numbers
/// JSON cannot carry.
pub fn parse_stream(text: &str) -> Result<Vec<Value>, YamlError> {
    let documents =
        YamlLoader::load_from_str(text).map_err(|e| YamlError::Syntax(e.to_string()))?;
    documents
        .iter()
        .enumerate()
        .filter(|(_, document)| !matches!(document, Yaml::Null))
        .map(|(index, document)| {
            to_json(document).map_err(|reason| YamlError::NotJson {
                document: index + 1,
                reason,
            })
        })
        .collect()
}

fn to_json(node: &Yaml) -> Result<Value, String> {
    Ok(match node {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::Number(Number::from(*i)),
        Yaml::Real(text) => {
            let parsed = node
                .as_f64()
                .ok_or_else(|| format!("{text:?} is not a number"))?;
            Value::Number(
                Number::from_f64(parsed).ok_or_else(|| format!("{text} has no JSON form"))?,
            )
        }
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Array(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Yaml::Hash(entries) => {
            let mut object = Map::new();
            for (key, value) in entries {
                let key = match key {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    Yaml::Real(r) => r.clone(),
                    other => return Err(format!("mapping key {other:?} is not a scalar")),
                };
                object.insert(key, to_json(value)?);
            }
            Value::Object(object)
        }
        Yaml::Alias(_) => return Err("unresolved YAML alias".to_owned()),
        Yaml::BadValue => return Err("unreadable value".to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_stream_becomes_its_documents() {
        let text = "---\na: 1\nb: [x, 2.5, true, null]\n---\n---\nc: {d: \"007\"}\n";
        assert_eq!(
            parse_stream(text).unwrap(),
            vec![
                json!({"a": 1, "b": ["x", 2.5, true, null]}),
                json!({"c": {"d": "007"}})
            ]
        );
    }

    #[test]
    fn quoted_digits_stay_strings() {
        assert_eq!(
            parse_stream("a: \"0123\"\n").unwrap(),
            vec![json!({"a": "0123"})]
        );
    }

    #[test]
    fn broken_yaml_is_reported() {
        assert!(matches!(
            parse_stream("a: [1, 2\n"),
            Err(YamlError::Syntax(_))
        ));
    }

    #[test]
    fn aliases_resolve_as_in_kubernetes() {
        assert_eq!(
            parse_stream("a: &x {k: 1}\nb: *x\n").unwrap(),
            vec![json!({"a": {"k": 1}, "b": {"k": 1}})]
        );
    }
}
