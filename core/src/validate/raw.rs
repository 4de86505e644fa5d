//! The fast path of validation: a document checked on its own bytes.
//!
//! Almost every document the filter or an SDK sends needs no mending. For those only the
//! fields validation reads are parsed — typed, borrowed from the request body, every
//! other field skipped — and the document is sent as the bytes it came as (one copy),
//! its trace id rewritten in place when a foreign id is resolved. Whatever the fast path
//! does not vouch for goes to the tree path ([`super::validate_document`]), which gives
//! the precise error or mends: a structural fault, a name, annotation or HTTP string to
//! mend, a document larger than X-Ray's limit as written or spread over several lines,
//! duplicate keys, nesting deeper than [`MAX_DEPTH`].

use std::ops::Range;

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::{DocumentTrace, parse_trace_id};
use crate::ids::SpanId;
use crate::limits::{
    MAX_ANNOTATION_VALUE_CHARS, MAX_DOCUMENT_BYTES, MAX_HTTP_FIELD_CHARS, is_valid_annotation_key,
    is_valid_name,
};

/// Deepest subsegment nesting the fast path follows.
pub const MAX_DEPTH: usize = 32;

/// What the fast path learnt about a document it vouches for.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// The document's trace.
    pub trace: DocumentTrace,
    /// Where the `trace_id` value lies in the text, quotes included.
    pub trace_id: Range<usize>,
    /// Where the `id` value lies in the text, without its quotes.
    pub id: Range<usize>,
    /// `start_time`, epoch seconds.
    pub start_time: f64,
}

/// Checks `text` (one JSON document); `None` when the tree path must decide.
pub fn check(text: &str) -> Option<Checked> {
    // Both are what the tree path would change: a compact text over the limit is
    // refused there, a document spread over lines becomes one line.
    if text.len() > MAX_DOCUMENT_BYTES || text.as_bytes().contains(&b'\n') {
        return None;
    }
    let fields: Fields<'_> = serde_json::from_str(text).ok()?;
    let trace_raw = fields.trace_id?;
    let trace = parse_trace_id(&string(trace_raw)?).ok()?;
    if let Some(kind) = fields.kind
        && (string(kind)? != "subsegment" || fields.parent_id.is_none())
    {
        return None;
    }
    let start_time = check_body(&fields, 0)?;
    let id_raw = fields.id?;
    // A 16-hex id written without escapes: its characters are its bytes.
    let id = within(text, id_raw)?;
    let id = (id.len() == 18).then(|| id.start + 1..id.end - 1)?;
    Some(Checked {
        trace,
        trace_id: within(text, trace_raw)?,
        id,
        start_time,
    })
}

/// The fields of a segment or subsegment that validation reads; every other one is
/// skipped without being built.
#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    trace_id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    name: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    parent_id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present", rename = "type")]
    kind: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    start_time: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    end_time: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    in_progress: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    http: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    annotations: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    subsegments: Option<&'a RawValue>,
}

/// `http.request`'s string fields, which the tree path truncates.
#[derive(Deserialize)]
struct RequestFields<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    method: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    url: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    user_agent: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    client_ip: Option<&'a RawValue>,
}

/// `http`'s `request`.
#[derive(Deserialize)]
struct HttpFields<'a> {
    #[serde(borrow, default)]
    request: Option<&'a RawValue>,
}

/// A field that is present, whatever its value (`null` included, which the tree path
/// refuses where it wants a string or a number).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue>::deserialize(deserializer).map(Some)
}

/// What segments and subsegments share; `start_time` when the body needs nothing.
fn check_body(fields: &Fields<'_>, depth: usize) -> Option<f64> {
    if !is_valid_name(&string(fields.name?)?) {
        return None;
    }
    SpanId::from_hex(&string(fields.id?)?).ok()?;
    if let Some(parent) = fields.parent_id {
        SpanId::from_hex(&string(parent)?).ok()?;
    }
    let start = number(fields.start_time?)?;
    if start <= 0.0 {
        return None;
    }
    match fields.end_time {
        Some(end) if number(end)? >= start => {}
        Some(_) => return None,
        None if fields.in_progress.map(RawValue::get) == Some("true") => {}
        None => return None,
    }
    if let Some(http) = fields.http
        && !http_is_clean(http)?
    {
        return None;
    }
    if let Some(annotations) = fields.annotations {
        let clean: CleanAnnotations = serde_json::from_str(annotations.get()).ok()?;
        if !clean.0 {
            return None;
        }
    }
    if let Some(subsegments) = fields.subsegments {
        if depth >= MAX_DEPTH {
            return None;
        }
        let items: Vec<&RawValue> = serde_json::from_str(subsegments.get()).ok()?;
        for item in items {
            let sub: Fields<'_> = serde_json::from_str(item.get()).ok()?;
            check_body(&sub, depth + 1)?;
        }
    }
    Some(start)
}

/// Whether `http.request`'s strings are within X-Ray's limit; `None` when `http` is not
/// in the shape the tree path reads (it decides then).
fn http_is_clean(http: &RawValue) -> Option<bool> {
    let http: HttpFields<'_> = serde_json::from_str(http.get()).ok()?;
    let Some(request) = http.request else {
        return Some(true);
    };
    let request: RequestFields<'_> = serde_json::from_str(request.get()).ok()?;
    let fields = [
        request.method,
        request.url,
        request.user_agent,
        request.client_ip,
    ];
    Some(fields.into_iter().flatten().all(|raw| {
        let text = raw.get();
        // The tree path leaves anything but strings alone; an escape only makes the text
        // longer than its characters, so a short text is a short string.
        !text.starts_with('"')
            || text.len() <= MAX_HTTP_FIELD_CHARS + 2
            || string(raw).is_some_and(|s| s.chars().count() <= MAX_HTTP_FIELD_CHARS)
    }))
}

/// Whether an `annotations` object needs no mending: legal keys, and values that are
/// numbers, booleans or short strings. Not an object: an error (the tree path reports it).
struct CleanAnnotations(bool);

impl<'de> Deserialize<'de> for CleanAnnotations {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(CleanAnnotationsVisitor)
    }
}

/// Visits an `annotations` object entry by entry, building nothing.
struct CleanAnnotationsVisitor;

impl<'de> Visitor<'de> for CleanAnnotationsVisitor {
    type Value = CleanAnnotations;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an annotations object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CleanAnnotations, A::Error> {
        let mut clean = true;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if !clean {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let value: &'de RawValue = map.next_value()?;
            clean = is_valid_annotation_key(&key) && annotation_value_is_clean(value);
        }
        Ok(CleanAnnotations(clean))
    }
}

/// A number, a boolean, or a string of at most [`MAX_ANNOTATION_VALUE_CHARS`].
fn annotation_value_is_clean(value: &RawValue) -> bool {
    let text = value.get();
    match text.as_bytes().first() {
        Some(b't' | b'f' | b'-' | b'0'..=b'9') => true,
        Some(b'"') => {
            text.len() <= MAX_ANNOTATION_VALUE_CHARS + 2
                || string(value).is_some_and(|s| s.chars().count() <= MAX_ANNOTATION_VALUE_CHARS)
        }
        _ => false,
    }
}

/// A JSON string's value, borrowed when it has no escapes.
fn string(raw: &RawValue) -> Option<std::borrow::Cow<'_, str>> {
    let text = raw.get();
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    if inner.as_bytes().contains(&b'\\') {
        serde_json::from_str::<String>(text)
            .ok()
            .map(std::borrow::Cow::Owned)
    } else {
        Some(std::borrow::Cow::Borrowed(inner))
    }
}

/// A JSON number's value.
fn number(raw: &RawValue) -> Option<f64> {
    let text = raw.get();
    matches!(text.as_bytes().first(), Some(b'-' | b'0'..=b'9'))
        .then(|| serde_json::from_str::<f64>(text).ok())
        .flatten()
}

/// Where `part` (borrowed from `text`) lies in `text`.
fn within(text: &str, part: &RawValue) -> Option<Range<usize>> {
    let part = part.get();
    let start = (part.as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
    let range = start..start.checked_add(part.len())?;
    (text.get(range.clone())?.as_ptr() == part.as_ptr()).then_some(range)
}
