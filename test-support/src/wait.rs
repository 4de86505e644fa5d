//! Waiting for a condition that other tasks or processes make true.

use std::future::Future;
use std::time::Duration;

use crate::{HarnessError, Result};

/// How often a condition is checked again.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Checks `condition` every 50 ms until it holds.
///
/// # Errors
/// [`HarnessError::Timeout`] naming `what` when it still does not hold after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut condition: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition().await {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(HarnessError::Timeout {
                what: what.to_owned(),
                after: timeout,
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
