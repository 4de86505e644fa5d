//! Trace context propagation: reading the formats a request may carry and the
//! minimal set of header writes that make the next hop name our document as parent.
//!
//! # Precedence
//! When several formats are present, the first valid one in this order decides
//! the trace and parent: `x-amzn-trace-id`, `traceparent`, `b3`, `x-b3-*`.
//! `x-amzn-trace-id` leads because only meshray and X-Ray SDKs write it: Envoy's
//! own Zipkin tracer rewrites `x-b3-*` at the router, and an AWS load balancer's
//! `Root=` must become the trace id. The sampling decision is the leading
//! format's, or else the first explicit decision in any other format.
//!
//! # What is written
//! Every format in the `propagate` set ([`Formats`], default all four) carries
//! our document as parent, added when it did not arrive: an app that forwards
//! only `traceparent` or only B3 still passes the trace on, and a context that
//! came only in `x-amzn-trace-id` (an AWS load balancer) reaches apps that do
//! not forward that header. Formats that arrived valid are always rewritten
//! with the new parent. `x-b3-parentspanid` names the span our document
//! descends from.
//!
//! A malformed header is treated as absent and reported in
//! [`Extracted::malformed`]; it is never rewritten unless meshray would add that
//! header anyway.

pub mod b3;
pub mod w3c;
pub mod xray;

use crate::ids::{SpanId, TraceId};

/// `x-amzn-trace-id`.
pub const X_AMZN_TRACE_ID: &str = "x-amzn-trace-id";
/// W3C `traceparent`.
pub const TRACEPARENT: &str = "traceparent";
/// B3 single header.
pub const B3: &str = "b3";
/// B3 multi: trace id.
pub const X_B3_TRACEID: &str = "x-b3-traceid";
/// B3 multi: span id.
pub const X_B3_SPANID: &str = "x-b3-spanid";
/// B3 multi: sampling decision.
pub const X_B3_SAMPLED: &str = "x-b3-sampled";
/// B3 multi: debug flag.
pub const X_B3_FLAGS: &str = "x-b3-flags";
/// B3 multi: the parent of the span in `x-b3-spanid` (written, never read).
pub const X_B3_PARENTSPANID: &str = "x-b3-parentspanid";

/// A sampling decision as propagated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// Record this trace.
    Sampled,
    /// Do not record this trace.
    NotSampled,
    /// Record it, forced (B3 debug flag).
    Debug,
    /// No decision yet: the receiver decides.
    Deferred,
}

impl Sampling {
    /// The explicit decision, if any (debug counts as sampled).
    pub fn decision(self) -> Option<bool> {
        match self {
            Sampling::Sampled | Sampling::Debug => Some(true),
            Sampling::NotSampled => Some(false),
            Sampling::Deferred => None,
        }
    }
}

/// A propagation format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `x-amzn-trace-id`.
    Xray,
    /// W3C `traceparent`.
    W3c,
    /// B3 single `b3`.
    B3Single,
    /// B3 multi `x-b3-*`.
    B3Multi,
}

impl Format {
    /// A short label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Format::Xray => "xray",
            Format::W3c => "w3c",
            Format::B3Single => "b3",
            Format::B3Multi => "b3multi",
        }
    }
}

/// The trace, parent span and decision one format carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanContext {
    /// The trace.
    pub trace_id: TraceId,
    /// The caller's span: our document's parent.
    pub span_id: Option<SpanId>,
    /// The caller's decision.
    pub sampling: Sampling,
}

/// Why a header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {header} header: {reason}")]
pub struct CodecError {
    /// The header (or header field) at fault.
    pub header: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl CodecError {
    /// Builds an error.
    pub fn new(header: &'static str, reason: String) -> Self {
        Self { header, reason }
    }
}

/// The raw propagation headers of one request, picked out of its header map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PropagationHeaders {
    /// `x-amzn-trace-id`.
    pub xray: Option<String>,
    /// `traceparent`.
    pub traceparent: Option<String>,
    /// `b3`.
    pub b3: Option<String>,
    /// `x-b3-traceid`.
    pub b3_trace_id: Option<String>,
    /// `x-b3-spanid`.
    pub b3_span_id: Option<String>,
    /// `x-b3-sampled`.
    pub b3_sampled: Option<String>,
    /// `x-b3-flags`.
    pub b3_flags: Option<String>,
    /// `x-b3-parentspanid` (only to write it when it changes).
    pub b3_parent_span_id: Option<String>,
}

impl PropagationHeaders {
    /// Picks the propagation headers out of a request's header pairs (names
    /// lowercase, as Envoy hands them over). The first value of a repeated header wins.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut headers = Self::default();
        for (name, value) in pairs {
            if let Some(slot) = headers.slot(name)
                && slot.is_none()
            {
                *slot = Some(value.to_owned());
            }
        }
        headers
    }

    /// Keeps `value` (taken, not copied) as header `name`'s when `name` is a
    /// propagation header not seen yet: the first value of a repeated header wins,
    /// as in [`PropagationHeaders::from_pairs`]. Whether `name` is a propagation header.
    pub fn offer(&mut self, name: &str, value: String) -> bool {
        match self.slot(name) {
            Some(slot) => {
                if slot.is_none() {
                    *slot = Some(value);
                }
                true
            }
            None => false,
        }
    }

    /// Where header `name` is kept, if it is a propagation header.
    fn slot(&mut self, name: &str) -> Option<&mut Option<String>> {
        Some(match name {
            X_AMZN_TRACE_ID => &mut self.xray,
            TRACEPARENT => &mut self.traceparent,
            B3 => &mut self.b3,
            X_B3_TRACEID => &mut self.b3_trace_id,
            X_B3_SPANID => &mut self.b3_span_id,
            X_B3_SAMPLED => &mut self.b3_sampled,
            X_B3_FLAGS => &mut self.b3_flags,
            X_B3_PARENTSPANID => &mut self.b3_parent_span_id,
            _ => return None,
        })
    }
}

/// What the request's headers say, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extracted {
    /// The leading valid context and its format.
    pub context: Option<(Format, SpanContext)>,
    /// The decision: the leading context's, else the first explicit one.
    pub sampling: Option<bool>,
    /// Parsed `x-amzn-trace-id`, kept for its extra fields.
    pub xray: Option<xray::XrayHeader>,
    /// Parsed `traceparent`, kept for its flags.
    pub traceparent: Option<w3c::TraceParent>,
    /// Parsed `b3` context.
    pub b3_single: Option<SpanContext>,
    /// Parsed `x-b3-*` context.
    pub b3_multi: Option<SpanContext>,
    /// Headers that were present but malformed (treated as absent).
    pub malformed: Vec<(Format, CodecError)>,
    /// Whether a format apps forward (`traceparent`, `b3`, `x-b3-*`) carried an explicit decision.
    pub forwarded_decision: bool,
}

impl Extracted {
    /// The trace id of the leading context.
    pub fn trace_id(&self) -> Option<TraceId> {
        self.context.map(|(_, ctx)| ctx.trace_id)
    }

    /// The caller's span id in the leading context.
    pub fn parent_span(&self) -> Option<SpanId> {
        self.context.and_then(|(_, ctx)| ctx.span_id)
    }

    /// The format that decided the trace.
    pub fn format(&self) -> Option<Format> {
        self.context.map(|(format, _)| format)
    }

    /// Whether a format apps forward (`traceparent`, `b3`, `x-b3-*`) arrived valid.
    pub fn has_forwarded_context(&self) -> bool {
        self.traceparent.is_some() || self.b3_single.is_some() || self.b3_multi.is_some()
    }
}

/// Reads every format present in `headers`, in precedence order.
pub fn extract(headers: &PropagationHeaders) -> Extracted {
    let mut out = Extracted::default();
    let mut hints: Vec<Sampling> = Vec::new();
    if let Some(value) = &headers.xray {
        match xray::parse(value) {
            Ok(parsed) => {
                hints.push(parsed.context.sampling);
                out.context.get_or_insert((Format::Xray, parsed.context));
                out.xray = Some(parsed);
            }
            Err(e) => out.malformed.push((Format::Xray, e)),
        }
    }
    let xray_hints = hints.len();
    if let Some(value) = &headers.traceparent {
        match w3c::parse(value) {
            Ok(parsed) => {
                hints.push(parsed.context.sampling);
                out.context.get_or_insert((Format::W3c, parsed.context));
                out.traceparent = Some(parsed);
            }
            Err(e) => out.malformed.push((Format::W3c, e)),
        }
    }
    if let Some(value) = &headers.b3 {
        match b3::parse_single(value) {
            Ok(b3::B3::Context(ctx)) => {
                hints.push(ctx.sampling);
                out.context.get_or_insert((Format::B3Single, ctx));
                out.b3_single = Some(ctx);
            }
            Ok(b3::B3::SamplingOnly(sampling)) => hints.push(sampling),
            Err(e) => out.malformed.push((Format::B3Single, e)),
        }
    }
    let multi = b3::MultiHeaders {
        trace_id: headers.b3_trace_id.as_deref(),
        span_id: headers.b3_span_id.as_deref(),
        sampled: headers.b3_sampled.as_deref(),
        flags: headers.b3_flags.as_deref(),
    };
    match b3::parse_multi(multi) {
        Some(Ok(b3::B3::Context(ctx))) => {
            hints.push(ctx.sampling);
            out.context.get_or_insert((Format::B3Multi, ctx));
            out.b3_multi = Some(ctx);
        }
        Some(Ok(b3::B3::SamplingOnly(sampling))) => hints.push(sampling),
        Some(Err(e)) => out.malformed.push((Format::B3Multi, e)),
        None => {}
    }
    out.sampling = hints.iter().find_map(|s| s.decision());
    out.forwarded_decision = hints[xray_hints..].iter().any(|s| s.decision().is_some());
    out
}

/// One header to set on the request.
pub type HeaderWrite = (&'static str, String);

/// The formats meshray writes on every traced request, adding those that did
/// not arrive (the `propagate` setting). A format that arrived is always
/// updated, listed or not: left alone it would name the caller's span, and the
/// next hop would hang under the wrong parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Formats {
    /// `x-amzn-trace-id`.
    pub xray: bool,
    /// W3C `traceparent`.
    pub w3c: bool,
    /// `b3` single header.
    pub b3_single: bool,
    /// `x-b3-*` headers.
    pub b3_multi: bool,
}

impl Formats {
    /// All four formats (the default).
    pub const ALL: Self = Self {
        xray: true,
        w3c: true,
        b3_single: true,
        b3_multi: true,
    };

    /// No format: only those that arrived are updated.
    pub const NONE: Self = Self {
        xray: false,
        w3c: false,
        b3_single: false,
        b3_multi: false,
    };

    /// The set with `format` added.
    pub fn with(mut self, format: Format) -> Self {
        match format {
            Format::Xray => self.xray = true,
            Format::W3c => self.w3c = true,
            Format::B3Single => self.b3_single = true,
            Format::B3Multi => self.b3_multi = true,
        }
        self
    }
}

impl Default for Formats {
    fn default() -> Self {
        Self::ALL
    }
}

impl Format {
    /// Every format, in precedence order.
    pub const ALL: [Format; 4] = [Format::Xray, Format::W3c, Format::B3Single, Format::B3Multi];

    /// The name OpenTelemetry's `OTEL_PROPAGATORS` gives the format: `xray`,
    /// `tracecontext`, `b3`, `b3multi`.
    pub fn propagator_name(self) -> &'static str {
        match self {
            Format::Xray => "xray",
            Format::W3c => "tracecontext",
            Format::B3Single => "b3",
            Format::B3Multi => "b3multi",
        }
    }

    /// The format of a propagator name ([`Format::propagator_name`]).
    pub fn from_propagator_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.propagator_name() == name)
    }
}

/// What the next hop must see: our document as its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Injection {
    /// The trace.
    pub trace_id: TraceId,
    /// Our document: the next hop's parent (`x-b3-spanid`, …).
    pub span: SpanId,
    /// The span our document descends from (`x-b3-parentspanid`), if any.
    pub parent: Option<SpanId>,
    /// The sampling decision.
    pub sampled: bool,
}

/// The header writes that make the next hop see `injection.span` as its parent
/// (see [`Formats`] for which formats are written).
///
/// Only values that change are written. The `b3` single header and `x-b3-*`
/// keep the wire width of their trace id.
pub fn inject(
    extracted: &Extracted,
    headers: &PropagationHeaders,
    injection: Injection,
    formats: Formats,
) -> Vec<HeaderWrite> {
    let Injection {
        trace_id,
        span,
        parent,
        sampled,
    } = injection;
    let mut writes = Vec::with_capacity(6);
    if formats.xray || extracted.xray.is_some() {
        let extra = extracted.xray.as_ref().map_or("", |x| x.extra.as_str());
        push_if_changed(
            &mut writes,
            X_AMZN_TRACE_ID,
            headers.xray.as_deref(),
            xray::render(trace_id, span, sampled, extra),
        );
    }
    if formats.w3c || extracted.traceparent.is_some() {
        let flags = extracted.traceparent.map_or(0, |tp| tp.flags);
        push_if_changed(
            &mut writes,
            TRACEPARENT,
            headers.traceparent.as_deref(),
            w3c::render(trace_id, span, sampled, flags),
        );
    }
    if formats.b3_single || extracted.b3_single.is_some() {
        let received = extracted.b3_single.map(|ctx| ctx.sampling);
        let sampling = match (received, sampled) {
            (Some(Sampling::Debug), true) => Sampling::Debug,
            (_, true) => Sampling::Sampled,
            (_, false) => Sampling::NotSampled,
        };
        let id = extracted.b3_single.map_or(trace_id, |ctx| {
            same_trace_keeping_width(ctx.trace_id, trace_id)
        });
        push_if_changed(
            &mut writes,
            B3,
            headers.b3.as_deref(),
            b3::render_single(id, span, sampling),
        );
    }
    if formats.b3_multi || extracted.b3_multi.is_some() {
        let id = extracted.b3_multi.map_or(trace_id, |ctx| {
            same_trace_keeping_width(ctx.trace_id, trace_id)
        });
        push_if_changed(
            &mut writes,
            X_B3_TRACEID,
            headers.b3_trace_id.as_deref(),
            id.to_hex(),
        );
        push_if_changed(
            &mut writes,
            X_B3_SPANID,
            headers.b3_span_id.as_deref(),
            span.to_hex(),
        );
        if let Some(parent) = parent {
            push_if_changed(
                &mut writes,
                X_B3_PARENTSPANID,
                headers.b3_parent_span_id.as_deref(),
                parent.to_hex(),
            );
        }
        let debug = extracted
            .b3_multi
            .is_some_and(|ctx| ctx.sampling == Sampling::Debug);
        if !debug {
            let value = b3::render_sampled(sampled);
            if headers.b3_sampled.as_deref() != Some(value) {
                writes.push((X_B3_SAMPLED, value.to_owned()));
            }
        }
    }
    writes
}

/// For a request the caller marked unsampled, the write that carries the "no" to
/// the next hop when only `x-amzn-trace-id` (which mesh apps do not forward)
/// said so: `x-b3-sampled: 0`. Otherwise nothing: the request stays untouched.
pub fn carry_unsampled(extracted: &Extracted) -> Option<HeaderWrite> {
    (extracted.sampling == Some(false) && !extracted.forwarded_decision)
        .then(|| (X_B3_SAMPLED, b3::render_sampled(false).to_owned()))
}

/// `received` when it names the same trace as `chosen` (keeping its width), else `chosen`.
fn same_trace_keeping_width(received: TraceId, chosen: TraceId) -> TraceId {
    if received.value() == chosen.value() {
        received
    } else {
        chosen
    }
}

fn push_if_changed(
    writes: &mut Vec<HeaderWrite>,
    name: &'static str,
    current: Option<&str>,
    value: String,
) {
    if current != Some(value.as_str()) {
        writes.push((name, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn headers(pairs: &[(&str, &str)]) -> PropagationHeaders {
        PropagationHeaders::from_pairs(pairs.iter().copied())
    }

    /// Offering the values one by one keeps what picking them out of the pairs
    /// keeps: the first of a repeated header, nothing of other headers.
    #[test]
    fn offered_values_are_kept_as_picked_ones() {
        let pairs = [
            (":path", "/"),
            ("x-b3-traceid", "463ac35c9f6413ad"),
            ("b3", "463ac35c9f6413ad-a2fb4a1d1a96d312-1"),
            ("x-b3-traceid", "0000000000000001"),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            (
                "x-amzn-trace-id",
                "Root=1-5759e988-bd862e3fe1be46a994272793",
            ),
            ("x-b3-spanid", "a2fb4a1d1a96d312"),
            ("x-b3-sampled", "1"),
            ("x-b3-flags", "1"),
            ("x-b3-parentspanid", "0000000000000002"),
            ("user-agent", "curl/8"),
        ];
        let mut offered = PropagationHeaders::default();
        let taken: Vec<bool> = pairs
            .iter()
            .map(|(name, value)| offered.offer(name, (*value).to_owned()))
            .collect();
        assert_eq!(offered, headers(&pairs));
        assert_eq!(
            taken,
            [
                false, true, true, true, true, true, true, true, true, true, false
            ]
        );
    }

    /// Our span `span` in `trace_id`, descending from nothing.
    fn our_span(trace_id: TraceId, span: SpanId, sampled: bool) -> Injection {
        Injection {
            trace_id,
            span,
            parent: None,
            sampled,
        }
    }

    /// `propagate: ["xray"]`: x-amzn-trace-id always, the other formats only when
    /// they arrived (what meshray wrote for a forwarded context before `propagate`).
    const XRAY_ONLY: Formats = Formats {
        xray: true,
        ..Formats::NONE
    };

    const XRAY: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    const TRACEPARENT_VALUE: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn precedence_is_xray_then_w3c_then_b3_then_b3_multi() {
        let all = headers(&[
            ("x-b3-traceid", "463ac35c9f6413ad"),
            ("x-b3-spanid", "a2fb4a1d1a96d312"),
            ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
            ("traceparent", TRACEPARENT_VALUE),
            ("x-amzn-trace-id", XRAY),
        ]);
        assert_eq!(extract(&all).format(), Some(Format::Xray));
        let mut without = all.clone();
        without.xray = None;
        assert_eq!(extract(&without).format(), Some(Format::W3c));
        without.traceparent = None;
        assert_eq!(extract(&without).format(), Some(Format::B3Single));
        without.b3 = None;
        assert_eq!(extract(&without).format(), Some(Format::B3Multi));
        without.b3_trace_id = None;
        without.b3_span_id = None;
        assert_eq!(extract(&without).format(), None);
    }

    #[test]
    fn malformed_headers_are_skipped_and_reported() {
        let h = headers(&[
            ("x-amzn-trace-id", "Root=garbage"),
            ("traceparent", TRACEPARENT_VALUE),
        ]);
        let got = extract(&h);
        assert_eq!(got.format(), Some(Format::W3c));
        assert_eq!(got.malformed.len(), 1);
        assert_eq!(got.malformed[0].0, Format::Xray);
    }

    #[test]
    fn sampling_decisions_from_every_format() {
        type Headers = &'static [(&'static str, &'static str)];
        let cases: [(Headers, Option<bool>); 8] = [
            (&[("x-b3-sampled", "0")], Some(false)),
            (&[("b3", "0")], Some(false)),
            (
                &[("b3", "463ac35c9f6413ad-a2fb4a1d1a96d312-0")],
                Some(false),
            ),
            (
                &[(
                    "traceparent",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
                )],
                Some(false),
            ),
            (
                &[(
                    "x-amzn-trace-id",
                    "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0",
                )],
                Some(false),
            ),
            (
                &[
                    ("x-b3-traceid", "463ac35c9f6413ad"),
                    ("x-b3-spanid", "a2fb4a1d1a96d312"),
                    ("x-b3-sampled", "0"),
                    ("x-b3-flags", "1"),
                ],
                Some(true),
            ),
            (
                &[
                    (
                        "x-amzn-trace-id",
                        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?",
                    ),
                    ("x-b3-sampled", "1"),
                ],
                Some(true),
            ),
            (
                &[(
                    "x-amzn-trace-id",
                    "Root=1-5759e988-bd862e3fe1be46a994272793",
                )],
                None,
            ),
        ];
        for (pairs, expected) in cases {
            assert_eq!(extract(&headers(pairs)).sampling, expected, "{pairs:?}");
        }
    }

    #[test]
    fn root_injects_xray_w3c_and_b3_multi() {
        let h = PropagationHeaders::default();
        let ex = extract(&h);
        let trace = TraceId::mint(0x6000_0000, 42);
        let span = SpanId::new(7).unwrap();
        let root_formats = Formats {
            b3_single: false,
            ..Formats::ALL
        };
        let writes = inject(&ex, &h, our_span(trace, span, true), root_formats);
        let names: Vec<_> = writes.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                X_AMZN_TRACE_ID,
                TRACEPARENT,
                X_B3_TRACEID,
                X_B3_SPANID,
                X_B3_SAMPLED
            ]
        );
        let all = inject(&ex, &h, our_span(trace, span, true), Formats::ALL);
        assert_eq!(
            all.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            [
                X_AMZN_TRACE_ID,
                TRACEPARENT,
                B3,
                X_B3_TRACEID,
                X_B3_SPANID,
                X_B3_SAMPLED
            ]
        );
        assert_eq!(
            writes[0].1,
            "Root=1-60000000-00000000000000000000002a;Parent=0000000000000007;Sampled=1"
        );
        assert_eq!(
            writes[1].1,
            "00-6000000000000000000000000000002a-0000000000000007-01"
        );
    }

    #[test]
    fn forwarded_formats_get_only_their_parent_rewritten() {
        let h = headers(&[
            ("x-b3-traceid", "463ac35c9f6413ad"),
            ("x-b3-spanid", "a2fb4a1d1a96d312"),
            ("x-b3-sampled", "1"),
            ("b3", "463ac35c9f6413ad-a2fb4a1d1a96d312-1"),
        ]);
        let ex = extract(&h);
        let trace = ex.trace_id().unwrap();
        let span = SpanId::new(0xabc).unwrap();
        let writes = inject(&ex, &h, our_span(trace, span, true), XRAY_ONLY);
        assert_eq!(
            writes,
            vec![
                (
                    X_AMZN_TRACE_ID,
                    "Root=1-00000000-00000000463ac35c9f6413ad;Parent=0000000000000abc;Sampled=1"
                        .to_owned()
                ),
                (B3, "463ac35c9f6413ad-0000000000000abc-1".to_owned()),
                (X_B3_SPANID, "0000000000000abc".to_owned()),
            ]
        );
    }

    /// With the default `propagate` (all four), a request that came with only B3
    /// leaves with `traceparent` too, and `x-b3-parentspanid` names the span our
    /// document descends from.
    #[test]
    fn only_b3_arrived_adds_traceparent_and_the_b3_parent() {
        let h = headers(&[
            ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
            ("x-b3-spanid", "e457b5a2e4d86bd1"),
            ("x-b3-parentspanid", "05e3ac9a4f6e3b90"),
            ("x-b3-sampled", "1"),
        ]);
        let ex = extract(&h);
        let injection = Injection {
            trace_id: ex.trace_id().unwrap(),
            span: SpanId::new(0xabc).unwrap(),
            parent: ex.parent_span(),
            sampled: true,
        };
        let writes = inject(&ex, &h, injection, Formats::ALL);
        let value = |name: &str| {
            writes
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            value(TRACEPARENT),
            Some("00-80f198ee56343ba864fe8b2a57d3eff7-0000000000000abc-01")
        );
        assert_eq!(
            value(B3),
            Some("80f198ee56343ba864fe8b2a57d3eff7-0000000000000abc-1")
        );
        assert_eq!(value(X_B3_SPANID), Some("0000000000000abc"));
        assert_eq!(value(X_B3_PARENTSPANID), Some("e457b5a2e4d86bd1"));
        assert_eq!(value(X_B3_TRACEID), None, "unchanged");
        assert_eq!(value(X_B3_SAMPLED), None, "unchanged");
    }

    /// And a request that came with only `traceparent` leaves with B3 (single and multi).
    #[test]
    fn only_traceparent_arrived_adds_b3() {
        let h = headers(&[("traceparent", TRACEPARENT_VALUE)]);
        let ex = extract(&h);
        let injection = Injection {
            trace_id: ex.trace_id().unwrap(),
            span: SpanId::new(0xabc).unwrap(),
            parent: ex.parent_span(),
            sampled: true,
        };
        let writes = inject(&ex, &h, injection, Formats::ALL);
        let names: Vec<_> = writes.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                X_AMZN_TRACE_ID,
                TRACEPARENT,
                B3,
                X_B3_TRACEID,
                X_B3_SPANID,
                X_B3_PARENTSPANID,
                X_B3_SAMPLED
            ]
        );
        assert_eq!(writes[3].1, "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(writes[5].1, "b7ad6b7169203331");
        // Formats not listed and not arrived are not added.
        let only_w3c = inject(&ex, &h, injection, Formats::NONE.with(Format::W3c));
        assert_eq!(
            only_w3c.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            [TRACEPARENT]
        );
        assert_eq!(
            Format::from_propagator_name("tracecontext"),
            Some(Format::W3c)
        );
        assert_eq!(Format::from_propagator_name("w3c"), None);
    }

    #[test]
    fn an_unsampled_decision_only_in_xray_is_carried_in_b3() {
        let only_xray = headers(&[(
            "x-amzn-trace-id",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0",
        )]);
        assert_eq!(
            carry_unsampled(&extract(&only_xray)),
            Some((X_B3_SAMPLED, "0".to_owned()))
        );
        let also_b3 = headers(&[
            (
                "x-amzn-trace-id",
                "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0",
            ),
            ("x-b3-sampled", "0"),
        ]);
        assert_eq!(carry_unsampled(&extract(&also_b3)), None);
        for pairs in [
            &[("b3", "0")][..],
            &[(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
            )][..],
        ] {
            assert_eq!(
                carry_unsampled(&extract(&headers(pairs))),
                None,
                "{pairs:?}"
            );
        }
        assert_eq!(
            carry_unsampled(&extract(&headers(&[("x-b3-sampled", "1")]))),
            None
        );
    }

    #[test]
    fn next_hop_reads_back_what_was_injected() {
        // An ALB root id with no parent: the next hop must see the same trace and our span.
        let h = headers(&[(
            "x-amzn-trace-id",
            "Self=1-67891234-12456789abcdef012345678a;Root=1-67891233-abcdef012345678912345678",
        )]);
        let ex = extract(&h);
        let span = SpanId::new(99).unwrap();
        let writes = inject(
            &ex,
            &h,
            our_span(ex.trace_id().unwrap(), span, true),
            Formats::ALL,
        );
        // Apps forward B3 and traceparent, not x-amzn-trace-id: those alone must carry the trace.
        let next = PropagationHeaders::from_pairs(
            writes
                .iter()
                .filter(|(n, _)| *n != X_AMZN_TRACE_ID)
                .map(|(n, v)| (*n, v.as_str())),
        );
        let got = extract(&next);
        assert_eq!(got.trace_id(), ex.trace_id());
        assert_eq!(got.parent_span(), Some(span));
        assert_eq!(got.sampling, Some(true));
    }

    proptest! {
        #[test]
        fn arbitrary_header_values_never_panic(values in proptest::collection::vec(".{0,80}", 7)) {
            let names = [X_AMZN_TRACE_ID, TRACEPARENT, B3, X_B3_TRACEID, X_B3_SPANID, X_B3_SAMPLED, X_B3_FLAGS];
            let h = PropagationHeaders::from_pairs(names.iter().copied().zip(values.iter().map(String::as_str)));
            let ex = extract(&h);
            if let Some(trace) = ex.trace_id() {
                _ = inject(&ex, &h, our_span(trace, SpanId::new(1).unwrap(), true), Formats::ALL);
            }
        }

        #[test]
        fn injected_headers_round_trip(epoch in any::<u32>(), random in any::<u128>(), span in 1u64.., sampled in any::<bool>()) {
            let trace = TraceId::mint(epoch, random);
            let span = SpanId::new(span).unwrap();
            let empty = PropagationHeaders::default();
            let writes = inject(&extract(&empty), &empty, our_span(trace, span, sampled), Formats::ALL);
            let next = PropagationHeaders::from_pairs(writes.iter().map(|(n, v)| (*n, v.as_str())));
            let got = extract(&next);
            prop_assert!(got.malformed.is_empty());
            prop_assert_eq!(got.trace_id(), Some(trace));
            prop_assert_eq!(got.parent_span(), Some(span));
            prop_assert_eq!(got.sampling, Some(sampled));
            prop_assert_eq!(got.b3_multi.map(|c| c.trace_id), Some(trace));
            prop_assert_eq!(got.b3_single.map(|c| c.trace_id), Some(trace));
            prop_assert_eq!(got.traceparent.map(|t| t.context.trace_id), Some(trace));
        }
    }
}
