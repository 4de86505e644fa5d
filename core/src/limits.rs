//! X-Ray's limits and the sanitisation that keeps documents inside them.
//!
//! Sources: the X-Ray developer guide ("segment documents") and AWS's segment
//! document JSON schema (`xray-segmentdocument-schema-v1.0.0`).

/// Largest segment document X-Ray accepts, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;
/// Deepest nesting of objects and arrays a document may have (`{"a":[1]}` is 2): the
/// relay's own limit, not X-Ray's. Far beyond any real segment (each subsegment level
/// adds two), and below serde_json's parser limit (128), so every document the relay
/// accepts can also be read as a tree.
pub const MAX_NESTING_DEPTH: usize = 100;
/// Documents per `PutTraceSegments` call.
pub const MAX_BATCH_DOCUMENTS: usize = 50;
/// Longest segment or subsegment name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest `http.request` string field (`url`, `method`, `user_agent`, `client_ip`).
pub const MAX_HTTP_FIELD_CHARS: usize = 250;
/// Longest annotation key.
pub const MAX_ANNOTATION_KEY_CHARS: usize = 500;
/// Longest annotation string value.
pub const MAX_ANNOTATION_VALUE_CHARS: usize = 1000;
/// Indexed annotations X-Ray keeps per trace.
pub const MAX_ANNOTATIONS: usize = 50;
/// The name used when sanitising leaves nothing.
pub const FALLBACK_NAME: &str = "unknown";

/// Whether X-Ray allows `c` in a segment name:
/// letters, ASCII digits, the space and `_ . : / % & # = + - @`.
pub fn is_name_char(c: char) -> bool {
    c.is_ascii_digit() || c.is_alphabetic() || " _.:/%&#=+-@".contains(c)
}

/// Whether `name` is already a legal, non-empty segment name.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().count() <= MAX_NAME_CHARS && name.chars().all(is_name_char)
}

/// Removes characters X-Ray does not allow in names and truncates to
/// [`MAX_NAME_CHARS`]; an empty result becomes [`FALLBACK_NAME`].
pub fn sanitize_name(name: &str) -> String {
    if is_valid_name(name) {
        return name.to_owned();
    }
    let cleaned: String = name
        .chars()
        .filter(|c| is_name_char(*c))
        .take(MAX_NAME_CHARS)
        .collect();
    let trimmed = cleaned.trim();
    if trimmed.is_empty() {
        FALLBACK_NAME.to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Turns any text into a legal annotation key (`^[a-zA-Z0-9_]{1,500}$`):
/// every other character becomes `_`.
pub fn sanitize_annotation_key(key: &str) -> String {
    let cleaned: String = key
        .chars()
        .take(MAX_ANNOTATION_KEY_CHARS)
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if cleaned.is_empty() {
        "_".to_owned()
    } else {
        cleaned
    }
}

/// Whether `key` is a legal annotation key.
pub fn is_valid_annotation_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_ANNOTATION_KEY_CHARS
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Truncates `text` to at most `max_chars` characters, on a character boundary.
pub fn truncate_chars(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((byte_index, _)) => &text[..byte_index],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_keep_legal_characters_only() {
        let cases = [
            ("reviews", "reviews"),
            ("api.example.com:443", "api.example.com:443"),
            ("reviews<script>", "reviewsscript"),
            ("ünïcode-ok", "ünïcode-ok"),
            ("a|b|c", "abc"),
            ("{}[]", FALLBACK_NAME),
            ("", FALLBACK_NAME),
        ];
        for (input, expected) in cases {
            assert_eq!(sanitize_name(input), expected, "{input:?}");
        }
        assert_eq!(
            sanitize_name(&"x".repeat(500)).chars().count(),
            MAX_NAME_CHARS
        );
    }

    #[test]
    fn annotation_keys_become_legal() {
        assert_eq!(sanitize_annotation_key("x-user-tier"), "x_user_tier");
        assert_eq!(
            sanitize_annotation_key("istio.namespace"),
            "istio_namespace"
        );
        assert_eq!(sanitize_annotation_key(""), "_");
        assert!(is_valid_annotation_key("istio_canonical_service"));
        assert!(!is_valid_annotation_key("a-b"));
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate_chars("héllo", 2), "hé");
        assert_eq!(truncate_chars("abc", 10), "abc");
    }

    proptest! {
        #[test]
        fn sanitised_names_are_always_valid(name in ".{0,300}") {
            prop_assert!(is_valid_name(&sanitize_name(&name)));
        }

        #[test]
        fn sanitised_keys_are_always_valid(key in ".{0,600}") {
            prop_assert!(is_valid_annotation_key(&sanitize_annotation_key(&key)));
        }
    }
}
