//! Envoy's response flags as the short codes users know from access logs (`UF`, `UH`, `NR`,
//! `URX`, …) and what each means for X-Ray's `fault` / `throttle`, in both forms Envoy
//! gives them: the bit vector a filter reads from `response.flags` ([`ResponseFlags`]) and
//! the `response_flags` tag its tracers report, comma separated, `-` for none
//! ([`FlagCodes`]). One table of codes serves both.

/// The codes in bit order (Envoy's `CoreResponseFlag`).
pub const CODES: [&str; 30] = [
    "LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE", "DC",
    "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF", "DO", "DR",
    "UDO",
];

/// What each code means, in [`CODES`] order (Envoy's access-log documentation).
const DESCRIPTIONS: [&str; 30] = [
    "local service failed health check",
    "no healthy upstream hosts",
    "upstream request timeout",
    "connection local reset",
    "upstream remote reset",
    "upstream connection failure",
    "upstream connection termination",
    "upstream overflow (circuit breaking)",
    "no route configured",
    "request delayed by fault injection",
    "request aborted by fault injection",
    "rate limited locally",
    "unauthorized by external authorization",
    "rate limit service error",
    "downstream connection termination",
    "upstream retry limit exceeded",
    "stream idle timeout",
    "invalid request headers",
    "downstream protocol error",
    "upstream max stream duration reached",
    "response served from cache",
    "no filter config found",
    "request or connection duration timeout",
    "upstream protocol error",
    "no cluster found",
    "terminated by the overload manager",
    "DNS resolution failure",
    "dropped by overload",
    "downstream remote reset",
    "upstream drop overload",
];

/// Codes that mean the proxy or the upstream failed: X-Ray `fault`.
pub const FAULT_CODES: [&str; 17] = [
    "LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "URX", "SI", "UMSDR", "DT", "UPE", "NC",
    "OM", "DF",
];

/// Codes that mean the request was rate limited: X-Ray `throttle`.
pub const THROTTLE_CODES: [&str; 2] = ["RL", "RLSE"];

/// Whether `code` means a failure of the proxy or upstream.
pub fn is_fault_code(code: &str) -> bool {
    FAULT_CODES.contains(&code)
}

/// Whether `code` means rate limiting.
pub fn is_throttle_code(code: &str) -> bool {
    THROTTLE_CODES.contains(&code)
}

/// Response flags as Envoy reports them to a filter (`response.flags`): a bit vector in
/// [`CODES`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResponseFlags(pub u64);

impl ResponseFlags {
    /// The codes set, in bit order.
    pub fn codes(self) -> impl Iterator<Item = &'static str> {
        CODES
            .iter()
            .enumerate()
            .filter(move |(bit, _)| self.0 & (1u64 << bit) != 0)
            .map(|(_, code)| *code)
    }

    /// The codes joined by commas, as Envoy's access log prints them; `None` when no flag is set.
    pub fn to_label(self) -> Option<String> {
        (self.0 != 0).then(|| self.codes().collect::<Vec<_>>().join(","))
    }

    /// Each code set with what it means for a person: `("UF", "upstream connection failure")`.
    pub fn described(self) -> impl Iterator<Item = (&'static str, &'static str)> {
        CODES
            .iter()
            .zip(DESCRIPTIONS)
            .enumerate()
            .filter(move |(bit, _)| self.0 & (1u64 << bit) != 0)
            .map(|(_, (code, description))| (*code, description))
    }

    /// Whether `code` describes a failure of the upstream (remote) side.
    pub fn is_upstream_code(code: &str) -> bool {
        code.starts_with('U') && code != "UAEX"
    }

    /// Whether any flag means a failure of the proxy or upstream.
    pub fn is_fault(self) -> bool {
        self.codes().any(is_fault_code)
    }

    /// Whether any flag means rate limiting.
    pub fn is_throttle(self) -> bool {
        self.codes().any(is_throttle_code)
    }
}

/// What a `response_flags` tag says about a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FlagCodes {
    /// The codes, as given (empty for `-` or an empty tag).
    pub codes: Vec<String>,
}

impl FlagCodes {
    /// Parses a tag value: `UF,URX`, `UH`, `-` (none) or empty (none).
    pub fn parse(tag: &str) -> Self {
        let codes = tag
            .split(',')
            .map(str::trim)
            .filter(|code| !code.is_empty() && *code != "-")
            .map(str::to_owned)
            .collect();
        Self { codes }
    }

    /// Whether any flag is set.
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    /// The codes joined by commas, as Envoy's access log prints them; `None` when none is set.
    pub fn to_label(&self) -> Option<String> {
        (!self.codes.is_empty()).then(|| self.codes.join(","))
    }

    /// Whether any code means a failure of the proxy or upstream.
    pub fn is_fault(&self) -> bool {
        self.codes.iter().any(|c| is_fault_code(c))
    }

    /// Whether any code means rate limiting.
    pub fn is_throttle(&self) -> bool {
        self.codes.iter().any(|c| is_throttle_code(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each tag form: fault, throttle, neither, none.
    #[test]
    fn classifies_tag_values() {
        let cases = [
            ("UH", Some("UH"), true, false),
            ("UF,URX", Some("UF,URX"), true, false),
            (" NR ", Some("NR"), true, false),
            ("RL", Some("RL"), false, true),
            ("DC", Some("DC"), false, false),
            ("DI,UF", Some("DI,UF"), true, false),
            ("-", None, false, false),
            ("", None, false, false),
        ];
        for (tag, label, fault, throttle) in cases {
            let flags = FlagCodes::parse(tag);
            assert_eq!(flags.to_label().as_deref(), label, "{tag:?}");
            assert_eq!(flags.is_fault(), fault, "{tag:?}");
            assert_eq!(flags.is_throttle(), throttle, "{tag:?}");
        }
    }

    #[test]
    fn decodes_the_flags_users_see_in_access_logs() {
        let cases = [
            (0x2, "UH", true, false),
            (0x20, "UF", true, false),
            (0x100, "NR", true, false),
            (0x8000, "URX", true, false),
            (0x20 | 0x8000, "UF,URX", true, false),
            (0x800, "RL", false, true),
            (0x4000, "DC", false, false),
        ];
        for (bits, label, fault, throttle) in cases {
            let flags = ResponseFlags(bits);
            assert_eq!(flags.to_label().as_deref(), Some(label));
            assert_eq!(flags.is_fault(), fault, "{label}");
            assert_eq!(flags.is_throttle(), throttle, "{label}");
        }
        assert_eq!(ResponseFlags(0).to_label(), None);
        let described: Vec<_> = ResponseFlags(0x20 | 0x800).described().collect();
        assert_eq!(
            described,
            [
                ("UF", "upstream connection failure"),
                ("RL", "rate limited locally")
            ]
        );
        assert!(ResponseFlags::is_upstream_code("UF"));
        assert!(!ResponseFlags::is_upstream_code("NR"));
    }
}
