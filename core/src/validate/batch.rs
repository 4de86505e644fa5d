//! Reads a request body — a JSON array of documents — in one pass over each document:
//! where it starts and ends, and the fields validation checks ([`raw::Fields`]), read
//! by the same parse that finds its end.
//!
//! Whatever the pass cannot read (an element that is not an object, or whose checked
//! fields are not in the shape the fast path reads) is kept as its bare text for
//! [`super::validate_text`] to judge; a body that is not a well-formed array is left to
//! the caller's full parse, which gives the precise error. Nothing here recurses deeper
//! than serde_json's own limit, or allocates beyond the list of documents.

use serde_json::value::RawValue;

use super::raw::{self, Fields, Object};

/// One document of a batch: its JSON text, and its checked fields when the reader read
/// them in the same pass.
pub struct DocumentText<'a> {
    /// The document's text, exactly as in the body.
    pub(super) text: &'a str,
    /// Its checked fields, borrowed from `text`.
    pub(super) fields: Option<Fields<'a>>,
}

impl<'a> DocumentText<'a> {
    /// The document's JSON text.
    pub fn text(&self) -> &'a str {
        self.text
    }
}

impl<'a> From<&'a RawValue> for DocumentText<'a> {
    fn from(raw: &'a RawValue) -> Self {
        DocumentText {
            text: raw.get(),
            fields: None,
        }
    }
}

/// The documents of a body that is a JSON array (whitespace around allowed); `None`
/// when it is not one, or not valid UTF-8 JSON — the caller's full parse says why.
pub fn read_batch(body: &[u8]) -> Option<Vec<DocumentText<'_>>> {
    let mut at = skip_whitespace(body, 0);
    if body.get(at) != Some(&b'[') {
        return None;
    }
    at = skip_whitespace(body, at + 1);
    let mut documents = Vec::new();
    if body.get(at) == Some(&b']') {
        at += 1;
    } else {
        loop {
            let rest = body.get(at..)?;
            let (len, fields) = read_document(rest)?;
            let text = std::str::from_utf8(rest.get(..len)?).ok()?;
            documents.push(DocumentText { text, fields });
            at = skip_whitespace(body, at + len);
            match body.get(at) {
                Some(b',') => at = skip_whitespace(body, at + 1),
                Some(b']') => {
                    at += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (skip_whitespace(body, at) == body.len()).then_some(documents)
}

/// The length of the JSON value `rest` starts with and, for an object, its checked
/// fields; `None` when `rest` does not start with a JSON value.
fn read_document(rest: &[u8]) -> Option<(usize, Option<Fields<'_>>)> {
    if rest.first() == Some(&b'{') {
        let mut stream =
            serde_json::Deserializer::from_slice(rest).into_iter::<Object<Fields<'_>>>();
        if let Some(Ok(Object(fields))) = stream.next() {
            return Some((stream.byte_offset(), Some(fields)));
        }
    }
    // Not in the fast path's shape: only its extent (serde_json skips it without
    // recursion, in memory bounded by its length).
    let mut stream = serde_json::Deserializer::from_slice(rest).into_iter::<&RawValue>();
    match stream.next() {
        Some(Ok(_)) => Some((stream.byte_offset(), None)),
        _ => None,
    }
}

/// The index of the first byte at or after `from` that is not JSON whitespace.
fn skip_whitespace(body: &[u8], from: usize) -> usize {
    let mut at = from;
    while matches!(body.get(at), Some(b' ' | b'\n' | b'\r' | b'\t')) {
        at += 1;
    }
    at
}

/// Checks a document the reader read: its fields when they were read, its text otherwise.
pub(super) fn check(document: &DocumentText<'_>) -> Option<raw::Checked> {
    match &document.fields {
        Some(fields) => raw::check_read(document.text, fields),
        None => raw::check(document.text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts `body` reads as, or `None`.
    fn texts(body: &str) -> Option<Vec<&str>> {
        read_batch(body.as_bytes())
            .map(|documents| documents.iter().map(DocumentText::text).collect())
    }

    /// Every element is found, whatever it is, exactly as serde_json reads the array.
    #[test]
    fn reads_the_elements_serde_json_reads() {
        let bodies = [
            "[]",
            " [ ] ",
            r#"[{"a":1}]"#,
            "\n[ {\"name\" : \"x\", \"subsegments\":[{\"id\":\"1\"}]} ,\t{} ]\r\n",
            r#"[1, "two", [3], null, true, {"a":[{"b":{}}]}, -1.5e3]"#,
            r#"[{"subsegments":null},{"subsegments":[1]},{"http":[1]},{"trace_id":1}]"#,
            r#"[{"name":"a","name":"b"}]"#,
            r#"[["x","y"]]"#,
        ];
        for body in bodies {
            let expected: Vec<&RawValue> = serde_json::from_str(body).unwrap();
            let expected: Vec<&str> = expected.iter().map(|r| r.get()).collect();
            assert_eq!(texts(body), Some(expected), "{body}");
        }
    }

    /// What is not an array of JSON values is left to the full parse.
    #[test]
    fn refuses_what_is_not_an_array() {
        for body in [
            "",
            " ",
            "{}",
            "1",
            "[",
            "[1",
            "[1,]",
            "[,1]",
            "[1 2]",
            "[1]]",
            "[1] x",
            "[{]",
            r#"[{"a":1,}]"#,
            "[tru]",
            "[01]",
        ] {
            assert!(
                serde_json::from_str::<Vec<&RawValue>>(body).is_err(),
                "{body}"
            );
            assert!(texts(body).is_none(), "{body}");
        }
        let mut invalid_utf8 = br#"[{"name":"caf"#.to_vec();
        invalid_utf8.extend_from_slice(&[0xff, 0xfe]);
        invalid_utf8.extend_from_slice(br#""}]"#);
        assert!(read_batch(&invalid_utf8).is_none());
    }

    /// A document nested far deeper than any parser follows is found whole, without
    /// recursion.
    #[test]
    fn finds_the_end_of_a_hundred_thousand_deep_document() {
        let body = format!("[{{}},{}{}]", "[".repeat(100_000), "]".repeat(100_000));
        let found = texts(&body).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[1].len(), 200_000);
    }
}
