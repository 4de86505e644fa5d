//! Trace ids, span ids and the epoch they carry.
//!
//! meshray mints 128-bit trace ids whose high 32 bits are the current epoch
//! seconds. Such an id is at once a valid W3C/B3 id and, split as
//! `1-{hi 8 hex}-{lo 24 hex}`, a valid X-Ray trace id. Any other id (64-bit B3
//! ids, random 128-bit ids) is *foreign*: its X-Ray id needs an epoch that the
//! relay resolves through the shared epoch cache ([`TraceId::with_epoch`]).

use std::fmt;
use std::str::FromStr;

/// How far in the past an embedded epoch may lie and still count (28 days).
pub const EPOCH_PAST_WINDOW_SECS: u64 = 28 * 24 * 3600;
/// How far in the future an embedded epoch may lie and still count (5 minutes of clock skew).
pub const EPOCH_FUTURE_WINDOW_SECS: u64 = 5 * 60;

/// Mask of the low 96 bits of a 128-bit id: the random part of an X-Ray trace id.
const LOW_96_BITS: u128 = (1u128 << 96) - 1;

/// Why an id could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The text has the wrong number of characters.
    #[error("expected {expected} hex digits, got {actual} characters")]
    Length {
        /// The accepted lengths, for the message.
        expected: &'static str,
        /// The length that was seen.
        actual: usize,
    },
    /// The text holds a character that is not a lowercase or uppercase hex digit.
    #[error("not a hex id: {0:?}")]
    NotHex(String),
    /// All-zero ids are invalid in every format.
    #[error("id is all zeros")]
    Zero,
    /// The text is not of the form `1-{8 hex}-{24 hex}`.
    #[error("not an X-Ray trace id (expected 1-xxxxxxxx-xxxxxxxxxxxxxxxxxxxxxxxx): {0:?}")]
    NotXray(String),
}

/// How many bits a trace id had on the wire; kept so headers are re-encoded as they came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdWidth {
    /// A 64-bit id (16 hex digits), as old Zipkin/B3 clients send.
    Bits64,
    /// A 128-bit id (32 hex digits).
    Bits128,
}

/// A trace id as it travels in propagation headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId {
    /// The id's value; a 64-bit id occupies the low 64 bits.
    value: u128,
    /// The width it had on the wire.
    width: IdWidth,
}

impl TraceId {
    /// Builds a trace id from its value and wire width.
    ///
    /// # Errors
    /// [`IdError::Zero`] for an all-zero value, [`IdError::Length`] for a 64-bit
    /// width with bits above the low 64 set.
    pub fn new(value: u128, width: IdWidth) -> Result<Self, IdError> {
        if value == 0 {
            return Err(IdError::Zero);
        }
        if width == IdWidth::Bits64 && value > u128::from(u64::MAX) {
            return Err(IdError::Length {
                expected: "16",
                actual: 32,
            });
        }
        Ok(Self { value, width })
    }

    /// Mints a 128-bit id that carries `epoch_secs` in its high 32 bits and 96
    /// random bits below them.
    pub fn mint(epoch_secs: u32, random: u128) -> Self {
        let mut low = random & LOW_96_BITS;
        if low == 0 {
            low = 1;
        }
        Self {
            value: (u128::from(epoch_secs) << 96) | low,
            width: IdWidth::Bits128,
        }
    }

    /// Parses 16 or 32 hex digits (either case).
    ///
    /// # Errors
    /// [`IdError`] when the length is wrong, a digit is not hex or the id is zero.
    pub fn from_hex(text: &str) -> Result<Self, IdError> {
        let width = match text.len() {
            16 => IdWidth::Bits64,
            32 => IdWidth::Bits128,
            actual => {
                return Err(IdError::Length {
                    expected: "16 or 32",
                    actual,
                });
            }
        };
        let value = parse_hex_u128(text)?;
        Self::new(value, width)
    }

    /// The id's 128-bit value (64-bit ids are left-padded with zeros).
    pub fn value(&self) -> u128 {
        self.value
    }

    /// The width the id had on the wire.
    pub fn width(&self) -> IdWidth {
        self.width
    }

    /// The id as hex in its wire width (16 or 32 lowercase digits).
    pub fn to_hex(&self) -> String {
        let digits = match self.width {
            IdWidth::Bits64 => 16,
            IdWidth::Bits128 => 32,
        };
        let mut out = String::with_capacity(digits);
        push_hex(&mut out, self.value, digits);
        out
    }

    /// The id as 32 lowercase hex digits (64-bit ids left-padded with zeros).
    pub fn to_hex128(&self) -> String {
        let mut out = String::with_capacity(32);
        push_hex(&mut out, self.value, 32);
        out
    }

    /// The epoch seconds in the high 32 bits, if they lie in the window around
    /// `now_secs` ([`EPOCH_PAST_WINDOW_SECS`], [`EPOCH_FUTURE_WINDOW_SECS`]).
    pub fn embedded_epoch(&self, now_secs: u64) -> Option<u32> {
        let epoch = (self.value >> 96) as u32;
        let epoch_u64 = u64::from(epoch);
        let earliest = now_secs.saturating_sub(EPOCH_PAST_WINDOW_SECS);
        let latest = now_secs.saturating_add(EPOCH_FUTURE_WINDOW_SECS);
        (earliest..=latest).contains(&epoch_u64).then_some(epoch)
    }

    /// The X-Ray trace id of this trace once its epoch is known: the epoch and
    /// the low 96 bits of the raw id.
    pub fn with_epoch(&self, epoch_secs: u32) -> XrayTraceId {
        XrayTraceId {
            epoch: epoch_secs,
            random: self.value & LOW_96_BITS,
        }
    }

    /// The trace id to put in a segment document: the X-Ray id when the id
    /// carries a valid epoch, else the raw 32-hex id for the relay to resolve.
    pub fn document_trace_id(&self, now_secs: u64) -> String {
        match self.embedded_epoch(now_secs) {
            Some(epoch) => self.with_epoch(epoch).to_xray_string(),
            None => self.to_hex128(),
        }
    }
}

/// An X-Ray trace id: `1-{epoch, 8 hex}-{96 random bits, 24 hex}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct XrayTraceId {
    /// Seconds since the Unix epoch when the trace started.
    epoch: u32,
    /// The low 96 bits.
    random: u128,
}

impl XrayTraceId {
    /// The epoch seconds part.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The same id as a 128-bit [`TraceId`] (epoch in the high 32 bits), the
    /// form W3C and B3 headers carry.
    pub fn to_trace_id(&self) -> TraceId {
        TraceId {
            value: (u128::from(self.epoch) << 96) | self.random,
            width: IdWidth::Bits128,
        }
    }
}

impl XrayTraceId {
    /// `1-{epoch}-{random}`, as [`fmt::Display`] writes it (without the formatter).
    pub fn to_xray_string(&self) -> String {
        let mut out = String::with_capacity(35);
        out.push_str("1-");
        push_hex(&mut out, u128::from(self.epoch), 8);
        out.push('-');
        push_hex(&mut out, self.random, 24);
        out
    }
}

impl fmt::Display for XrayTraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_xray_string())
    }
}

/// Appends the low `digits` hex digits of `value`, lowercase and zero-padded
/// (what `{:0digits$x}` writes, without the formatting machinery: ids are
/// written several times per request in the filter).
pub fn push_hex(out: &mut String, value: u128, digits: usize) {
    let (text, digits) = hex_digits(value, digits);
    if let Ok(hex) = std::str::from_utf8(&text[..digits]) {
        out.push_str(hex);
    }
}

/// [`push_hex`] into bytes (the filter writes its documents' ids straight into JSON).
pub fn write_hex(out: &mut Vec<u8>, value: u128, digits: usize) {
    let (text, digits) = hex_digits(value, digits);
    out.extend_from_slice(&text[..digits]);
}

/// The low `digits` (at most 32) hex digits of `value`, and how many there are.
fn hex_digits(value: u128, digits: usize) -> ([u8; 32], usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = digits.min(32);
    let mut text = [0u8; 32];
    for (i, slot) in text[..digits].iter_mut().enumerate() {
        let shift = 4 * (digits - 1 - i);
        *slot = HEX[((value >> shift) & 0xf) as usize];
    }
    (text, digits)
}

impl FromStr for XrayTraceId {
    type Err = IdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let not_xray = || IdError::NotXray(text.chars().take(64).collect());
        let bytes = text.as_bytes();
        if bytes.len() != 35 || !text.starts_with("1-") || bytes[10] != b'-' {
            return Err(not_xray());
        }
        let epoch_hex = text.get(2..10).ok_or_else(not_xray)?;
        let random_hex = text.get(11..35).ok_or_else(not_xray)?;
        let epoch = u32::try_from(parse_hex_u128(epoch_hex).map_err(|_| not_xray())?)
            .map_err(|_| not_xray())?;
        let random = parse_hex_u128(random_hex).map_err(|_| not_xray())?;
        if epoch == 0 && random == 0 {
            return Err(IdError::Zero);
        }
        Ok(Self { epoch, random })
    }
}

/// A 64-bit span id: the id of a segment or subsegment (16 hex digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId(u64);

impl SpanId {
    /// Builds a span id from random bits (zero is replaced by one: zero ids are invalid).
    pub fn from_random(random: u64) -> Self {
        Self(random.max(1))
    }

    /// Builds a span id from a non-zero value.
    ///
    /// # Errors
    /// [`IdError::Zero`] for zero.
    pub fn new(value: u64) -> Result<Self, IdError> {
        if value == 0 {
            Err(IdError::Zero)
        } else {
            Ok(Self(value))
        }
    }

    /// Parses exactly 16 hex digits.
    ///
    /// # Errors
    /// [`IdError`] when the length is wrong, a digit is not hex or the id is zero.
    pub fn from_hex(text: &str) -> Result<Self, IdError> {
        if text.len() != 16 {
            return Err(IdError::Length {
                expected: "16",
                actual: text.len(),
            });
        }
        let value = parse_hex_u128(text)? as u64;
        Self::new(value)
    }

    /// The id's value.
    pub fn value(&self) -> u64 {
        self.0
    }
}

impl SpanId {
    /// The id as 16 lowercase hex digits (what `to_string` gives, faster).
    pub fn to_hex(&self) -> String {
        let mut out = String::with_capacity(16);
        push_hex(&mut out, u128::from(self.0), 16);
        out
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Parses 1 to 32 hex digits (either case); anything else, signs included, is refused.
/// One shift and one table-free digit conversion per character (the relay parses three
/// or four ids per document; `u128::from_str_radix` cost several times more).
fn parse_hex_u128(text: &str) -> Result<u128, IdError> {
    let not_hex = || IdError::NotHex(text.chars().take(64).collect());
    if text.is_empty() || text.len() > 32 {
        return Err(not_hex());
    }
    let mut value = 0u128;
    for byte in text.bytes() {
        let digit = match byte {
            b'0'..=b'9' => byte - b'0',
            b'a'..=b'f' => byte - b'a' + 10,
            b'A'..=b'F' => byte - b'A' + 10,
            _ => return Err(not_hex()),
        };
        value = value << 4 | u128::from(digit);
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_written_as_the_formatter_writes_it() {
        for value in [
            0u128,
            1,
            0xabc,
            u128::from(u64::MAX),
            u128::MAX,
            0x0123_4567_89ab_cdef_0011_2233_4455_6677,
        ] {
            for digits in [8, 16, 24, 32] {
                let mut out = String::new();
                push_hex(&mut out, value, digits);
                let mask = if digits == 32 {
                    u128::MAX
                } else {
                    (1u128 << (4 * digits)) - 1
                };
                assert_eq!(
                    out,
                    format!("{:0digits$x}", value & mask),
                    "{value:x} {digits}"
                );
                let mut bytes = b"id:".to_vec();
                write_hex(&mut bytes, value, digits);
                assert_eq!(bytes, format!("id:{out}").into_bytes());
            }
        }
        let span = SpanId::new(0x00f0_67aa_0ba9_02b7).unwrap();
        assert_eq!(span.to_hex(), "00f067aa0ba902b7");
        assert_eq!(span.to_string(), "00f067aa0ba902b7");
    }
    use proptest::prelude::*;

    const NOW: u64 = 1_764_000_000; // 2025-11-24

    #[test]
    fn minted_id_carries_its_epoch_and_maps_to_xray() {
        let id = TraceId::mint(NOW as u32, 0x0123_4567_89ab_cdef_0123_4567);
        assert_eq!(id.embedded_epoch(NOW), Some(NOW as u32));
        assert_eq!(id.to_hex(), format!("{:08x}0123456789abcdef01234567", NOW));
        assert_eq!(
            id.document_trace_id(NOW),
            format!("1-{:08x}-0123456789abcdef01234567", NOW)
        );
    }

    #[test]
    fn epoch_window_bounds() {
        let inside_past = TraceId::mint((NOW - EPOCH_PAST_WINDOW_SECS) as u32, 7);
        let outside_past = TraceId::mint((NOW - EPOCH_PAST_WINDOW_SECS - 1) as u32, 7);
        let inside_future = TraceId::mint((NOW + EPOCH_FUTURE_WINDOW_SECS) as u32, 7);
        let outside_future = TraceId::mint((NOW + EPOCH_FUTURE_WINDOW_SECS + 1) as u32, 7);
        assert!(inside_past.embedded_epoch(NOW).is_some());
        assert!(outside_past.embedded_epoch(NOW).is_none());
        assert!(inside_future.embedded_epoch(NOW).is_some());
        assert!(outside_future.embedded_epoch(NOW).is_none());
    }

    #[test]
    fn sixty_four_bit_ids_are_foreign_and_left_padded() {
        let id = TraceId::from_hex("463ac35c9f6413ad").unwrap();
        assert_eq!(id.width(), IdWidth::Bits64);
        assert_eq!(id.embedded_epoch(NOW), None);
        assert_eq!(id.to_hex(), "463ac35c9f6413ad");
        assert_eq!(
            id.document_trace_id(NOW),
            "0000000000000000463ac35c9f6413ad"
        );
        assert_eq!(
            id.with_epoch(0x5f00_0000).to_string(),
            "1-5f000000-00000000463ac35c9f6413ad"
        );
    }

    #[test]
    fn parses_load_balancer_root_ids() {
        let xray: XrayTraceId = "1-5759e988-bd862e3fe1be46a994272793".parse().unwrap();
        assert_eq!(xray.epoch(), 0x5759_e988);
        assert_eq!(
            xray.to_trace_id().to_hex(),
            "5759e988bd862e3fe1be46a994272793"
        );
        assert_eq!(xray.to_string(), "1-5759e988-bd862e3fe1be46a994272793");
    }

    #[test]
    fn rejects_malformed_ids() {
        for bad in [
            "",
            "abc",
            "463ac35c9f6413aZ",
            "+463ac35c9f6413a",
            "0000000000000000",
        ] {
            assert!(TraceId::from_hex(bad).is_err(), "{bad:?}");
        }
        for bad in [
            "1-5759e988-bd862e3fe1be46a99427279",
            "2-5759e988-bd862e3fe1be46a994272793",
            "1-5759e988bd862e3fe1be46a994272793x",
            "1-5759e98g-bd862e3fe1be46a994272793",
        ] {
            assert!(bad.parse::<XrayTraceId>().is_err(), "{bad:?}");
        }
        assert!(SpanId::from_hex("000000000000000").is_err());
        assert!(SpanId::from_hex("0000000000000000").is_err());
    }

    proptest! {
        /// The digit parser reads what `u128::from_str_radix` reads for 1–32 hex digits,
        /// and refuses everything else (signs, spaces, other letters, empty, too long).
        #[test]
        fn hex_digits_parse_as_from_str_radix_reads_them(text in "[0-9a-fA-F+\\- g]{0,34}") {
            let digits_only = !text.is_empty()
                && text.len() <= 32
                && text.bytes().all(|b| b.is_ascii_hexdigit());
            let expected = digits_only.then(|| u128::from_str_radix(&text, 16).unwrap());
            prop_assert_eq!(parse_hex_u128(&text).ok(), expected);
            if !digits_only {
                prop_assert_eq!(parse_hex_u128(&text), Err(IdError::NotHex(text.clone())));
            }
        }

        #[test]
        fn hex_round_trips(value in 1u128.., short in 1u64..) {
            let long = TraceId::new(value, IdWidth::Bits128).unwrap();
            prop_assert_eq!(TraceId::from_hex(&long.to_hex()).unwrap(), long);
            let narrow = TraceId::new(u128::from(short), IdWidth::Bits64).unwrap();
            prop_assert_eq!(TraceId::from_hex(&narrow.to_hex()).unwrap(), narrow);
            let span = SpanId::new(short).unwrap();
            prop_assert_eq!(SpanId::from_hex(&span.to_string()).unwrap(), span);
        }

        #[test]
        fn xray_ids_round_trip(epoch in any::<u32>(), random in any::<u128>()) {
            let xray = TraceId::mint(epoch, random).with_epoch(epoch);
            prop_assert_eq!(xray.to_string().parse::<XrayTraceId>().unwrap(), xray);
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,40}") {
            _ = TraceId::from_hex(&text);
            _ = SpanId::from_hex(&text);
            _ = text.parse::<XrayTraceId>();
        }
    }
}
