//! `x-amzn-trace-id`: `Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1`.
//!
//! AWS load balancers add `Root=` (and `Self=`) before the mesh; X-Ray SDKs add
//! `Parent=` and `Sampled=`, sometimes `Lineage=`. Fields other than `Root`,
//! `Parent`, `Sampled` and `Self` are kept when the header is rewritten.

use super::{CodecError, Sampling, SpanContext};
use crate::ids::{IdError, SpanId, TraceId, XrayTraceId, push_hex};

/// A parsed `x-amzn-trace-id` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XrayHeader {
    /// Trace, parent and sampling.
    pub context: SpanContext,
    /// Other `key=value` fields, `;`-joined, kept on rewrite.
    pub extra: String,
}

/// Parses the header.
///
/// # Errors
/// [`CodecError`] when `Root` is missing or not an X-Ray id, or `Parent` is not 16 hex digits.
pub fn parse(value: &str) -> Result<XrayHeader, CodecError> {
    let mut root = None;
    let mut parent = None;
    let mut sampling = Sampling::Deferred;
    let mut extra = String::new();
    for field in value.split(';').map(str::trim).filter(|f| !f.is_empty()) {
        let (key, val) = field.split_once('=').ok_or_else(|| {
            CodecError::new("x-amzn-trace-id", format!("field without '=': {field:?}"))
        })?;
        match key.trim() {
            k if k.eq_ignore_ascii_case("Root") => {
                let xray: XrayTraceId = val
                    .trim()
                    .parse()
                    .map_err(|e: IdError| CodecError::new("x-amzn-trace-id Root", e.to_string()))?;
                root = Some(xray.to_trace_id());
            }
            k if k.eq_ignore_ascii_case("Parent") => {
                parent = Some(
                    SpanId::from_hex(val.trim())
                        .map_err(|e| CodecError::new("x-amzn-trace-id Parent", e.to_string()))?,
                );
            }
            k if k.eq_ignore_ascii_case("Sampled") => {
                sampling = match val.trim() {
                    "1" => Sampling::Sampled,
                    "0" => Sampling::NotSampled,
                    _ => Sampling::Deferred,
                };
            }
            k if k.eq_ignore_ascii_case("Self") => {}
            _ => {
                if !extra.is_empty() {
                    extra.push(';');
                }
                extra.push_str(field);
            }
        }
    }
    let trace_id =
        root.ok_or_else(|| CodecError::new("x-amzn-trace-id", "no Root= field".to_owned()))?;
    Ok(XrayHeader {
        context: SpanContext {
            trace_id,
            span_id: parent,
            sampling,
        },
        extra,
    })
}

/// Renders the header naming `span` as parent. The trace id's high 32 bits
/// become the X-Ray epoch part, so a W3C/B3 id minted by meshray and the X-Ray
/// id are the same trace; a foreign id keeps its raw bits (64-bit ids left-padded).
pub fn render(trace_id: TraceId, span: SpanId, sampled: bool, extra: &str) -> String {
    let mut out = String::with_capacity(80 + extra.len());
    out.push_str("Root=1-");
    push_hex(&mut out, trace_id.value() >> 96, 8);
    out.push('-');
    push_hex(&mut out, trace_id.value(), 24);
    out.push_str(";Parent=");
    push_hex(&mut out, u128::from(span.value()), 16);
    out.push_str(if sampled { ";Sampled=1" } else { ";Sampled=0" });
    if !extra.is_empty() {
        out.push(';');
        out.push_str(extra);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_sdk_and_load_balancer_headers() {
        let sdk =
            parse("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
                .unwrap();
        assert_eq!(
            sdk.context.trace_id.to_hex(),
            "5759e988bd862e3fe1be46a994272793"
        );
        assert_eq!(sdk.context.span_id.unwrap().to_string(), "53995c3f42cd8ad8");
        assert_eq!(sdk.context.sampling, Sampling::Sampled);

        let alb = parse(
            "Self=1-67891234-12456789abcdef012345678a;Root=1-67891233-abcdef012345678912345678",
        )
        .unwrap();
        assert_eq!(
            alb.context.trace_id.to_hex(),
            "67891233abcdef012345678912345678"
        );
        assert_eq!(alb.context.span_id, None);
        assert_eq!(alb.context.sampling, Sampling::Deferred);
        assert_eq!(alb.extra, "");

        let lineage =
            parse("Root=1-5759e988-bd862e3fe1be46a994272793; Sampled=0; Lineage=a87bd80c:1")
                .unwrap();
        assert_eq!(lineage.context.sampling, Sampling::NotSampled);
        assert_eq!(lineage.extra, "Lineage=a87bd80c:1");
    }

    #[test]
    fn rejects_malformed_headers() {
        for bad in [
            "",
            "Parent=53995c3f42cd8ad8",
            "Root=1-5759e988-bd862e3fe1be46a99427279",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=xyz",
            "garbage",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn renders_foreign_ids_with_their_raw_bits() {
        let id = TraceId::from_hex("463ac35c9f6413ad").unwrap();
        let span = SpanId::new(1).unwrap();
        assert_eq!(
            render(id, span, true, ""),
            "Root=1-00000000-00000000463ac35c9f6413ad;Parent=0000000000000001;Sampled=1"
        );
    }

    proptest! {
        #[test]
        fn round_trips(epoch in any::<u32>(), random in any::<u128>(), span in 1u64.., sampled in any::<bool>()) {
            let trace = TraceId::mint(epoch, random);
            let header = render(trace, SpanId::new(span).unwrap(), sampled, "Lineage=a:1");
            let parsed = parse(&header).unwrap();
            prop_assert_eq!(parsed.context.trace_id, trace);
            prop_assert_eq!(parsed.context.span_id, Some(SpanId::new(span).unwrap()));
            prop_assert_eq!(parsed.context.sampling, if sampled { Sampling::Sampled } else { Sampling::NotSampled });
            prop_assert_eq!(parsed.extra, "Lineage=a:1");
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,120}") {
            _ = parse(&text);
        }
    }
}
