//! A minimal JSON writer: what [`crate::segment::Document`] needs to serialise
//! itself straight into a byte buffer, without serde's generic machinery.
//!
//! The filter builds one document per request in a wasm VM; writing it by hand
//! is several times faster than `serde_json::to_vec` there and leaves serde's
//! serialiser out of the module. The output is what `serde_json` writes for the
//! same values (strings escaped the same way, `null` for a non-finite number),
//! which the tests of [`crate::segment`] check field by field.

use std::fmt::Write as _;

/// Appends `text` as a JSON string: quoted, with `"` `\` and control characters
/// escaped as `serde_json` escapes them.
pub fn string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    escaped(out, text);
    out.push(b'"');
}

/// Appends the inside of `text`'s JSON string (no quotes): `"` `\` and control
/// characters escaped as `serde_json` escapes them (`\n`-style where JSON has one,
/// `\u00xx` otherwise), every other character as it is.
///
/// Eight bytes at a time: a word with nothing to escape is copied with one fixed-size
/// store, a word with something to escape up to the first such byte (compact JSON, as
/// the relay escapes whole documents into `PutTraceSegments`, has a quote every few
/// bytes: copying each run with a call of its own cost more than the scan).
pub fn escaped(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + bytes.len() / 8 + 8);
    let mut at = 0;
    while let Some(word) = bytes.get(at..at + 8) {
        let chunk: [u8; 8] = word.try_into().unwrap_or_default();
        let hits = escape_hits(u64::from_le_bytes(chunk));
        if hits == 0 {
            out.extend_from_slice(&chunk);
            at += 8;
            continue;
        }
        // The lowest flagged byte is always one to escape (see `escape_hits`).
        let first = (hits.trailing_zeros() / 8) as usize;
        out.extend_from_slice(&chunk);
        out.truncate(out.len() - 8 + first);
        let byte = chunk[first];
        if byte == b'"' || byte == b'\\' {
            // Almost every escape in a document: written here, without a call.
            out.extend_from_slice(&[b'\\', byte]);
        } else {
            escape_byte(out, byte);
        }
        at += first + 1;
    }
    let mut start = at;
    for (i, &byte) in bytes.iter().enumerate().skip(at) {
        if NEEDS_ESCAPE[usize::from(byte)] {
            out.extend_from_slice(&bytes[start..i]);
            escape_byte(out, byte);
            start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Every byte 0x01.
const ONES: u64 = 0x0101_0101_0101_0101;
/// Every byte's high bit.
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `word` (little-endian) that may need escaping: `"`, `\`
/// or a control character. Nonzero exactly when one does; the lowest flagged byte always
/// does (a byte is only flagged wrongly by a borrow from a flagged byte below it).
fn escape_hits(word: u64) -> u64 {
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x;
    let quote = zero_byte(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_byte(word ^ (ONES * u64::from(b'\\')));
    // Below 0x20: subtracting 0x20 borrows, and the byte had no high bit.
    let control = word.wrapping_sub(ONES * 0x20) & !word;
    (quote | backslash | control) & HIGHS
}

/// Appends the escape of `byte`, one [`NEEDS_ESCAPE`] names.
fn escape_byte(out: &mut Vec<u8>, byte: u8) {
    match byte {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        _ => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xf)]);
        }
    }
}

/// The bytes a JSON string must escape: control characters, `"` and `\`.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Appends an unsigned integer.
pub fn unsigned(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Appends a signed integer.
pub fn signed(out: &mut Vec<u8>, value: i64) {
    if value < 0 {
        out.push(b'-');
    }
    unsigned(out, value.unsigned_abs());
}

/// Largest whole number of microseconds an `f64` holds exactly (2^53).
const EXACT_MICROS: f64 = 9_007_199_254_740_992.0;

/// Appends a number: a decimal that reads back as `value`, with a fraction
/// (`2.0`, as serde_json writes a float), `null` when it is not finite (JSON has
/// no NaN or infinity). Document times (whole microseconds) take a fast integer
/// path; anything else Rust's shortest round-trip formatting.
pub fn number(out: &mut Vec<u8>, value: f64) {
    if !value.is_finite() {
        out.extend_from_slice(b"null");
        return;
    }
    let micros = (value * 1e6).round();
    if (0.0..EXACT_MICROS).contains(&micros) && micros / 1e6 == value {
        // `micros / 1e6` rounds to `value`, and so does reading the exact decimal back.
        let micros = micros as u64;
        unsigned(out, micros / 1_000_000);
        out.push(b'.');
        let mut fraction = micros % 1_000_000;
        let mut digits = 6;
        while digits > 1 && fraction.is_multiple_of(10) {
            fraction /= 10;
            digits -= 1;
        }
        let mut text = [b'0'; 6];
        for at in (0..digits).rev() {
            text[at] = b'0' + (fraction % 10) as u8;
            fraction /= 10;
        }
        out.extend_from_slice(&text[..digits]);
        return;
    }
    let mut text = String::new();
    // Writing into a String cannot fail.
    if write!(text, "{value}").is_ok() {
        out.extend_from_slice(text.as_bytes());
        if !text.contains('.') {
            out.extend_from_slice(b".0");
        }
    }
}

/// Appends `true` or `false`.
pub fn boolean(out: &mut Vec<u8>, value: bool) {
    out.extend_from_slice(if value { b"true" } else { b"false" });
}

/// Writes the members of one JSON object: the separators and the quoted keys.
#[derive(Debug)]
pub struct Object<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Object<'a> {
    /// Opens an object (`{`).
    pub fn open(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, first: true }
    }

    /// Starts member `key`; the caller appends its value to the returned buffer.
    pub fn key(&mut self, key: &str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        string(self.out, key);
        self.out.push(b':');
        self.out
    }

    /// A string member.
    pub fn string(&mut self, key: &str, value: &str) {
        let out = self.key(key);
        string(out, value);
    }

    /// A string member when `value` is set.
    pub fn optional_string(&mut self, key: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.string(key, value);
        }
    }

    /// `key: true` when `value` holds (the documents leave false flags out).
    pub fn flag(&mut self, key: &str, value: bool) {
        if value {
            let out = self.key(key);
            boolean(out, true);
        }
    }

    /// Closes the object (`}`).
    pub fn close(self) {
        self.out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn written(write: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        write(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        for text in [
            "",
            "plain",
            "quote \" and backslash \\",
            "lines\n\r\ttab",
            "\u{0}\u{1}\u{8}\u{c}\u{1f}\u{7f}",
            "ünïcødé → ✓ 🦀",
            "</script>",
        ] {
            assert_eq!(
                written(|out| string(out, text)),
                serde_json::to_string(text).unwrap(),
                "{text:?}"
            );
        }
    }

    /// Every byte value in every position of a word, alone and next to one to escape:
    /// the word-at-a-time scan flags exactly the bytes to escape first.
    #[test]
    fn every_byte_in_every_position_is_escaped_as_serde_json_escapes_it() {
        for byte in 0u8..0x80 {
            let c = char::from(byte);
            for position in 0..10 {
                for neighbour in ['a', '"', '\u{1}', 'é'] {
                    let mut text: String = "x".repeat(position);
                    text.push(c);
                    text.push(neighbour);
                    text.push_str("yyyyyyyy");
                    assert_eq!(
                        written(|out| string(out, &text)),
                        serde_json::to_string(&text).unwrap(),
                        "{text:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn numbers_are_written_as_serde_json_writes_them() {
        for value in [0u64, 7, 10, 42, 1_000_000, u64::MAX] {
            assert_eq!(written(|out| unsigned(out, value)), value.to_string());
        }
        for value in [0i64, -1, 503, i64::MIN, i64::MAX] {
            assert_eq!(written(|out| signed(out, value)), value.to_string());
        }
        for value in [
            0.0,
            1.5,
            2.0,
            1_796_115_929.850_102,
            1e-7,
            123_456.000_001,
            1e21,
        ] {
            let text = written(|out| number(out, value));
            assert_eq!(text.parse::<f64>().unwrap(), value, "{text}");
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&text).unwrap(),
                serde_json::json!(value),
                "a float, as serde_json reads it back"
            );
        }
        assert_eq!(written(|out| number(out, 2.0)), "2.0");
        assert_eq!(written(|out| number(out, 0.05)), "0.05");
        assert_eq!(
            written(|out| number(out, 1_796_115_929.850_102)),
            "1796115929.850102"
        );
        assert_eq!(written(|out| number(out, f64::NAN)), "null");
        assert_eq!(written(|out| number(out, f64::INFINITY)), "null");
    }

    #[test]
    fn objects_separate_their_members() {
        let text = written(|out| {
            let mut object = Object::open(out);
            object.string("a", "x");
            object.optional_string("skipped", None);
            object.flag("no", false);
            object.flag("yes", true);
            unsigned(object.key("n"), 3);
            object.close();
        });
        assert_eq!(text, r#"{"a":"x","yes":true,"n":3}"#);
    }

    proptest! {
        /// Any string reads back as itself.
        #[test]
        fn any_string_round_trips(text in any::<String>()) {
            let json = written(|out| string(out, &text));
            prop_assert_eq!(serde_json::from_str::<String>(&json).unwrap(), text);
        }

        /// Strings dense in what is escaped, at every alignment and length around the
        /// eight-byte steps: the same bytes as serde_json writes, after any prefix
        /// already in the buffer.
        #[test]
        fn dense_escapes_are_written_as_serde_json_writes_them(
            prefix in "[a\"]{0,3}",
            text in "[\"\\\\\\x00-\\x1f\\x7f a-z0-9é✓🦀{}:,]{0,64}",
        ) {
            let mut out = prefix.clone().into_bytes();
            string(&mut out, &text);
            let expected = format!("{prefix}{}", serde_json::to_string(&text).unwrap());
            prop_assert_eq!(String::from_utf8(out).unwrap(), expected);
        }

        /// Any document time reads back as itself (microsecond precision).
        #[test]
        fn any_time_round_trips(micros in 0u64..4_000_000_000_000_000) {
            let value = micros as f64 / 1e6;
            let json = written(|out| number(out, value));
            prop_assert_eq!(json.parse::<f64>().unwrap(), value);
        }
    }
}
