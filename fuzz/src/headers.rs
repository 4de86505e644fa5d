//! Targets for the header codecs and the cluster-name classification (meshray-core).

use meshray_core::cluster::{self, Direction};
use meshray_core::ids::{SpanId, TraceId};
use meshray_core::propagation::{self, Formats, Injection, PropagationHeaders};

use crate::{as_header_value, header_lines, is_header_value};

/// The span the target injects as the new parent; any valid id does.
const OUR_SPAN: u64 = 0x0123_4567_89ab_cdef;
/// The trace the target mints when no context arrived.
const MINTED_TRACE: u128 = 0x6900_0000_0000_0000_0000_0000_0000_0042;

/// `name: value` lines as request headers: extract every format, inject a new span in
/// all four, and read the result back.
///
/// Checks: every written value is a valid header value; every format written parses
/// again (no malformed header created); the re-read context names our span as parent
/// and keeps the trace (the low 64 bits, which every width carries).
pub fn propagation(data: &[u8]) {
    let lines: Vec<(String, String)> = header_lines(data)
        .map(|(name, value)| {
            (
                String::from_utf8_lossy(name).to_ascii_lowercase(),
                String::from_utf8_lossy(&as_header_value(value)).into_owned(),
            )
        })
        .collect();
    let headers =
        PropagationHeaders::from_pairs(lines.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let extracted = propagation::extract(&headers);
    let _ = propagation::carry_unsampled(&extracted);
    let Ok(span) = SpanId::new(OUR_SPAN) else {
        return;
    };
    let Ok(minted) = TraceId::new(MINTED_TRACE, meshray_core::ids::IdWidth::Bits128) else {
        return;
    };
    let trace_id = extracted.trace_id().unwrap_or(minted);
    let injection = Injection {
        trace_id,
        span,
        parent: extracted.parent_span(),
        sampled: extracted.sampling.unwrap_or(true),
    };
    let writes = propagation::inject(&extracted, &headers, injection, Formats::ALL);
    for (name, value) in &writes {
        assert!(
            is_header_value(value.as_bytes()),
            "{name}: {value:?} is not a header value"
        );
    }

    // The next hop's view: our writes replace what arrived.
    let mut next: Vec<(&str, &str)> = writes.iter().map(|(n, v)| (*n, v.as_str())).collect();
    for (name, value) in &lines {
        if !writes.iter().any(|(written, _)| written == name) {
            next.push((name.as_str(), value.as_str()));
        }
    }
    let reread = propagation::extract(&PropagationHeaders::from_pairs(next));
    for (format, error) in &reread.malformed {
        let wrote_it = writes.iter().any(|(n, _)| format_writes(*format, n));
        assert!(
            !wrote_it,
            "meshray wrote a {format:?} header it cannot read back: {error}"
        );
    }
    let context = reread.context.map(|(_, ctx)| ctx);
    assert_eq!(
        context.and_then(|ctx| ctx.span_id),
        Some(span),
        "the next hop does not see our span as its parent: {writes:?}"
    );
    let low_64 = |id: TraceId| id.value() & u128::from(u64::MAX);
    assert_eq!(
        context.map(|ctx| low_64(ctx.trace_id)),
        Some(low_64(trace_id)),
        "the next hop sees another trace: {writes:?}"
    );
}

/// Whether header `name` belongs to `format`.
fn format_writes(format: propagation::Format, name: &str) -> bool {
    use propagation::Format;
    match format {
        Format::Xray => name == "x-amzn-trace-id",
        Format::W3c => name == "traceparent",
        Format::B3Single => name == "b3",
        Format::B3Multi => name.starts_with("x-b3-"),
    }
}

/// First line a cluster name (`xds.cluster_name`), second line the `:authority`,
/// third line a listener direction digit.
///
/// Checks: an outbound classification names a non-empty remote service without
/// control characters (it becomes an X-Ray node name); an inbound one names none.
pub fn cluster_names(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let name = lines.next();
    let authority = lines.next();
    let direction = lines.next().and_then(|d| d.trim().parse::<i64>().ok());
    let classified = cluster::classify(name, || direction, authority);
    match classified.direction {
        Direction::Outbound => {
            if let Some(remote) = &classified.remote {
                assert!(
                    !remote.name.is_empty(),
                    "empty remote name for {name:?} / {authority:?}"
                );
            }
        }
        Direction::Inbound => assert!(classified.remote.is_none()),
    }
    if let Some(authority) = authority {
        let (host, port) = cluster::split_authority(authority);
        assert!(host.len() <= authority.len());
        assert!(port.is_none() || authority.contains(':'));
    }
}
