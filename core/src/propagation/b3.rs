//! Zipkin B3: the single `b3` header and the multi `x-b3-*` headers.
//!
//! Single: `{trace 16|32 hex}-{span 16 hex}[-{1|0|d}[-{parent 16 hex}]]`, or a
//! bare sampling decision `0`, `1` or `d`.
//! Multi: `x-b3-traceid`, `x-b3-spanid`, `x-b3-parentspanid`, `x-b3-sampled`
//! (`1`/`0`, legacy `true`/`false`), `x-b3-flags` (`1` = debug).

use super::{CodecError, Sampling, SpanContext};
use crate::ids::{SpanId, TraceId, push_hex};

/// What a B3 header set says: a full context, or only a sampling decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum B3 {
    /// Trace and span ids, maybe a decision.
    Context(SpanContext),
    /// Only a decision (`b3: 0`, or `x-b3-sampled` without ids).
    SamplingOnly(Sampling),
}

/// Parses the single `b3` header.
///
/// # Errors
/// [`CodecError`] on wrong field counts, bad ids or an unknown sampling value.
pub fn parse_single(value: &str) -> Result<B3, CodecError> {
    let err = |reason: String| CodecError::new("b3", reason);
    let value = value.trim();
    let mut fields = value.split('-');
    let first = fields.next().unwrap_or_default();
    let Some(span_hex) = fields.next() else {
        return parse_sampling_field(first)
            .map(B3::SamplingOnly)
            .map_err(err);
    };
    let trace_id = TraceId::from_hex(first).map_err(|e| err(format!("trace id: {e}")))?;
    let span_id = SpanId::from_hex(span_hex).map_err(|e| err(format!("span id: {e}")))?;
    let sampling = match fields.next() {
        Some(field) => parse_sampling_field(field).map_err(err)?,
        None => Sampling::Deferred,
    };
    if let Some(parent) = fields.next() {
        SpanId::from_hex(parent).map_err(|e| err(format!("parent span id: {e}")))?;
    }
    if fields.next().is_some() {
        return Err(err("too many fields".to_owned()));
    }
    Ok(B3::Context(SpanContext {
        trace_id,
        span_id: Some(span_id),
        sampling,
    }))
}

/// Renders the single `b3` header naming `span` as parent.
pub fn render_single(trace_id: TraceId, span: SpanId, sampling: Sampling) -> String {
    let flag = match sampling {
        Sampling::Debug => "d",
        Sampling::Sampled | Sampling::Deferred => "1",
        Sampling::NotSampled => "0",
    };
    let mut out = trace_id.to_hex();
    out.reserve(19);
    out.push('-');
    push_hex(&mut out, u128::from(span.value()), 16);
    out.push('-');
    out.push_str(flag);
    out
}

/// The raw `x-b3-*` header values of a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct MultiHeaders<'a> {
    /// `x-b3-traceid`.
    pub trace_id: Option<&'a str>,
    /// `x-b3-spanid`.
    pub span_id: Option<&'a str>,
    /// `x-b3-sampled`.
    pub sampled: Option<&'a str>,
    /// `x-b3-flags`.
    pub flags: Option<&'a str>,
}

/// Parses the multi headers; `None` when none of them is present.
///
/// # Errors
/// [`CodecError`] on a bad id, a trace id without span id, or an unknown
/// sampling value.
pub fn parse_multi(headers: MultiHeaders<'_>) -> Option<Result<B3, CodecError>> {
    let err = |reason: String| CodecError::new("x-b3-*", reason);
    let sampling = || -> Result<Sampling, CodecError> {
        if headers.flags.map(str::trim) == Some("1") {
            return Ok(Sampling::Debug);
        }
        match headers.sampled.map(str::trim) {
            None => Ok(Sampling::Deferred),
            Some("1" | "true") => Ok(Sampling::Sampled),
            Some("0" | "false") => Ok(Sampling::NotSampled),
            Some(other) => Err(err(format!("x-b3-sampled: unknown value {other:?}"))),
        }
    };
    match (headers.trace_id, headers.span_id) {
        (None, None) if headers.sampled.is_none() && headers.flags.is_none() => None,
        (None, None) => Some(sampling().map(B3::SamplingOnly)),
        (Some(trace), Some(span)) => Some((|| {
            let trace_id =
                TraceId::from_hex(trace.trim()).map_err(|e| err(format!("x-b3-traceid: {e}")))?;
            let span_id =
                SpanId::from_hex(span.trim()).map_err(|e| err(format!("x-b3-spanid: {e}")))?;
            Ok(B3::Context(SpanContext {
                trace_id,
                span_id: Some(span_id),
                sampling: sampling()?,
            }))
        })()),
        (Some(_), None) => Some(Err(err("x-b3-traceid without x-b3-spanid".to_owned()))),
        (None, Some(_)) => Some(Err(err("x-b3-spanid without x-b3-traceid".to_owned()))),
    }
}

/// The `x-b3-sampled` value for a decision.
pub fn render_sampled(sampled: bool) -> &'static str {
    if sampled { "1" } else { "0" }
}

fn parse_sampling_field(field: &str) -> Result<Sampling, String> {
    match field {
        "1" => Ok(Sampling::Sampled),
        "0" => Ok(Sampling::NotSampled),
        "d" => Ok(Sampling::Debug),
        other => Err(format!(
            "unknown sampling value {:?}",
            crate::limits::truncate_chars(other, 40)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::IdWidth;
    use proptest::prelude::*;

    #[test]
    fn parses_single_forms() {
        let full =
            parse_single("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90")
                .unwrap();
        let B3::Context(ctx) = full else {
            panic!("{full:?}")
        };
        assert_eq!(ctx.trace_id.width(), IdWidth::Bits128);
        assert_eq!(ctx.sampling, Sampling::Sampled);
        let short = parse_single("463ac35c9f6413ad-e457b5a2e4d86bd1").unwrap();
        let B3::Context(ctx) = short else {
            panic!("{short:?}")
        };
        assert_eq!(ctx.trace_id.width(), IdWidth::Bits64);
        assert_eq!(ctx.sampling, Sampling::Deferred);
        assert_eq!(
            parse_single("0").unwrap(),
            B3::SamplingOnly(Sampling::NotSampled)
        );
        assert_eq!(
            parse_single("d").unwrap(),
            B3::SamplingOnly(Sampling::Debug)
        );
        let debug = parse_single("463ac35c9f6413ad-e457b5a2e4d86bd1-d").unwrap();
        assert!(matches!(
            debug,
            B3::Context(SpanContext {
                sampling: Sampling::Debug,
                ..
            })
        ));
    }

    #[test]
    fn rejects_malformed_single() {
        for bad in [
            "",
            "x",
            "463ac35c9f6413ad",
            "463ac35c9f6413ad-e457b5a2e4d86bd",
            "463ac35c9f6413ad-e457b5a2e4d86bd1-2",
            "463ac35c9f6413ad-e457b5a2e4d86bd1-1-zz",
            "463ac35c9f6413ad-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90-x",
        ] {
            assert!(parse_single(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parses_multi_forms() {
        let m = |t, s, sampled, flags| {
            parse_multi(MultiHeaders {
                trace_id: t,
                span_id: s,
                sampled,
                flags,
            })
        };
        assert!(m(None, None, None, None).is_none());
        assert_eq!(
            m(None, None, Some("0"), None).unwrap().unwrap(),
            B3::SamplingOnly(Sampling::NotSampled)
        );
        let ctx = m(
            Some("463ac35c9f6413ad"),
            Some("a2fb4a1d1a96d312"),
            Some("true"),
            None,
        )
        .unwrap()
        .unwrap();
        assert!(matches!(
            ctx,
            B3::Context(SpanContext {
                sampling: Sampling::Sampled,
                ..
            })
        ));
        let debug = m(
            Some("463ac35c9f6413ad"),
            Some("a2fb4a1d1a96d312"),
            Some("0"),
            Some("1"),
        )
        .unwrap()
        .unwrap();
        assert!(matches!(
            debug,
            B3::Context(SpanContext {
                sampling: Sampling::Debug,
                ..
            })
        ));
        assert!(
            m(Some("463ac35c9f6413ad"), None, None, None)
                .unwrap()
                .is_err()
        );
        assert!(
            m(
                Some("463ac35c9f6413ad"),
                Some("a2fb4a1d1a96d312"),
                Some("yes"),
                None
            )
            .unwrap()
            .is_err()
        );
        assert!(
            m(Some("nothex"), Some("a2fb4a1d1a96d312"), None, None)
                .unwrap()
                .is_err()
        );
    }

    proptest! {
        #[test]
        fn single_round_trips(trace in 1u128.., narrow in any::<bool>(), span in 1u64.., flag in 0u8..3) {
            let trace_id = if narrow {
                TraceId::new(trace & u128::from(u64::MAX), IdWidth::Bits64)
            } else {
                TraceId::new(trace, IdWidth::Bits128)
            };
            prop_assume!(trace_id.is_ok());
            let trace_id = trace_id.unwrap();
            let sampling = [Sampling::Sampled, Sampling::NotSampled, Sampling::Debug][usize::from(flag)];
            let header = render_single(trace_id, SpanId::new(span).unwrap(), sampling);
            prop_assert_eq!(
                parse_single(&header).unwrap(),
                B3::Context(SpanContext { trace_id, span_id: Some(SpanId::new(span).unwrap()), sampling })
            );
        }

        #[test]
        fn multi_round_trips(trace in 1u128.., span in 1u64.., sampled in any::<bool>()) {
            let trace_id = TraceId::new(trace, IdWidth::Bits128).unwrap();
            let trace_hex = trace_id.to_hex();
            let span_hex = SpanId::new(span).unwrap().to_string();
            let parsed = parse_multi(MultiHeaders {
                trace_id: Some(&trace_hex),
                span_id: Some(&span_hex),
                sampled: Some(render_sampled(sampled)),
                flags: None,
            }).unwrap().unwrap();
            let sampling = if sampled { Sampling::Sampled } else { Sampling::NotSampled };
            prop_assert_eq!(parsed, B3::Context(SpanContext { trace_id, span_id: Some(SpanId::new(span).unwrap()), sampling }));
        }

        #[test]
        fn arbitrary_text_never_panics(a in ".{0,70}", b in ".{0,20}", c in ".{0,5}") {
            _ = parse_single(&a);
            _ = parse_multi(MultiHeaders { trace_id: Some(&a), span_id: Some(&b), sampled: Some(&c), flags: Some(&c) });
        }
    }
}
