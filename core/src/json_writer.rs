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
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        if !NEEDS_ESCAPE[usize::from(byte)] {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
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
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
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

        /// Any document time reads back as itself (microsecond precision).
        #[test]
        fn any_time_round_trips(micros in 0u64..4_000_000_000_000_000) {
            let value = micros as f64 / 1e6;
            let json = written(|out| number(out, value));
            prop_assert_eq!(json.parse::<f64>().unwrap(), value);
        }
    }
}
