//! The request headers the filter looks at, picked out of one header-map read.

use meshray_core::propagation::{self, PropagationHeaders};
use meshray_core::segment::HttpRequest;

use crate::config::FilterConfig;
use crate::host::Host;

/// Marks the filter's own posts to the relay, so a sidecar in front of the
/// relay (should the WasmPlugin select it) does not trace them.
pub const BATCH_MARKER_HEADER: &str = "x-meshray-batch";

/// The request headers the filter looks at, from one header-map read.
#[derive(Debug, Default)]
pub(crate) struct SeenHeaders {
    /// The propagation headers, raw.
    pub propagation: PropagationHeaders,
    /// Propagation headers whose value is not UTF-8 (counted as malformed).
    pub non_utf8_propagation: usize,
    /// Which propagation headers the request carries, readable or not.
    pub present: PresentHeaders,
    /// `:method`, for `http.request.method`.
    pub method: Option<String>,
    /// `:scheme`, `:authority` and `:path` make `http.request.url`; the
    /// authority also names the remote of passthrough and unknown clusters.
    pub scheme: Option<String>,
    /// See `scheme`.
    pub authority: Option<String>,
    /// See `scheme`.
    pub path: Option<String>,
    /// `user-agent`.
    pub user_agent: Option<String>,
    /// `x-forwarded-for`: its first hop is the client's address.
    pub forwarded_for: Option<String>,
    /// The request is one of the filter's own posts.
    pub batch_marker: bool,
    /// `content-type: application/grpc*`.
    pub is_grpc: bool,
    /// Headers named in `annotate_headers`, with their values.
    pub annotations: Vec<(String, String)>,
}

impl SeenHeaders {
    /// Reads the request's header map once; an unreadable map reads as empty,
    /// except that every propagation header counts as carried (it may be: a write
    /// then replaces it rather than adding a second one).
    /// The values the filter keeps are taken from the map read, not copied.
    pub fn read(host: &impl Host, config: &FilterConfig) -> Self {
        let mut seen = Self::default();
        let Ok(pairs) = host.request_headers() else {
            seen.present = PresentHeaders::ALL;
            return seen;
        };
        for (name, value) in pairs {
            let propagation_bit = PresentHeaders::bit(&name);
            seen.present.0 |= propagation_bit;
            let text = match String::from_utf8(value) {
                Ok(text) => text,
                Err(_) => {
                    if propagation_bit != 0 {
                        seen.non_utf8_propagation += 1;
                    }
                    continue;
                }
            };
            if config.annotate_headers.contains(&name) {
                seen.annotations.push((name.clone(), text.clone()));
            }
            match name.as_str() {
                ":method" => seen.method = Some(text),
                ":scheme" => seen.scheme = Some(text),
                ":authority" => seen.authority = Some(text),
                ":path" => seen.path = Some(text),
                "user-agent" => seen.user_agent = Some(text),
                "x-forwarded-for" => seen.forwarded_for = Some(text),
                BATCH_MARKER_HEADER => seen.batch_marker = true,
                "content-type" => seen.is_grpc = text.starts_with("application/grpc"),
                other => {
                    seen.propagation.offer(other, text);
                }
            }
        }
        seen
    }

    /// `http.request` from what the headers say (the peer address, known only
    /// from a property, is filled in at log time when `x-forwarded-for` is absent).
    pub fn take_request(&mut self) -> HttpRequest {
        let url = match (&self.authority, &self.path) {
            (Some(authority), Some(path)) => {
                let scheme = self.scheme.as_deref().unwrap_or("http");
                let mut url =
                    String::with_capacity(scheme.len() + 3 + authority.len() + path.len());
                url.push_str(scheme);
                url.push_str("://");
                url.push_str(authority);
                url.push_str(path);
                Some(url)
            }
            _ => None,
        };
        let client_ip = self
            .forwarded_for
            .as_deref()
            .and_then(|xff| xff.split(',').next())
            .map(|ip| ip.trim().to_owned())
            .filter(|ip| !ip.is_empty());
        HttpRequest {
            method: self.method.take(),
            url,
            user_agent: self.user_agent.take(),
            x_forwarded_for: client_ip.is_some(),
            client_ip,
        }
    }
}

/// The propagation headers a request carries (one bit per name), so a header
/// it lacks is added rather than replaced: a replace makes Envoy look for the
/// entry first, through the whole header map.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PresentHeaders(u8);

impl PresentHeaders {
    /// Every propagation header, for a request whose headers could not be read.
    const ALL: Self = Self(u8::MAX);

    /// The bit of propagation header `name`; 0 for any other header.
    fn bit(name: &str) -> u8 {
        match name {
            propagation::X_AMZN_TRACE_ID => 1,
            propagation::TRACEPARENT => 1 << 1,
            propagation::B3 => 1 << 2,
            propagation::X_B3_TRACEID => 1 << 3,
            propagation::X_B3_SPANID => 1 << 4,
            propagation::X_B3_SAMPLED => 1 << 5,
            propagation::X_B3_FLAGS => 1 << 6,
            propagation::X_B3_PARENTSPANID => 1 << 7,
            _ => 0,
        }
    }

    /// Whether the request carries `name`, which must be a propagation header
    /// (any other name reads as carried, so it is replaced, never added twice).
    pub fn contains(self, name: &str) -> bool {
        match Self::bit(name) {
            0 => true,
            bit => self.0 & bit != 0,
        }
    }
}
