//! One stored segment document as a reader sees it: a segment, an independent subsegment
//! (`"type": "subsegment"`) or a subsegment embedded in another document's `subsegments`,
//! with the fields the trace tree, the service graph and the renderers read.

use serde_json::Value;

/// A document that cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum DocumentParseError {
    /// The text is not JSON.
    #[error("segment document is not JSON ({reason}): {text}")]
    NotJson {
        /// The parser's message.
        reason: String,
        /// The text as received.
        text: String,
    },
    /// The JSON is not an object.
    #[error("segment document is not a JSON object: {0}")]
    NotObject(String),
}

/// Segment or subsegment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A service's segment (the filter's inbound side).
    Segment,
    /// A subsegment: embedded in a segment, or independent (`"type": "subsegment"`).
    Subsegment,
}

/// One segment document or embedded subsegment.
#[derive(Debug, Clone)]
pub struct Document {
    /// The document as received.
    pub raw: Value,
    /// `id` (16 hex digits).
    pub id: String,
    /// `name`.
    pub name: String,
    /// `trace_id` (absent on embedded subsegments).
    pub trace_id: Option<String>,
    /// `parent_id`.
    pub parent_id: Option<String>,
    /// Segment or subsegment.
    pub kind: Kind,
    /// Whether it sits inside another document's `subsegments`.
    pub embedded: bool,
    /// `namespace` (`remote` for calls to other services).
    pub namespace: Option<String>,
    /// `start_time` (epoch seconds).
    pub start_time: Option<f64>,
    /// `end_time` (epoch seconds).
    pub end_time: Option<f64>,
    /// `in_progress`.
    pub in_progress: bool,
    /// `http.response.status`.
    pub http_status: Option<u64>,
    /// `error` (4xx).
    pub error: bool,
    /// `fault` (5xx).
    pub fault: bool,
    /// `throttle` (429).
    pub throttle: bool,
    /// Embedded `subsegments`.
    pub subsegments: Vec<Document>,
}

impl Document {
    /// Parses one segment document (JSON text).
    ///
    /// # Errors
    /// [`DocumentParseError`] when it is not a JSON object.
    pub fn parse(text: &str) -> Result<Self, DocumentParseError> {
        let raw: Value = serde_json::from_str(text).map_err(|e| DocumentParseError::NotJson {
            reason: e.to_string(),
            text: text.to_owned(),
        })?;
        Self::from_value(raw)
    }

    /// Reads one top-level document that is already JSON.
    ///
    /// # Errors
    /// [`DocumentParseError::NotObject`] when it is not a JSON object.
    pub fn from_value(raw: Value) -> Result<Self, DocumentParseError> {
        Self::read(raw, false)
    }

    fn read(raw: Value, embedded: bool) -> Result<Self, DocumentParseError> {
        if !raw.is_object() {
            return Err(DocumentParseError::NotObject(raw.to_string()));
        }
        let text = |key: &str| raw.get(key).and_then(Value::as_str).map(str::to_owned);
        let flag = |key: &str| raw.get(key).and_then(Value::as_bool).unwrap_or(false);
        let kind = if embedded || text("type").as_deref() == Some("subsegment") {
            Kind::Subsegment
        } else {
            Kind::Segment
        };
        let subsegments = raw
            .get("subsegments")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|sub| Self::read(sub.clone(), true))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            id: text("id").unwrap_or_default(),
            name: text("name").unwrap_or_default(),
            trace_id: text("trace_id"),
            parent_id: text("parent_id"),
            kind,
            embedded,
            namespace: text("namespace"),
            start_time: raw.get("start_time").and_then(Value::as_f64),
            end_time: raw.get("end_time").and_then(Value::as_f64),
            in_progress: flag("in_progress"),
            http_status: raw.pointer("/http/response/status").and_then(Value::as_u64),
            error: flag("error"),
            fault: flag("fault"),
            throttle: flag("throttle"),
            subsegments,
            raw,
        })
    }

    /// Whether this is a subsegment for a call to another service (`namespace: remote`).
    pub fn is_remote(&self) -> bool {
        self.kind == Kind::Subsegment && self.namespace.as_deref() == Some("remote")
    }

    /// `end_time - start_time` in milliseconds.
    pub fn duration_ms(&self) -> Option<f64> {
        Some((self.end_time? - self.start_time?) * 1000.0)
    }

    /// The `annotations` object as `(key, value as text)` pairs, in key order.
    pub fn annotations(&self) -> Vec<(String, String)> {
        let Some(map) = self.raw.get("annotations").and_then(Value::as_object) else {
            return Vec::new();
        };
        let mut pairs: Vec<(String, String)> = map
            .iter()
            .map(|(key, value)| {
                let shown = match value {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                (key.clone(), shown)
            })
            .collect();
        pairs.sort();
        pairs
    }

    /// One line: name, kind, duration, status, flags, id.
    pub fn summary_line(&self) -> String {
        let kind = match (self.kind, self.is_remote(), self.embedded) {
            (Kind::Segment, ..) => "segment",
            (Kind::Subsegment, true, _) => "subsegment (remote)",
            (Kind::Subsegment, false, true) => "subsegment (embedded)",
            (Kind::Subsegment, false, false) => "subsegment",
        };
        let duration = self
            .duration_ms()
            .map_or_else(|| "?".to_owned(), |ms| format!("{ms:.1} ms"));
        let status = self
            .http_status
            .map_or_else(|| "-".to_owned(), |s| s.to_string());
        let mut flags = String::new();
        for (set, name) in [
            (self.error, " error"),
            (self.throttle, " throttle"),
            (self.fault, " fault"),
            (self.in_progress, " in_progress"),
        ] {
            if set {
                flags.push_str(name);
            }
        }
        format!(
            "{} [{kind}] {duration} http {status}{flags} id={}",
            self.name, self.id
        )
    }
}

/// Whether `id` is an X-Ray trace id `1-<8 hex>-<24 hex>` (lowercase).
pub fn is_xray_trace_id(id: &str) -> bool {
    let parts: Vec<&str> = id.split('-').collect();
    matches!(parts.as_slice(), ["1", epoch, rest] if is_hex(epoch, 8) && is_hex(rest, 24))
}

/// Whether `id` is a segment id: 16 lowercase hex digits.
pub fn is_span_id(id: &str) -> bool {
    is_hex(id, 16)
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn id_formats() {
        assert!(is_xray_trace_id("1-6563a1b2-0123456789abcdef01234567"));
        assert!(!is_xray_trace_id("1-6563a1b2-0123456789abcdef0123456"));
        assert!(!is_xray_trace_id("0123456789abcdef0123456789abcdef"));
        assert!(is_span_id("53995c3f42cd8ad8"));
        assert!(!is_span_id("53995C3F42CD8AD8"));
    }

    #[test]
    fn reads_fields_flags_and_annotations() {
        let doc = Document::from_value(json!({
            "name": "ratings", "id": "c000000000000001", "start_time": 1.0, "end_time": 1.25,
            "fault": true, "http": {"response": {"status": 503}},
            "annotations": {"b": 2, "a": "x"},
            "subsegments": [{"name": "db", "id": "c000000000000002", "start_time": 1.1}],
        }))
        .unwrap();
        assert_eq!(doc.kind, Kind::Segment);
        assert_eq!(doc.duration_ms(), Some(250.0));
        assert_eq!(doc.http_status, Some(503));
        assert!(doc.fault && !doc.error);
        assert_eq!(
            doc.annotations(),
            vec![("a".into(), "x".into()), ("b".into(), "2".into())]
        );
        assert!(doc.subsegments[0].embedded);
        assert_eq!(doc.subsegments[0].kind, Kind::Subsegment);
        assert!(doc.summary_line().contains("250.0 ms http 503 fault"));
    }

    #[test]
    fn rejects_what_is_not_an_object() {
        assert!(matches!(
            Document::parse("[1]"),
            Err(DocumentParseError::NotObject(_))
        ));
        assert!(matches!(
            Document::parse("{nope"),
            Err(DocumentParseError::NotJson { .. })
        ));
    }
}
