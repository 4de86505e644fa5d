//! gRPC status codes and what they mean for X-Ray.
//!
//! A gRPC answer is HTTP 200 with `grpc-status` in the trailers (or in the
//! headers of a trailers-only answer). The X-Ray integrations map it so:
//! OK → nothing; RESOURCE_EXHAUSTED → `throttle` (and `error`); UNKNOWN,
//! DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS → `fault`;
//! any other non-zero code → `error`.

/// The names of codes 0–16, as gRPC spells them.
const NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// What a status means for a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// OK: nothing to mark.
    Ok,
    /// The client's fault: `error`.
    Error,
    /// Rate limited: `throttle` (and `error`).
    Throttle,
    /// The server's fault: `fault`.
    Fault,
}

/// A `grpc-status` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcStatus(u32);

impl GrpcStatus {
    /// A status from its code.
    pub fn new(code: u32) -> Self {
        Self(code)
    }

    /// Parses a `grpc-status` header value (a decimal number).
    pub fn parse(value: &[u8]) -> Option<Self> {
        std::str::from_utf8(value)
            .ok()?
            .trim()
            .parse()
            .ok()
            .map(Self)
    }

    /// The numeric code.
    pub fn code(self) -> u32 {
        self.0
    }

    /// The code's name (`UNAVAILABLE`); `UNKNOWN_CODE` past the known ones.
    pub fn name(self) -> &'static str {
        usize::try_from(self.0)
            .ok()
            .and_then(|i| NAMES.get(i))
            .copied()
            .unwrap_or("UNKNOWN_CODE")
    }

    /// What the status means for X-Ray.
    pub fn outcome(self) -> Outcome {
        match self.0 {
            0 => Outcome::Ok,
            8 => Outcome::Throttle,
            2 | 4 | 12 | 13 | 14 | 15 => Outcome::Fault,
            _ => Outcome::Error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_names_codes() {
        assert_eq!(GrpcStatus::parse(b"14"), Some(GrpcStatus::new(14)));
        assert_eq!(GrpcStatus::parse(b" 0 "), Some(GrpcStatus::new(0)));
        assert_eq!(GrpcStatus::parse(b"x"), None);
        assert_eq!(GrpcStatus::parse(&[0xff]), None);
        assert_eq!(GrpcStatus::new(14).name(), "UNAVAILABLE");
        assert_eq!(GrpcStatus::new(16).name(), "UNAUTHENTICATED");
        assert_eq!(GrpcStatus::new(17).name(), "UNKNOWN_CODE");
    }
}
