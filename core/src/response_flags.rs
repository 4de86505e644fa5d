//! Envoy's response flags as the short codes users know from access logs and span tags
//! (`UF`, `UH`, `NR`, `URX`, …; Envoy's tracers report them as the `response_flags` tag,
//! comma separated, `-` for none) and what each means for X-Ray's `fault` / `throttle`.

/// Codes that mean the proxy or the upstream failed: X-Ray `fault`.
pub const FAULT_CODES: [&str; 17] = [
    "LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "URX", "SI", "UMSDR", "DT", "UPE", "NC",
    "OM", "DF",
];

/// Codes that mean the request was rate limited: X-Ray `throttle`.
pub const THROTTLE_CODES: [&str; 2] = ["RL", "RLSE"];

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
        self.codes.iter().any(|c| FAULT_CODES.contains(&c.as_str()))
    }

    /// Whether any code means rate limiting.
    pub fn is_throttle(&self) -> bool {
        self.codes
            .iter()
            .any(|c| THROTTLE_CODES.contains(&c.as_str()))
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
}
