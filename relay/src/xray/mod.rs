//! Delivery to AWS X-Ray, one file per job (after vector's AWS sinks):
//!
//! - [`client`]: builds the `aws_sdk_xray::Client` from the default chain or an injected
//!   `SdkConfig`, with the SDK's own retries off (the relay retries itself, and counts).
//! - [`request_builder`]: turns queued documents into `PutTraceSegments` requests of at
//!   most 50 documents.
//! - [`service`]: the call itself, its [`service::XrayError`] and the unprocessed entries.
//! - [`retry`]: pure classification of failures into [`retry::RetryClass`] and the
//!   full-jitter backoff.
//! - [`upload`]: the attempt loop that ties them together for one batch.

pub mod client;
pub mod request_builder;
pub mod retry;
pub mod service;
pub mod upload;
