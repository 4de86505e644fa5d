//! W3C Trace Context `traceparent`: `00-{32 hex trace}-{16 hex parent}-{2 hex flags}`.
//!
//! `tracestate` is never changed: it belongs to the vendors that wrote it.

use super::{CodecError, Sampling, SpanContext};
use crate::ids::{SpanId, TraceId, push_hex};

/// The `sampled` bit of the trace flags.
const FLAG_SAMPLED: u8 = 0x01;

/// A parsed `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// Trace, parent and sampling.
    pub context: SpanContext,
    /// The trace flags as received (bits other than `sampled` are kept).
    pub flags: u8,
}

/// Parses a `traceparent` (version 00, or a later version's first four fields).
///
/// # Errors
/// [`CodecError`] for any deviation from the spec: wrong length, version `ff`,
/// uppercase or non-hex digits, all-zero ids.
pub fn parse(value: &str) -> Result<TraceParent, CodecError> {
    let err =
        |reason: &str| CodecError::new("traceparent", format!("{reason}: {:?}", truncated(value)));
    let value = value.trim();
    let bytes = value.as_bytes();
    if !value.is_ascii() {
        return Err(err("not ASCII"));
    }
    if bytes.len() < 55 {
        return Err(err("too short"));
    }
    let version = hex_field(&value[0..2]).ok_or_else(|| err("bad version"))?;
    if version == 0xff
        || (version == 0 && bytes.len() != 55)
        || (bytes.len() > 55 && bytes[55] != b'-')
    {
        return Err(err("bad version or length"));
    }
    if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
        return Err(err("bad separators"));
    }
    let trace_hex = &value[3..35];
    let span_hex = &value[36..52];
    if !is_lower_hex(trace_hex) || !is_lower_hex(span_hex) {
        return Err(err("ids must be lowercase hex"));
    }
    let trace_id = TraceId::from_hex(trace_hex).map_err(|e| err(&e.to_string()))?;
    let span_id = SpanId::from_hex(span_hex).map_err(|e| err(&e.to_string()))?;
    let flags = hex_field(&value[53..55]).ok_or_else(|| err("bad flags"))? as u8;
    Ok(TraceParent {
        context: SpanContext {
            trace_id,
            span_id: Some(span_id),
            sampling: if flags & FLAG_SAMPLED != 0 {
                Sampling::Sampled
            } else {
                Sampling::NotSampled
            },
        },
        flags,
    })
}

/// Renders a version-00 `traceparent` naming `span` as parent; `flags` are the
/// received flags (0 when new), whose `sampled` bit is set from `sampled`.
pub fn render(trace_id: TraceId, span: SpanId, sampled: bool, flags: u8) -> String {
    let flags = if sampled {
        flags | FLAG_SAMPLED
    } else {
        flags & !FLAG_SAMPLED
    };
    let mut out = String::with_capacity(55);
    out.push_str("00-");
    push_hex(&mut out, trace_id.value(), 32);
    out.push('-');
    push_hex(&mut out, u128::from(span.value()), 16);
    out.push('-');
    push_hex(&mut out, u128::from(flags), 2);
    out
}

fn hex_field(text: &str) -> Option<u32> {
    (text.len() == 2 && is_lower_hex(text))
        .then(|| u32::from_str_radix(text, 16).ok())
        .flatten()
}

fn is_lower_hex(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn truncated(text: &str) -> &str {
    crate::limits::truncate_chars(text, 80)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::IdWidth;
    use proptest::prelude::*;

    #[test]
    fn parses_spec_examples() {
        let tp = parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
        assert_eq!(
            tp.context.trace_id.to_hex(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(tp.context.span_id.unwrap().to_string(), "b7ad6b7169203331");
        assert_eq!(tp.context.sampling, Sampling::Sampled);
        let unsampled = parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00").unwrap();
        assert_eq!(unsampled.context.sampling, Sampling::NotSampled);
        let future =
            parse("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-the-future-holds")
                .unwrap();
        assert_eq!(future.flags, 1);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g",
            "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn round_trips(trace in 1u128.., span in 1u64.., sampled in any::<bool>(), flags in any::<u8>()) {
            let trace_id = TraceId::new(trace, IdWidth::Bits128).unwrap();
            let header = render(trace_id, SpanId::new(span).unwrap(), sampled, flags);
            let parsed = parse(&header).unwrap();
            prop_assert_eq!(parsed.context.trace_id, trace_id);
            prop_assert_eq!(parsed.context.span_id, Some(SpanId::new(span).unwrap()));
            prop_assert_eq!(parsed.context.sampling == Sampling::Sampled, sampled);
            prop_assert_eq!(parsed.flags & !FLAG_SAMPLED, flags & !FLAG_SAMPLED);
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,80}") {
            _ = parse(&text);
        }
    }
}
