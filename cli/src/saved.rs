//! Traces saved as JSON: `[{"id": "1-…", "documents": [{…segment document…}, …]}, …]`, the
//! shape of `BatchGetTraces`' traces with each document parsed. The tests' fixed documents
//! are kept in it.

use meshray_core::trace::{Document, DocumentParseError, Trace};
use serde_json::Value;

/// Saved traces that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SavedError {
    /// Not JSON, or not the expected shape.
    #[error("saved traces: {0}; expected [{{\"id\": \"1-…\", \"documents\": [{{…}}]}}]")]
    Shape(String),
    /// A document is not a JSON object.
    #[error("saved traces: {0}")]
    Document(#[from] DocumentParseError),
}

/// Reads saved traces from JSON text.
///
/// # Errors
/// [`SavedError`] naming what is wrong.
pub fn traces_from_json(text: &str) -> Result<Vec<Trace>, SavedError> {
    let value: Value = serde_json::from_str(text).map_err(|e| SavedError::Shape(e.to_string()))?;
    let list = value
        .as_array()
        .ok_or_else(|| SavedError::Shape("not a list".to_owned()))?;
    list.iter()
        .enumerate()
        .map(|(at, trace)| {
            let documents = trace["documents"]
                .as_array()
                .ok_or_else(|| SavedError::Shape(format!("trace {at} has no \"documents\" list")))?
                .iter()
                .map(|doc| Document::from_value(doc.clone()))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Trace::from_documents(
                trace["id"].as_str().unwrap_or_default(),
                documents,
            ))
        })
        .collect()
}

/// `traces` as saved JSON (documents as received).
pub fn traces_to_json(traces: &[Trace]) -> String {
    let list: Vec<Value> = traces
        .iter()
        .map(|trace| {
            serde_json::json!({
                "id": trace.id,
                "documents": trace.documents.iter().map(|d| d.raw.clone()).collect::<Vec<_>>(),
            })
        })
        .collect();
    Value::Array(list).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_names_bad_shapes() {
        let text = r#"[{"id": "1-6a0f0000-0123456789abcdef01230000",
                        "documents": [{"name": "a", "id": "a000000000000001", "start_time": 1.0}]}]"#;
        let traces = traces_from_json(text).unwrap();
        assert_eq!(traces[0].documents[0].name, "a");
        assert_eq!(
            traces_from_json(&traces_to_json(&traces)).unwrap()[0].id,
            traces[0].id
        );
        assert!(matches!(traces_from_json("{}"), Err(SavedError::Shape(_))));
        assert!(matches!(
            traces_from_json(r#"[{"documents": [1]}]"#),
            Err(SavedError::Document(_))
        ));
    }
}
