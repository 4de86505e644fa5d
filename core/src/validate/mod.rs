//! Validation of segment documents, as the relay receives them and as the
//! tests read them back.
//!
//! Structural faults (missing or malformed ids, times, a `type` other than
//! `subsegment`) reject the document with an error that names the field.
//! What X-Ray would reject but can be mended without losing meaning is mended:
//! names are sanitised and truncated, annotation keys made legal, HTTP strings
//! truncated. The serialised result must fit in [`MAX_DOCUMENT_BYTES`].
//!
//! Two ways in: [`validate_json`] takes a document's text, as the relay receives it, and
//! keeps that text when nothing needs mending ([`raw`], the fast path: only the checked
//! fields are parsed); [`validate_document`] takes a parsed tree and serialises it when
//! sent. Both give the same verdict and the same error for the same document.

use std::ops::Range;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

pub mod nesting;
pub mod raw;

use crate::ids::{SpanId, TraceId, XrayTraceId};
use crate::limits::{
    MAX_ANNOTATION_VALUE_CHARS, MAX_DOCUMENT_BYTES, MAX_HTTP_FIELD_CHARS, MAX_NESTING_DEPTH,
    is_valid_annotation_key, sanitize_annotation_key, sanitize_name, truncate_chars,
};

/// Why a document was rejected. The message names the field and what to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DocumentError {
    /// The document is not a JSON object.
    #[error("document is not a JSON object")]
    NotAnObject,
    /// A required field is missing.
    #[error("missing required field `{0}`")]
    Missing(&'static str),
    /// A field has the wrong JSON type.
    #[error("field `{field}` must be {expected}")]
    WrongType {
        /// The field's path.
        field: String,
        /// The JSON type it must have.
        expected: &'static str,
    },
    /// `trace_id` is neither an X-Ray id nor a 16/32-hex raw id.
    #[error(
        "field `trace_id` is not an X-Ray trace id (1-xxxxxxxx-xxxxxxxxxxxxxxxxxxxxxxxx) or 32 hex digits: {0:?}"
    )]
    TraceId(String),
    /// An id is not 16 hex digits.
    #[error("field `{field}` must be 16 hex digits, got {value:?}")]
    SpanId {
        /// The field's path.
        field: String,
        /// The value seen.
        value: String,
    },
    /// `end_time` lies before `start_time`, or a time is not positive.
    #[error("field `{field}` is invalid: {reason}")]
    Time {
        /// The field's path.
        field: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// `type` is present but not `subsegment`, or a subsegment lacks `parent_id`.
    #[error("field `type` must be \"subsegment\" (with a `parent_id`) when present")]
    Type,
    /// The document is not JSON.
    #[error("document is not valid JSON: {0}")]
    NotJson(String),
    /// The document nests objects and arrays deeper than [`MAX_NESTING_DEPTH`].
    #[error(
        "document nests objects and arrays more than {MAX_NESTING_DEPTH} levels deep (the relay's nesting limit); flatten its metadata or subsegments"
    )]
    TooDeep,
    /// The document is larger than X-Ray accepts.
    #[error("document is {bytes} bytes, more than X-Ray's limit of {MAX_DOCUMENT_BYTES}")]
    TooLarge {
        /// Its size.
        bytes: usize,
    },
}

/// The trace a document belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentTrace {
    /// A complete X-Ray trace id.
    Xray(XrayTraceId),
    /// A raw id without a usable epoch, to be resolved through the epoch cache.
    Foreign(TraceId),
}

/// A document that passed validation, ready to be sent once its trace id is an X-Ray id.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidDocument {
    /// The document.
    body: Body,
    /// Its trace.
    trace: DocumentTrace,
    /// Its `start_time` in epoch seconds.
    start_time: f64,
}

/// A valid document's JSON.
#[derive(Debug, Clone, PartialEq)]
enum Body {
    /// The text as received; only the trace id is ever rewritten, in place.
    Text {
        /// The JSON text.
        json: String,
        /// Where the `trace_id` value (with its quotes) lies in `json`.
        trace_id: Range<usize>,
        /// Where the `id` value (without quotes) lies in `json`.
        id: Range<usize>,
    },
    /// A mended document, serialised when it is sent.
    Tree(Map<String, Value>),
}

impl ValidDocument {
    /// The document's trace.
    pub fn trace(&self) -> &DocumentTrace {
        &self.trace
    }

    /// `start_time`, epoch seconds.
    pub fn start_time(&self) -> f64 {
        self.start_time
    }

    /// `id`.
    pub fn id(&self) -> &str {
        match &self.body {
            Body::Text { json, id, .. } => json.get(id.clone()).unwrap_or_default(),
            Body::Tree(json) => json.get("id").and_then(Value::as_str).unwrap_or_default(),
        }
    }

    /// Whether the document goes out as the text it came as (no mending was needed).
    pub fn is_unchanged_text(&self) -> bool {
        matches!(self.body, Body::Text { .. })
    }

    /// Replaces the trace id, after the relay resolved a foreign id's epoch: in place in
    /// the text, or in the tree.
    pub fn set_trace_id(&mut self, new: &XrayTraceId) {
        self.trace = DocumentTrace::Xray(*new);
        match &mut self.body {
            Body::Text { json, trace_id, id } => {
                let quoted = format!("\"{new}\"");
                json.replace_range(trace_id.clone(), &quoted);
                let old_len = trace_id.len();
                if id.start > trace_id.start {
                    // The id follows the trace id: it moved with the new length.
                    let shift = |at: usize| (at + quoted.len()).saturating_sub(old_len);
                    *id = shift(id.start)..shift(id.end);
                }
                *trace_id = trace_id.start..trace_id.start + quoted.len();
            }
            Body::Tree(json) => {
                json.insert("trace_id".to_owned(), Value::String(new.to_string()));
            }
        }
    }

    /// The JSON text to send to X-Ray, consuming the document (no copy of it is made).
    pub fn into_json_string(self) -> String {
        match self.body {
            Body::Text { json, .. } => json,
            Body::Tree(json) => Value::Object(json).to_string(),
        }
    }
}

/// Parses a document's `trace_id`.
///
/// # Errors
/// [`DocumentError::TraceId`] when it is neither form.
pub fn parse_trace_id(text: &str) -> Result<DocumentTrace, DocumentError> {
    if let Ok(xray) = text.parse::<XrayTraceId>() {
        return Ok(DocumentTrace::Xray(xray));
    }
    TraceId::from_hex(text)
        .map(DocumentTrace::Foreign)
        .map_err(|_| DocumentError::TraceId(truncate_chars(text, 80).to_owned()))
}

/// Validates one document given as its JSON text (an element of a request's array),
/// keeping the text when nothing needs mending; otherwise as [`validate_document`].
///
/// # Errors
/// The first [`DocumentError`] found: [`DocumentError::TooDeep`] before any other, so
/// that no parse follows a document deeper than [`MAX_NESTING_DEPTH`];
/// [`DocumentError::NotJson`] for text the tree parser refuses.
pub fn validate_json(document: &RawValue) -> Result<ValidDocument, DocumentError> {
    let text = document.get();
    if nesting::text_nests_deeper_than(text, MAX_NESTING_DEPTH) {
        return Err(DocumentError::TooDeep);
    }
    if let Some(checked) = raw::check(text) {
        return Ok(ValidDocument {
            body: Body::Text {
                json: text.to_owned(),
                trace_id: checked.trace_id,
                id: checked.id,
            },
            trace: checked.trace,
            start_time: checked.start_time,
        });
    }
    let value: Value =
        serde_json::from_str(text).map_err(|e| DocumentError::NotJson(e.to_string()))?;
    validate_document(value)
}

/// Validates and mends one document.
///
/// # Errors
/// The first [`DocumentError`] found ([`DocumentError::TooDeep`] before any other, as
/// [`validate_json`]).
pub fn validate_document(value: Value) -> Result<ValidDocument, DocumentError> {
    if nesting::value_nests_deeper_than(&value, MAX_NESTING_DEPTH) {
        return Err(DocumentError::TooDeep);
    }
    let Value::Object(mut json) = value else {
        return Err(DocumentError::NotAnObject);
    };
    let trace_text = required_str(&json, "trace_id", "trace_id")?;
    let trace = parse_trace_id(trace_text)?;
    if let Some(kind) = json.get("type")
        && (kind.as_str() != Some("subsegment") || !json.contains_key("parent_id"))
    {
        return Err(DocumentError::Type);
    }
    let start_time = check_body(&mut json, "")?;
    let bytes = serialized_len(&json);
    if bytes > MAX_DOCUMENT_BYTES {
        return Err(DocumentError::TooLarge { bytes });
    }
    Ok(ValidDocument {
        body: Body::Tree(json),
        trace,
        start_time,
    })
}

/// The length of `json`'s compact serialisation, counted without building the text.
pub fn serialized_len(json: &Map<String, Value>) -> usize {
    /// Counts the bytes written to it and keeps none.
    struct ByteCounter(usize);
    impl std::io::Write for ByteCounter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = ByteCounter(0);
    // Writing to the counter cannot fail, and a map of JSON values always serialises.
    match serde_json::to_writer(&mut counter, json) {
        Ok(()) => counter.0,
        Err(_) => usize::MAX,
    }
}

/// Checks and mends what segments and embedded subsegments share; returns `start_time`.
fn check_body(json: &mut Map<String, Value>, path: &str) -> Result<f64, DocumentError> {
    let name = required_str(json, "name", "name")?;
    let clean = sanitize_name(name);
    if clean != name {
        json.insert("name".to_owned(), Value::String(clean));
    }
    let id = required_str(json, "id", "id")?;
    check_span_id(id, path, "id")?;
    if let Some(parent) = json.get("parent_id") {
        let parent = parent
            .as_str()
            .ok_or_else(|| wrong_type(path, "parent_id", "a string"))?;
        check_span_id(parent, path, "parent_id")?;
    }
    let start = json
        .get("start_time")
        .ok_or(DocumentError::Missing("start_time"))?
        .as_f64()
        .ok_or_else(|| wrong_type(path, "start_time", "a number (epoch seconds)"))?;
    if start <= 0.0 {
        return Err(DocumentError::Time {
            field: format!("{path}start_time"),
            reason: "must be positive epoch seconds",
        });
    }
    match json.get("end_time") {
        Some(end) => {
            let end = end
                .as_f64()
                .ok_or_else(|| wrong_type(path, "end_time", "a number (epoch seconds)"))?;
            if end < start {
                return Err(DocumentError::Time {
                    field: format!("{path}end_time"),
                    reason: "lies before start_time",
                });
            }
        }
        None if json.get("in_progress") == Some(&Value::Bool(true)) => {}
        None => return Err(DocumentError::Missing("end_time (or in_progress: true)")),
    }
    if let Some(Value::Object(http)) = json.get_mut("http")
        && let Some(Value::Object(request)) = http.get_mut("request")
    {
        for field in ["method", "url", "user_agent", "client_ip"] {
            if let Some(Value::String(text)) = request.get_mut(field) {
                let cut = truncate_chars(text, MAX_HTTP_FIELD_CHARS).len();
                text.truncate(cut);
            }
        }
    }
    if let Some(annotations) = json.get_mut("annotations") {
        let Value::Object(map) = annotations else {
            return Err(wrong_type(path, "annotations", "an object"));
        };
        mend_annotations(map);
    }
    if let Some(subsegments) = json.get_mut("subsegments") {
        let Value::Array(items) = subsegments else {
            return Err(wrong_type(path, "subsegments", "an array"));
        };
        for (index, item) in items.iter_mut().enumerate() {
            let Value::Object(sub) = item else {
                return Err(wrong_type(
                    path,
                    &format!("subsegments[{index}]"),
                    "an object",
                ));
            };
            check_body(sub, &format!("{path}subsegments[{index}]."))?;
        }
    }
    Ok(start)
}

/// Makes keys legal, truncates strings, drops values X-Ray cannot index.
fn mend_annotations(map: &mut Map<String, Value>) {
    let needs_work = map.iter().any(|(key, value)| {
        !is_valid_annotation_key(key)
            || !matches!(value, Value::String(s) if s.chars().count() <= MAX_ANNOTATION_VALUE_CHARS)
                && !matches!(value, Value::Bool(_) | Value::Number(_))
    });
    if !needs_work {
        return;
    }
    let old = std::mem::take(map);
    for (key, value) in old {
        let value = match value {
            Value::String(s) => {
                Value::String(truncate_chars(&s, MAX_ANNOTATION_VALUE_CHARS).to_owned())
            }
            Value::Bool(_) | Value::Number(_) => value,
            _ => continue,
        };
        map.insert(sanitize_annotation_key(&key), value);
    }
}

fn required_str<'a>(
    json: &'a Map<String, Value>,
    key: &'static str,
    field: &str,
) -> Result<&'a str, DocumentError> {
    json.get(key)
        .ok_or(DocumentError::Missing(key))?
        .as_str()
        .ok_or_else(|| DocumentError::WrongType {
            field: field.to_owned(),
            expected: "a string",
        })
}

/// Checks that `text`, the value of `{path}{field}`, is a span id. The field's path is
/// only built for the error.
fn check_span_id(text: &str, path: &str, field: &str) -> Result<(), DocumentError> {
    SpanId::from_hex(text)
        .map(|_| ())
        .map_err(|_| DocumentError::SpanId {
            field: format!("{path}{field}"),
            value: truncate_chars(text, 40).to_owned(),
        })
}

fn wrong_type(path: &str, field: &str, expected: &'static str) -> DocumentError {
    DocumentError::WrongType {
        field: format!("{path}{field}"),
        expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A tree-path document's map.
    fn tree(doc: &ValidDocument) -> &Map<String, Value> {
        match &doc.body {
            Body::Tree(json) => json,
            Body::Text { .. } => panic!("not a tree"),
        }
    }

    fn good() -> Value {
        json!({
            "name": "reviews",
            "id": "70de5b6f19ff9a0a",
            "trace_id": "1-581cf771-a006649127e371903a2de979",
            "start_time": 1.478293361271e9,
            "end_time": 1.478293361449e9
        })
    }

    #[test]
    fn accepts_a_minimal_segment() {
        let doc = validate_document(good()).unwrap();
        assert!(matches!(doc.trace(), DocumentTrace::Xray(_)));
        assert_eq!(doc.id(), "70de5b6f19ff9a0a");
    }

    #[test]
    fn foreign_ids_are_accepted_and_resolvable() {
        let mut v = good();
        v["trace_id"] = json!("0000000000000000463ac35c9f6413ad");
        let mut doc = validate_document(v).unwrap();
        let DocumentTrace::Foreign(raw) = *doc.trace() else {
            panic!()
        };
        doc.set_trace_id(&raw.with_epoch(0x581c_f771));
        assert_eq!(sent(doc)["trace_id"], "1-581cf771-00000000463ac35c9f6413ad");
    }

    #[test]
    fn rejects_structural_faults_naming_the_field() {
        type Mutation = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("id");
                }),
                "missing required field `id`",
            ),
            (
                Box::new(|v| v["id"] = json!("xyz")),
                "field `id` must be 16 hex digits",
            ),
            (
                Box::new(|v| v["trace_id"] = json!("1-abc")),
                "field `trace_id`",
            ),
            (Box::new(|v| v["end_time"] = json!(1.0)), "end_time"),
            (
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("end_time");
                }),
                "in_progress",
            ),
            (
                Box::new(|v| v["type"] = json!("subsegment")),
                "field `type`",
            ),
            (
                Box::new(|v| v["start_time"] = json!("yesterday")),
                "start_time",
            ),
            (
                Box::new(|v| {
                    v["subsegments"] =
                        json!([{"name": "x", "id": "1", "start_time": 1.0, "end_time": 2.0}])
                }),
                "subsegments[0].id",
            ),
            (
                Box::new(|v| v["metadata"] = json!({"big": "x".repeat(70_000)})),
                "limit of 65536",
            ),
        ];
        for (mutate, expected) in cases {
            let mut v = good();
            mutate(&mut v);
            let err = validate_document(v).unwrap_err().to_string();
            assert!(err.contains(expected), "{err} should contain {expected}");
        }
        assert_eq!(
            validate_document(json!([1])).unwrap_err(),
            DocumentError::NotAnObject
        );
    }

    #[test]
    fn mends_names_annotations_and_http_strings() {
        let mut v = good();
        v["name"] = json!("bad|name");
        v["annotations"] = json!({"a-b": "x", "ok": 1, "nested": {"no": 1}});
        v["http"] = json!({"request": {"url": "u".repeat(300)}});
        let json = sent(validate_document(v).unwrap());
        assert_eq!(json["name"], "badname");
        assert_eq!(json["annotations"], json!({"a_b": "x", "ok": 1}));
        assert_eq!(
            json["http"]["request"]["url"].as_str().unwrap().len(),
            MAX_HTTP_FIELD_CHARS
        );
    }

    /// The size check counts exactly the bytes sent, without building the text: a
    /// document of exactly the limit passes, one byte more is refused.
    #[test]
    fn size_limit_counts_the_sent_bytes() {
        let mut v = good();
        v["metadata"] = json!({"text": "é\"\\\n\u{1}", "n": [1.5, -2, 1e300]});
        let doc = validate_document(v).unwrap();
        let counted = serialized_len(tree(&doc));
        assert_eq!(counted, doc.into_json_string().len());

        let base = serialized_len(tree(&validate_document(good()).unwrap()));
        let padding = r#","metadata":{"p":""}"#.len();
        let mut exact = good();
        exact["metadata"] = json!({"p": "x".repeat(MAX_DOCUMENT_BYTES - base - padding)});
        let doc = validate_document(exact.clone()).unwrap();
        assert_eq!(serialized_len(tree(&doc)), MAX_DOCUMENT_BYTES);
        exact["metadata"]["p"] = json!("x".repeat(MAX_DOCUMENT_BYTES - base - padding + 1));
        assert_eq!(
            validate_document(exact).unwrap_err(),
            DocumentError::TooLarge {
                bytes: MAX_DOCUMENT_BYTES + 1
            }
        );
    }

    /// The document of `text` through the fast path (must be taken) and the tree path.
    fn both_paths(
        text: &str,
    ) -> (
        Result<ValidDocument, DocumentError>,
        Result<ValidDocument, DocumentError>,
    ) {
        let raw: Box<RawValue> = serde_json::from_str(text).unwrap();
        let value: Value = serde_json::from_str(text).unwrap();
        (validate_json(&raw), validate_document(value))
    }

    /// `levels` objects nested in one another (`{"a":{"a":1}}` is 2).
    fn nested(levels: usize) -> Value {
        (0..levels).fold(json!(1), |inner, _| json!({ "a": inner }))
    }

    /// `levels` arrays nested in one another, as text.
    fn nested_arrays(levels: usize) -> String {
        format!("{}{}", "[".repeat(levels), "]".repeat(levels))
    }

    /// A document nested far deeper than any parser follows is refused for its depth,
    /// on its text, without recursion (the tree path could not even parse it).
    #[test]
    fn a_document_nested_ten_thousand_deep_is_too_deep() {
        let mut text = good().to_string();
        text.truncate(text.len() - 1);
        text.push_str(&format!(
            r#","metadata":{}1{}}}"#,
            r#"{"a":"#.repeat(10_000),
            "}".repeat(10_000)
        ));
        let raw: Box<RawValue> = serde_json::from_str(&text).unwrap();
        assert_eq!(validate_json(&raw).unwrap_err(), DocumentError::TooDeep);
        assert!(serde_json::from_str::<Value>(&text).is_err());
        let raw: Box<RawValue> = serde_json::from_str(&nested_arrays(100_000)).unwrap();
        assert_eq!(validate_json(&raw).unwrap_err(), DocumentError::TooDeep);
        assert!(
            DocumentError::TooDeep
                .to_string()
                .contains(&format!("more than {MAX_NESTING_DEPTH} levels deep"))
        );
    }

    /// The JSON a valid document sends, parsed.
    fn sent(doc: ValidDocument) -> Value {
        serde_json::from_str(&doc.into_json_string()).unwrap()
    }

    /// Both ways in give the same verdict, the same error and the same document, for
    /// documents the fast path keeps and for those it hands to the tree path.
    #[test]
    fn text_and_tree_paths_agree() {
        let base = good();
        let with = |patch: Value| {
            let mut v = base.clone();
            for (k, val) in patch.as_object().unwrap() {
                v[k] = val.clone();
            }
            v.to_string()
        };
        let sub = json!({"name": "ratings", "id": "70de5b6f19ff9a0b", "start_time": 1.478293361272e9, "end_time": 1.478293361300e9, "namespace": "remote"});
        let cases: Vec<(String, bool)> = vec![
            // (document, kept as text)
            (base.to_string(), true),
            (with(json!({"trace_id": "0000000000000000463ac35c9f6413ad"})), true),
            (with(json!({"subsegments": [sub.clone(), sub.clone()]})), true),
            (with(json!({"type": "subsegment", "parent_id": "70de5b6f19ff9a0c"})), true),
            (with(json!({"in_progress": true, "end_time": null})), false),
            (r#"{"name":"a","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1.5,"in_progress":true}"#.to_owned(), true),
            (with(json!({"http": {"request": {"url": "u".repeat(250), "method": 5}}, "annotations": {"a_b": "x", "n": 1, "t": true}})), true),
            (with(json!({"annotations": {"k": "v".repeat(1000)}, "name": "é ünïcode"})), true),
            // Mended: only the tree path changes documents.
            (with(json!({"name": "bad|name"})), false),
            (with(json!({"http": {"request": {"url": "u".repeat(251)}}})), false),
            (with(json!({"annotations": {"a-b": "x"}})), false),
            (with(json!({"annotations": {"k": null}})), false),
            (with(json!({"annotations": {"k": "v".repeat(1001)}})), false),
            (with(json!({"subsegments": [{"name": "b|c", "id": "70de5b6f19ff9a0b", "start_time": 2.0, "end_time": 3.0}]})), false),
            // Refused, with the tree path's error.
            (with(json!({"id": "xyz"})), false),
            (with(json!({"id": null})), false),
            (with(json!({"parent_id": 7})), false),
            (with(json!({"trace_id": "1-abc"})), false),
            (with(json!({"end_time": 1.0})), false),
            (with(json!({"start_time": -1.0})), false),
            (with(json!({"type": "segment"})), false),
            (with(json!({"type": "subsegment"})), false),
            (with(json!({"annotations": [1]})), false),
            (with(json!({"subsegments": {"a": 1}})), false),
            (with(json!({"subsegments": [1]})), false),
            (with(json!({"subsegments": [{"name": "x", "id": "1", "start_time": 1.0, "end_time": 2.0}]})), false),
            (with(json!({"metadata": {"big": "x".repeat(70_000)}})), false),
            ("[1]".to_owned(), false),
            ("\"text\"".to_owned(), false),
            // At the nesting limit (the document itself is level 1), and one past it.
            (with(json!({"metadata": nested(MAX_NESTING_DEPTH - 1)})), true),
            (with(json!({"metadata": nested(MAX_NESTING_DEPTH)})), false),
            (nested_arrays(MAX_NESTING_DEPTH + 1), false),
        ];
        for (text, kept) in cases {
            let (fast, tree) = both_paths(&text);
            match (fast, tree) {
                (Ok(fast), Ok(tree)) => {
                    assert_eq!(fast.is_unchanged_text(), kept, "{text}");
                    assert_eq!(fast.id(), tree.id(), "{text}");
                    assert_eq!(fast.trace(), tree.trace(), "{text}");
                    assert_eq!(
                        fast.start_time().to_bits(),
                        tree.start_time().to_bits(),
                        "{text}"
                    );
                    assert_eq!(sent(fast), sent(tree), "{text}");
                }
                (Err(fast), Err(tree)) => {
                    assert!(!kept, "{text}");
                    assert_eq!(fast, tree, "{text}");
                }
                (fast, tree) => panic!("the paths disagree on {text}: {fast:?} vs {tree:?}"),
            }
        }
    }

    /// A kept document leaves byte for byte as it came (number forms, escapes, key order),
    /// but for its trace id, rewritten in place; `id` still reads right after the rewrite.
    #[test]
    fn kept_text_is_sent_unchanged_but_for_the_trace_id() {
        let text = r#"{"trace_id":"0000000000000000463ac35c9f6413ad", "name":"re\u0076iews","start_time":1.50e9,"end_time":1500000000.250,"id":"70de5b6f19ff9a0a","metadata":{"z":1,"a":"\u00e9"}}"#;
        let raw: Box<RawValue> = serde_json::from_str(text).unwrap();
        let mut doc = validate_json(&raw).unwrap();
        assert!(doc.is_unchanged_text());
        assert_eq!(doc.id(), "70de5b6f19ff9a0a");
        let DocumentTrace::Foreign(foreign) = *doc.trace() else {
            panic!("{:?}", doc.trace())
        };
        doc.set_trace_id(&foreign.with_epoch(0x581c_f771));
        assert_eq!(doc.id(), "70de5b6f19ff9a0a");
        assert_eq!(
            doc.into_json_string(),
            text.replace(
                "0000000000000000463ac35c9f6413ad",
                "1-581cf771-00000000463ac35c9f6413ad"
            )
        );
    }

    /// A document written over several lines, or larger than the limit as written but not
    /// compact, goes out compact, on one line.
    #[test]
    fn spread_or_padded_documents_go_out_compact() {
        let pretty = serde_json::to_string_pretty(&good()).unwrap();
        let raw: Box<RawValue> = serde_json::from_str(&pretty).unwrap();
        let doc = validate_json(&raw).unwrap();
        assert!(!doc.is_unchanged_text());
        assert_eq!(doc.into_json_string(), good().to_string());

        let mut v = good();
        v["metadata"] = json!({"p": "x".repeat(60_000)});
        let padded = v
            .to_string()
            .replace(",", &format!(",{}", " ".repeat(2_000)));
        assert!(padded.len() > MAX_DOCUMENT_BYTES);
        let raw: Box<RawValue> = serde_json::from_str(&padded).unwrap();
        let doc = validate_json(&raw).unwrap();
        assert_eq!(doc.into_json_string(), v.to_string());
    }
}
