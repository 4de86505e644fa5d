//! meshray-fuzz: one fuzz target per parser meshray exposes to the network or to
//! its operators, as plain functions of the input bytes.
//!
//! Each target feeds the bytes through the real code path and checks what must hold
//! for *any* input, beyond "does not panic":
//! - [`propagation`]: headers a sidecar forwards are valid header values and parse
//!   back to the trace they name;
//! - [`cluster_names`]: classification of any cluster name and `:authority`;
//! - [`plugin_config`]: a refused `pluginConfig` always lists at least one problem;
//! - [`filter_request`]: a whole request through the filter with the scripted host —
//!   the filter never writes an invalid header and every document it emits is one the
//!   relay accepts;
//! - [`segments`], [`daemon_datagram`]: the relay's `POST /v1/segments` (through its
//!   router) and the daemon's UDP frames — never a 5xx, every document accounted for;
//! - [`zipkin`], [`otlp_protobuf`], [`otlp_json`]: Envoy's own tracers' payloads at
//!   `POST /api/v2/spans` and `POST /v1/traces` — never a 5xx, valid documents queued.
//!
//! [`TARGETS`] lists them for the libFuzzer binaries (`fuzz/libfuzzer`, nightly,
//! `make fuzz`) and for the corpus replay (`tests/corpus.rs`, stable, `make test`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod filter;
mod headers;
mod relay;

pub use filter::{filter_request, plugin_config};
pub use headers::{cluster_names, propagation};
pub use relay::{daemon_datagram, otlp_json, otlp_protobuf, segments, zipkin};

/// A fuzz target: panics when an invariant breaks, returns otherwise.
pub type Target = fn(&[u8]);

/// Every target by the name of its libFuzzer binary and corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("propagation", propagation),
    ("cluster_names", cluster_names),
    ("plugin_config", plugin_config),
    ("filter_request", filter_request),
    ("segments", segments),
    ("daemon_datagram", daemon_datagram),
    ("zipkin", zipkin),
    ("otlp_protobuf", otlp_protobuf),
    ("otlp_json", otlp_json),
];

/// Splits fuzz input into `name: value` lines, the text form the header-shaped
/// targets read (so seeds are readable and real requests can be pasted in).
/// A line without `": "` is a name with an empty value.
pub(crate) fn header_lines(data: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    data.split(|&b| b == b'\n').map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match line.windows(2).position(|w| w == b": ") {
            Some(at) => (&line[..at], &line[at + 2..]),
            None => (line, &b""[..]),
        }
    })
}

/// Whether `value` may be sent as an HTTP header value (RFC 9110 field-value: no
/// control characters but tab; Envoy refuses CR, LF and NUL).
pub(crate) fn is_header_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Makes `value` a header value Envoy could have handed over: control characters
/// become spaces. The targets only feed the filter what a real proxy can deliver.
pub(crate) fn as_header_value(value: &[u8]) -> Vec<u8> {
    value
        .iter()
        .map(|&b| {
            if b == b'\t' || (b >= 0x20 && b != 0x7f) {
                b
            } else {
                b' '
            }
        })
        .collect()
}
