//! Helpers shared by the end-to-end test files (each file is its own crate).

use meshray_e2e::xray::{Document, Trace};

/// The one document named `name` that is (`remote`) or is not a remote subsegment.
/// A test helper: a missing or repeated document is a failed test, reported with the trace.
#[allow(clippy::panic)]
pub fn only<'a>(trace: &'a Trace, name: &str, remote: bool) -> &'a Document {
    trace.single(name, remote).unwrap_or_else(|| {
        panic!(
            "expected exactly one {name} (remote {remote}) in\n{}",
            trace.render()
        )
    })
}
