//! The AWS side of the CLI: the default chain (`AWS_REGION`, `AWS_PROFILE`, credentials from
//! the environment, profiles, SSO, IMDS), `AWS_ENDPOINT_URL_XRAY` for a local X-Ray API, and
//! the X-Ray client built from it.
//!
//! Unlike the relay's client (which retries itself and counts), this one keeps the SDK's
//! standard retries: a reader makes many `BatchGetTraces` calls and X-Ray throttles them.

use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_xray::config::ProvideCredentials;
use aws_sdk_xray::config::timeout::TimeoutConfig;
use aws_types::service_config::ServiceConfigKey;

use crate::xray::{RawEndpoint, XrayReader};

/// Longest wait for a connection to the X-Ray API.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for one API call (retries included).
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(60);

/// Why no X-Ray client could be made.
#[derive(Debug, thiserror::Error)]
pub enum AwsSetupError {
    /// Neither the environment nor the profile names a region.
    #[error(
        "no AWS region is configured; set AWS_REGION (or a profile's region); \
         for a local X-Ray API also set AWS_ENDPOINT_URL_XRAY"
    )]
    NoRegion,
}

/// Loads the default chain.
pub async fn load_default_config() -> SdkConfig {
    aws_config::load_defaults(BehaviorVersion::latest()).await
}

/// The X-Ray endpoint override the SDK will use, if any: `AWS_ENDPOINT_URL_XRAY` or the
/// profile's `services` section, else `AWS_ENDPOINT_URL` (as `aws_sdk_xray` resolves it).
pub fn endpoint_override(sdk: &SdkConfig) -> Option<String> {
    let key = ServiceConfigKey::builder()
        .service_id("XRay")
        .env("AWS_ENDPOINT_URL")
        .profile("endpoint_url")
        .build()
        .ok()?;
    sdk.service_config()
        .and_then(|conf| conf.load_config(key))
        .or_else(|| sdk.endpoint_url().map(str::to_owned))
}

/// A reader on the X-Ray API of `sdk`, with bounded timeouts; with the raw
/// `GetTraceSummaries` fallback when the endpoint is a local plain-HTTP one.
///
/// # Errors
/// [`AwsSetupError::NoRegion`] when `sdk` has no region.
pub async fn reader(sdk: &SdkConfig) -> Result<XrayReader, AwsSetupError> {
    let region = sdk.region().ok_or(AwsSetupError::NoRegion)?.to_string();
    let config = aws_sdk_xray::config::Builder::from(sdk)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        )
        .build();
    let raw = match endpoint_override(sdk) {
        Some(url) => {
            let access_key_id = match sdk.credentials_provider() {
                Some(provider) => provider
                    .provide_credentials()
                    .await
                    .map(|c| c.access_key_id().to_owned())
                    .unwrap_or_default(),
                None => String::new(),
            };
            RawEndpoint::for_local(&url, &region, &access_key_id)
        }
        None => None,
    };
    Ok(XrayReader::new(
        aws_sdk_xray::Client::from_conf(config),
        raw,
    ))
}

/// Where the reader reads from, for people: the endpoint override, else the region.
pub fn describe_source(sdk: &SdkConfig) -> String {
    let region = sdk
        .region()
        .map_or_else(|| "no region".to_owned(), ToString::to_string);
    match endpoint_override(sdk) {
        Some(url) => format!("X-Ray API at {url} ({region})"),
        None => format!("AWS X-Ray in {region}"),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_xray::config::Region;

    use super::*;

    #[tokio::test]
    async fn needs_a_region_and_finds_the_endpoint() {
        let sdk = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .build();
        assert!(matches!(reader(&sdk).await, Err(AwsSetupError::NoRegion)));
        let sdk = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:4566")
            .build();
        assert_eq!(
            endpoint_override(&sdk).as_deref(),
            Some("http://127.0.0.1:4566")
        );
        assert!(reader(&sdk).await.is_ok());
        assert_eq!(
            describe_source(&sdk),
            "X-Ray API at http://127.0.0.1:4566 (eu-west-1)"
        );
    }
}
