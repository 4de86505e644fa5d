//! Builds the X-Ray client.
//!
//! In a cluster the default chain supplies region and credentials (IRSA, Pod Identity);
//! `AWS_ENDPOINT_URL_XRAY` points it at a local X-Ray API. Tests pass their own
//! `SdkConfig` (fixed region, static credentials, local endpoint) through
//! [`crate::Config::aws`] instead of changing process env.

use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_xray::Client;
use aws_sdk_xray::config::retry::RetryConfig;
use aws_sdk_xray::config::timeout::TimeoutConfig;

/// Longest wait for a TCP/TLS connection to X-Ray.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait for one `PutTraceSegments` call.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// Why no client could be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Neither the environment nor the profile names a region.
    #[error("no AWS region is configured for the xray sink; set AWS_REGION (or use --sink stdout)")]
    NoRegion,
}

/// Loads the default chain: `AWS_REGION`, credentials, `AWS_ENDPOINT_URL_XRAY`, profiles.
pub async fn load_default_config() -> SdkConfig {
    aws_config::load_defaults(BehaviorVersion::latest()).await
}

/// Builds a client from `sdk`, with the SDK's retries off and bounded timeouts.
///
/// # Errors
/// [`ClientError::NoRegion`] when `sdk` has no region.
pub fn build(sdk: &SdkConfig) -> Result<Client, ClientError> {
    if sdk.region().is_none() {
        return Err(ClientError::NoRegion);
    }
    let config = aws_sdk_xray::config::Builder::from(sdk)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        )
        .build();
    Ok(Client::from_conf(config))
}

#[cfg(test)]
mod tests {
    use aws_sdk_xray::config::Region;

    use super::*;

    /// Without a region the client is refused at start, not at the first call.
    #[test]
    fn needs_a_region() {
        let sdk = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .build();
        assert!(matches!(build(&sdk), Err(ClientError::NoRegion)));
        let sdk = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .build();
        assert!(build(&sdk).is_ok());
    }
}
