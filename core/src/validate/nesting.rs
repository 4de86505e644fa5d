//! How deep a document nests objects and arrays, measured without recursion.
//!
//! A request body is read into documents without a depth limit (each document is kept
//! as its text), so a document can arrive nested far deeper than a tree parser, or
//! X-Ray, follows. Validation refuses any document deeper than
//! [`MAX_NESTING_DEPTH`](crate::limits::MAX_NESTING_DEPTH) first, on its text or on
//! its tree alike: neither walk uses more than a counter (text) or `limit` stack frames
//! (tree), whatever the input.

use serde_json::Value;

/// Whether the JSON `text` nests objects and arrays more than `limit` levels deep.
///
/// `text` is one JSON value as the parser accepted it; brackets inside strings do not
/// count. One pass, no allocation.
pub fn text_nests_deeper_than(text: &str, limit: usize) -> bool {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b'"' => at = string_end(bytes, at + 1),
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        at += 1;
    }
    false
}

/// The index of the quote closing the string whose contents start at `from` (or the
/// end of `bytes`).
fn string_end(bytes: &[u8], from: usize) -> usize {
    let mut at = from;
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b'"' => return at,
            b'\\' => at += 2,
            _ => at += 1,
        }
    }
    bytes.len()
}

/// Whether `value` nests objects and arrays more than `limit` levels deep (a scalar is
/// 0 levels, `[1]` one). Recurses at most `limit + 1` frames, however deep `value` is.
pub fn value_nests_deeper_than(value: &Value, limit: usize) -> bool {
    match value {
        Value::Array(items) => {
            limit == 0 || items.iter().any(|v| value_nests_deeper_than(v, limit - 1))
        }
        Value::Object(map) => {
            limit == 0 || map.values().any(|v| value_nests_deeper_than(v, limit - 1))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `depth` arrays around `inner`.
    fn arrays(depth: usize, inner: &str) -> String {
        format!("{}{inner}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn text_and_tree_measure_alike() {
        let cases = [
            ("1".to_owned(), 0),
            ("[]".to_owned(), 1),
            (r#"{"a":[1,{"b":{}}],"c":[]}"#.to_owned(), 4),
            (r#"{"a":"[[[[{{{{\"]]"}"#.to_owned(), 1),
            (r#"["\\",["\\\""]]"#.to_owned(), 2),
            (arrays(100, "1"), 100),
            (arrays(101, "{}"), 102),
        ];
        for (text, depth) in cases {
            let value: Value = serde_json::from_str(&text).unwrap();
            for limit in [0, 1, 2, 3, 99, 100, 101, 102] {
                let deeper = depth > limit;
                assert_eq!(
                    text_nests_deeper_than(&text, limit),
                    deeper,
                    "{text} {limit}"
                );
                assert_eq!(
                    value_nests_deeper_than(&value, limit),
                    deeper,
                    "{text} {limit}"
                );
            }
        }
    }

    #[test]
    fn a_hundred_thousand_levels_are_measured_without_recursion() {
        let text = arrays(100_000, "");
        assert!(text_nests_deeper_than(&text, 100));
        assert!(!text_nests_deeper_than(&text, 100_000));
    }
}
