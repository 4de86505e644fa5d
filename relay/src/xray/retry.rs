//! Which X-Ray failures are worth another attempt, and how long to wait before it.
//!
//! Pure functions, tested without a network by building SDK errors directly.
//! X-Ray reports throttling as `ThrottledException` (not `ThrottlingException`), a typed
//! variant of `PutTraceSegmentsError`, so the match is on the variant.

use std::time::Duration;

use aws_sdk_xray::config::http::HttpResponse;
use aws_sdk_xray::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_xray::operation::put_trace_segments::PutTraceSegmentsError;

use super::service::XrayError;

/// Wait at least this long after a throttle that gave no `Retry-After`.
pub const DEFAULT_THROTTLE_DELAY: Duration = Duration::from_secs(1);
/// A `Retry-After` beyond this is capped.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);
/// Backoff ceiling of the first retry.
pub const BASE_BACKOFF: Duration = Duration::from_millis(200);
/// Backoff ceiling of any retry.
pub const MAX_BACKOFF: Duration = Duration::from_secs(20);

/// What to do after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryClass {
    /// Retrying cannot help (bad request, bad credentials, bad document).
    NonRetryable,
    /// A transient failure (5xx, timeout, connection): retry with backoff.
    Retryable,
    /// X-Ray asked us to slow down: retry, waiting at least this long.
    Throttled(Duration),
}

/// Classifies a failed call.
pub fn classify(error: &XrayError) -> RetryClass {
    match error {
        XrayError::Put(sdk) => classify_put(sdk),
    }
}

/// Classifies a failed `PutTraceSegments` call.
fn classify_put(error: &SdkError<PutTraceSegmentsError, HttpResponse>) -> RetryClass {
    match error {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => RetryClass::Retryable,
        SdkError::DispatchFailure(failure) if failure.is_user() => RetryClass::NonRetryable,
        SdkError::DispatchFailure(_) => RetryClass::Retryable,
        SdkError::ConstructionFailure(_) => RetryClass::NonRetryable,
        SdkError::ServiceError(context) => {
            let raw = context.raw();
            let hint = raw.headers().get("retry-after").and_then(parse_retry_after);
            match context.err() {
                PutTraceSegmentsError::ThrottledException(_) => {
                    RetryClass::Throttled(hint.unwrap_or(DEFAULT_THROTTLE_DELAY))
                }
                PutTraceSegmentsError::InvalidRequestException(_) => RetryClass::NonRetryable,
                other => classify_code_and_status(other.code(), raw.status().as_u16(), hint),
            }
        }
        // Future SDK variants: do not retry what we do not understand.
        _ => RetryClass::NonRetryable,
    }
}

/// Classifies an error the SDK did not model, by code, then HTTP status.
fn classify_code_and_status(code: Option<&str>, status: u16, hint: Option<Duration>) -> RetryClass {
    let throttle = RetryClass::Throttled(hint.unwrap_or(DEFAULT_THROTTLE_DELAY));
    match code {
        Some(code) if is_throttle_code(code) => throttle,
        Some(code) if is_transient_code(code) => RetryClass::Retryable,
        _ if status == 429 => throttle,
        _ if (500..600).contains(&status) => RetryClass::Retryable,
        _ if hint.is_some() => throttle,
        _ => RetryClass::NonRetryable,
    }
}

/// Classifies one `UnprocessedTraceSegments` entry by its error code.
///
/// Known permanent codes (`MissingParam`, `JSONFormatError`, `InvalidTraceId`, …) and
/// unknown ones are not retried: a bad document never loops. Throttling and internal
/// failures are.
pub fn classify_unprocessed(error_code: Option<&str>) -> RetryClass {
    match error_code {
        Some(code) if is_throttle_code(code) => RetryClass::Throttled(DEFAULT_THROTTLE_DELAY),
        Some(code) if is_transient_code(code) => RetryClass::Retryable,
        _ => RetryClass::NonRetryable,
    }
}

/// Codes AWS uses for throttling.
fn is_throttle_code(code: &str) -> bool {
    matches!(
        code,
        "ThrottledException"
            | "ThrottlingException"
            | "Throttling"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "ProvisionedThroughputExceededException"
            | "SlowDown"
    )
}

/// Codes AWS uses for failures on its side that go away.
fn is_transient_code(code: &str) -> bool {
    matches!(
        code,
        "InternalFailure"
            | "InternalError"
            | "InternalServerError"
            | "ServiceUnavailable"
            | "ServiceUnavailableException"
            | "RequestTimeout"
            | "RequestTimeoutException"
            | "RequestExpired"
    )
}

/// Parses a `Retry-After` header given in seconds, capped at [`MAX_RETRY_AFTER`].
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: u64 = value.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// The wait before attempt `attempt + 1` (attempt counts from 1): full jitter, a
/// uniformly random wait in `[0, min(MAX_BACKOFF, BASE_BACKOFF · 2^(attempt-1))]`, never
/// shorter than a throttle's delay. `unit` is the random draw in `[0, 1)`.
pub fn backoff(attempt: u32, class: RetryClass, unit: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(16);
    let ceiling = BASE_BACKOFF
        .saturating_mul(1u32 << exponent)
        .min(MAX_BACKOFF);
    let jittered = ceiling.mul_f64(unit.clamp(0.0, 1.0));
    match class {
        RetryClass::Throttled(at_least) => jittered.max(at_least),
        RetryClass::Retryable | RetryClass::NonRetryable => jittered,
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_xray::error::ErrorMetadata;
    use aws_sdk_xray::types::error::{InvalidRequestException, ThrottledException};
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    use super::*;

    /// An empty HTTP response with `status`.
    fn raw(status: u16) -> HttpResponse {
        HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(""))
    }

    /// A service error of PutTraceSegments.
    fn service(err: PutTraceSegmentsError, status: u16) -> XrayError {
        XrayError::Put(SdkError::service_error(err, raw(status)))
    }

    /// An unmodelled service error with `code`.
    fn generic(code: &str, status: u16) -> XrayError {
        service(
            PutTraceSegmentsError::generic(ErrorMetadata::builder().code(code).build()),
            status,
        )
    }

    /// X-Ray's `ThrottledException` is retried after at least the default delay.
    #[test]
    fn throttled_is_retryable_after_a_delay() {
        let err = service(
            PutTraceSegmentsError::ThrottledException(
                ThrottledException::builder().message("slow down").build(),
            ),
            429,
        );
        assert_eq!(
            classify(&err),
            RetryClass::Throttled(DEFAULT_THROTTLE_DELAY)
        );
    }

    /// A `Retry-After` header sets the throttle delay.
    #[test]
    fn throttled_honours_retry_after() {
        let mut response = raw(429);
        response.headers_mut().insert("retry-after", "7");
        let err = XrayError::Put(SdkError::service_error(
            PutTraceSegmentsError::ThrottledException(ThrottledException::builder().build()),
            response,
        ));
        assert_eq!(
            classify(&err),
            RetryClass::Throttled(Duration::from_secs(7))
        );
    }

    /// `InvalidRequestException` is permanent.
    #[test]
    fn invalid_request_is_not_retried() {
        let err = service(
            PutTraceSegmentsError::InvalidRequestException(
                InvalidRequestException::builder().message("bad").build(),
            ),
            400,
        );
        assert_eq!(classify(&err), RetryClass::NonRetryable);
    }

    /// Errors the SDK does not model: classified by code, then status.
    #[test]
    fn generic_errors_by_code_and_status() {
        let throttle = RetryClass::Throttled(DEFAULT_THROTTLE_DELAY);
        let cases = [
            ("ThrottlingException", 400, throttle),
            ("RequestLimitExceeded", 400, throttle),
            ("InternalFailure", 500, RetryClass::Retryable),
            ("ServiceUnavailable", 503, RetryClass::Retryable),
            ("RequestExpired", 400, RetryClass::Retryable),
            ("Whatever", 502, RetryClass::Retryable),
            ("Whatever", 429, throttle),
            ("AccessDeniedException", 403, RetryClass::NonRetryable),
            ("UnrecognizedClientException", 403, RetryClass::NonRetryable),
            ("ValidationException", 400, RetryClass::NonRetryable),
            ("InvalidSignatureException", 403, RetryClass::NonRetryable),
        ];
        for (code, status, expected) in cases {
            assert_eq!(
                classify(&generic(code, status)),
                expected,
                "{code} {status}"
            );
        }
    }

    /// Timeouts, I/O and bad responses are retried; user and construction errors are not.
    #[test]
    fn transport_failures() {
        let timeout = XrayError::Put(SdkError::timeout_error("took too long"));
        assert_eq!(classify(&timeout), RetryClass::Retryable);
        let io = XrayError::Put(SdkError::dispatch_failure(ConnectorError::io(
            "connection refused".into(),
        )));
        assert_eq!(classify(&io), RetryClass::Retryable);
        let user = XrayError::Put(SdkError::dispatch_failure(ConnectorError::user(
            "bad endpoint".into(),
        )));
        assert_eq!(classify(&user), RetryClass::NonRetryable);
        let construction = XrayError::Put(SdkError::construction_failure("no region"));
        assert_eq!(classify(&construction), RetryClass::NonRetryable);
        let response = XrayError::Put(SdkError::response_error("truncated", raw(200)));
        assert_eq!(classify(&response), RetryClass::Retryable);
    }

    /// Unprocessed entries: throttling and internal failures retried, the rest dropped.
    #[test]
    fn unprocessed_codes() {
        let cases = [
            (Some("MissingParam"), RetryClass::NonRetryable),
            (Some("JSONFormatError"), RetryClass::NonRetryable),
            (Some("InvalidTraceId"), RetryClass::NonRetryable),
            (None, RetryClass::NonRetryable),
            (
                Some("ThrottledException"),
                RetryClass::Throttled(DEFAULT_THROTTLE_DELAY),
            ),
            (Some("InternalFailure"), RetryClass::Retryable),
        ];
        for (code, expected) in cases {
            assert_eq!(classify_unprocessed(code), expected, "{code:?}");
        }
    }

    /// `Retry-After` in seconds, capped; HTTP dates are ignored.
    #[test]
    fn retry_after_values() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("100000"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    /// Full jitter under a doubling, capped ceiling; throttles wait at least their delay.
    #[test]
    fn backoff_is_full_jitter_capped() {
        assert_eq!(backoff(1, RetryClass::Retryable, 0.0), Duration::ZERO);
        assert_eq!(backoff(1, RetryClass::Retryable, 1.0), BASE_BACKOFF);
        assert_eq!(backoff(3, RetryClass::Retryable, 1.0), BASE_BACKOFF * 4);
        assert_eq!(backoff(3, RetryClass::Retryable, 0.5), BASE_BACKOFF * 2);
        assert_eq!(backoff(40, RetryClass::Retryable, 1.0), MAX_BACKOFF);
        assert_eq!(
            backoff(1, RetryClass::Throttled(Duration::from_secs(2)), 0.1),
            Duration::from_secs(2)
        );
        assert!(backoff(1, RetryClass::Retryable, 7.0) <= BASE_BACKOFF);
    }
}
