//! Turns queued documents into `PutTraceSegments` requests.
//!
//! X-Ray takes each document as a JSON string; the relay sends at most
//! [`MAX_BATCH_DOCUMENTS`] per call. Each document is already at most
//! `MAX_DOCUMENT_BYTES` (checked at ingest).

use aws_sdk_xray::Client;
use aws_sdk_xray::operation::put_trace_segments::builders::PutTraceSegmentsFluentBuilder;
pub use meshray_core::limits::MAX_BATCH_DOCUMENTS;

use crate::queue::QueuedDocument;

/// Splits `documents` into request-sized chunks of at most [`MAX_BATCH_DOCUMENTS`].
pub fn chunks<T>(documents: &[T]) -> std::slice::Chunks<'_, T> {
    documents.chunks(MAX_BATCH_DOCUMENTS)
}

/// The document strings of one request, in order.
pub fn document_strings(documents: &[QueuedDocument]) -> Vec<String> {
    documents.iter().map(|d| d.json.clone()).collect()
}

/// A `PutTraceSegments` call carrying `documents` (at most [`MAX_BATCH_DOCUMENTS`]; the
/// caller splits with [`chunks`]).
pub fn build(client: &Client, documents: &[QueuedDocument]) -> PutTraceSegmentsFluentBuilder {
    client
        .put_trace_segments()
        .set_trace_segment_documents(Some(document_strings(documents)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests carry at most 50 documents.
    #[test]
    fn chunks_hold_at_most_fifty() {
        for (n, expected) in [
            (0, vec![]),
            (1, vec![1]),
            (50, vec![50]),
            (51, vec![50, 1]),
            (120, vec![50, 50, 20]),
        ] {
            let documents = vec![0u8; n];
            let sizes: Vec<usize> = chunks(&documents).map(<[u8]>::len).collect();
            assert_eq!(sizes, expected, "{n} documents");
        }
    }

    /// Documents go out in queue order, as their exact strings.
    #[test]
    fn documents_keep_their_order() {
        let documents: Vec<QueuedDocument> = (0..3)
            .map(|i| QueuedDocument {
                id: None,
                json: format!("{{\"n\":{i}}}"),
            })
            .collect();
        assert_eq!(
            document_strings(&documents),
            ["{\"n\":0}", "{\"n\":1}", "{\"n\":2}"]
        );
    }
}
