//! Checks one stored document the way X-Ray would: against AWS's segment document JSON
//! schema (`tests/schema/`, vendored with its license note) and against the validator the
//! relay uses (`meshray_core::validate`), which must accept it unchanged.
//!
//! Segments are checked against the whole schema; independent subsegments (`"type":
//! "subsegment"`) against its `subsegment` definition, which is what X-Ray applies to them.

use std::sync::OnceLock;

use jsonschema::{Draft, Validator};
use meshray_core::validate::validate_document;
use serde_json::{Value, json};

/// AWS's schema, as vendored.
const SCHEMA_TEXT: &str = include_str!("../schema/xray-segmentdocument-schema-v1.0.0.json");

/// The compiled validators: (segment, independent subsegment), or why they could not be built.
static VALIDATORS: OnceLock<Result<(Validator, Validator), String>> = OnceLock::new();

fn validators() -> &'static Result<(Validator, Validator), String> {
    VALIDATORS.get_or_init(|| {
        let schema: Value =
            serde_json::from_str(SCHEMA_TEXT).map_err(|e| format!("schema is not JSON: {e}"))?;
        let build = |schema: &Value| {
            jsonschema::options()
                .with_draft(Draft::Draft4)
                .build(schema)
                .map_err(|e| format!("schema does not compile: {e}"))
        };
        let segment = build(&schema)?;
        // Draft 4 ignores keywords beside `$ref`: this is exactly the `subsegment` definition.
        let subsegment = build(&json!({
            "$schema": "http://json-schema.org/draft-04/schema#",
            "definitions": schema["definitions"].clone(),
            "$ref": "#/definitions/subsegment",
        }))?;
        Ok((segment, subsegment))
    })
}

/// Everything wrong with one top-level document, as readable lines (empty when valid).
pub fn document_problems(document: &Value) -> Vec<String> {
    let name = document["name"].as_str().unwrap_or("?");
    let id = document["id"].as_str().unwrap_or("?");
    let mut problems = Vec::new();
    match validators() {
        Ok((segment, subsegment)) => {
            let validator = if document["type"] == "subsegment" {
                subsegment
            } else {
                segment
            };
            for error in validator.iter_errors(document) {
                problems.push(format!(
                    "{name} ({id}) breaks X-Ray's schema at {}: {error}",
                    error.instance_path()
                ));
            }
        }
        Err(e) => problems.push(e.clone()),
    }
    match validate_document(document.clone()) {
        Ok(valid)
            if serde_json::from_str::<Value>(&valid.clone().into_json_string())
                .ok()
                .as_ref()
                != Some(document) =>
        {
            problems.push(format!(
                "{name} ({id}) is not stored as the relay's validator would send it (it was mended)"
            ));
        }
        Ok(_) => {}
        Err(e) => problems.push(format!("{name} ({id}) fails the relay's validator: {e}")),
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment() -> Value {
        json!({
            "name": "productpage",
            "id": "70de5b6f19ff9a0a",
            "trace_id": "1-581cf771-a006649127e371903a2de979",
            "start_time": 1.478293361271e9,
            "end_time": 1.478293361449e9,
            "origin": "AWS::EKS::Container",
            "http": {"request": {"method": "GET", "url": "http://productpage:9080/"}, "response": {"status": 200}},
            "annotations": {"istio_namespace": "default"},
            "metadata": {"k8s": {"namespace": "default"}},
            "subsegments": [{"name": "reviews", "id": "70de5b6f19ff9a0b", "start_time": 1.478293361271e9,
                             "end_time": 1.478293361449e9, "namespace": "remote"}]
        })
    }

    #[test]
    fn accepts_what_the_filter_sends() {
        assert_eq!(document_problems(&segment()), Vec::<String>::new());
        let independent = json!({
            "name": "reviews", "id": "70de5b6f19ff9a0c", "trace_id": "1-581cf771-a006649127e371903a2de979",
            "parent_id": "70de5b6f19ff9a0a", "type": "subsegment", "namespace": "remote",
            "start_time": 1.478293361271e9, "end_time": 1.478293361449e9,
            "http": {"response": {"status": 503}}, "fault": true
        });
        assert_eq!(document_problems(&independent), Vec::<String>::new());
    }

    #[test]
    fn reports_what_xray_would_refuse() {
        let mut bad_key = segment();
        bad_key["annotations"] = json!({"x-user": "a"});
        assert!(
            document_problems(&bad_key)
                .iter()
                .any(|p| p.contains("schema"))
        );

        let mut bad_metadata = segment();
        bad_metadata["metadata"] = json!({"k8s": "not an object"});
        assert!(
            document_problems(&bad_metadata)
                .iter()
                .any(|p| p.contains("schema"))
        );

        let mut long_url = segment();
        long_url["http"]["request"]["url"] = json!("u".repeat(300));
        let problems = document_problems(&long_url);
        assert!(
            problems.iter().any(|p| p.contains("schema")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("mended")),
            "{problems:?}"
        );

        let mut no_trace = segment();
        no_trace.as_object_mut().unwrap().remove("trace_id");
        assert!(
            document_problems(&no_trace)
                .iter()
                .any(|p| p.contains("relay's validator"))
        );
    }
}
