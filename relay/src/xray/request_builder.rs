//! Turns queued documents into `PutTraceSegments` requests.
//!
//! X-Ray takes each document as a JSON string; the relay sends at most
//! [`MAX_BATCH_DOCUMENTS`] per call. Each document is already at most
//! `MAX_DOCUMENT_BYTES` (checked at ingest).
//!
//! The request body (`{"TraceSegmentDocuments":["…",…]}`) is written by the relay, each
//! document escaped once straight into it ([`request_body`], with meshray-core's
//! word-at-a-time `json_writer::string`), rather than by the SDK's
//! serializer (which escapes each document into a string of its own and copies it into
//! the body again, after the documents were cloned into the SDK's input). The SDK still
//! does everything else — endpoint, credentials, SigV4 signing, timeouts, the response
//! and its errors: the body is put in place by an interceptor just before the request is
//! signed ([`PreEncodedBody`]), so the signature covers exactly the bytes sent.

use aws_sdk_xray::Client;
use aws_sdk_xray::config::http::HttpResponse;
use aws_sdk_xray::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_xray::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_xray::error::SdkError;
use aws_sdk_xray::operation::put_trace_segments::PutTraceSegmentsError;
use aws_sdk_xray::operation::put_trace_segments::PutTraceSegmentsOutput;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use meshray_core::json_writer;
pub use meshray_core::limits::MAX_BATCH_DOCUMENTS;

use crate::queue::QueuedDocument;

/// What opens the body, before the first document.
const BODY_START: &[u8] = b"{\"TraceSegmentDocuments\":[";
/// What closes it.
const BODY_END: &[u8] = b"]}";

/// Splits `documents` into request-sized chunks of at most [`MAX_BATCH_DOCUMENTS`].
pub fn chunks<T>(documents: &[T]) -> std::slice::Chunks<'_, T> {
    documents.chunks(MAX_BATCH_DOCUMENTS)
}

/// The JSON body of one `PutTraceSegments` call: `{"TraceSegmentDocuments":[…]}`, each
/// document as a JSON string, in order.
pub fn request_body(documents: &[QueuedDocument]) -> Vec<u8> {
    // Room for the documents and a few escapes each (compact JSON: mostly quotes).
    let room: usize = documents
        .iter()
        .map(|d| d.json.len() + d.json.len() / 4 + 3)
        .sum();
    let mut body = Vec::with_capacity(BODY_START.len() + room + BODY_END.len());
    body.extend_from_slice(BODY_START);
    for (index, document) in documents.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        json_writer::string(&mut body, &document.json);
    }
    body.extend_from_slice(BODY_END);
    body
}

/// Puts a body written by [`request_body`] in place of the SDK's (which carries no
/// documents), with its `Content-Length`, before the request is signed.
#[derive(Debug)]
pub struct PreEncodedBody(Bytes);

impl Intercept for PreEncodedBody {
    fn name(&self) -> &'static str {
        "meshray::PreEncodedBody"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let request = context.request_mut();
        request
            .headers_mut()
            .insert("content-length", self.0.len().to_string());
        *request.body_mut() = SdkBody::from(self.0.clone());
        Ok(())
    }
}

/// Sends one `PutTraceSegments` call carrying `documents` (at most
/// [`MAX_BATCH_DOCUMENTS`]; the caller splits with [`chunks`]).
///
/// # Errors
/// The SDK's error when the call failed as a whole.
pub async fn send(
    client: &Client,
    documents: &[QueuedDocument],
) -> Result<PutTraceSegmentsOutput, SdkError<PutTraceSegmentsError, HttpResponse>> {
    let body = PreEncodedBody(Bytes::from(request_body(documents)));
    client
        .put_trace_segments()
        .set_trace_segment_documents(Some(Vec::new()))
        .customize()
        .interceptor(body)
        .send()
        .await
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

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

    /// A queued document with `json`.
    fn queued(json: &str) -> QueuedDocument {
        QueuedDocument {
            id: None,
            json: json.to_owned(),
        }
    }

    /// The body is the JSON X-Ray reads: each document, in queue order, as the exact
    /// string queued — quotes, backslashes, escapes, control characters, non-ASCII.
    #[test]
    fn the_body_carries_each_document_as_its_exact_string() {
        let documents: Vec<QueuedDocument> = [
            r#"{"n":0}"#,
            r#"{"name":"re\"v\\iews","u":"\u00e9 é ✓ 𝄞","e":"\n\t"}"#,
            "{\"a\":\t1,\r\"b\":\u{1}\u{8}\u{c}\u{1f}}",
            "",
            "plain",
        ]
        .into_iter()
        .map(queued)
        .collect();
        let body: Value = serde_json::from_slice(&request_body(&documents)).unwrap();
        let sent: Vec<&str> = body["TraceSegmentDocuments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap())
            .collect();
        let queued: Vec<&str> = documents.iter().map(|d| d.json.as_str()).collect();
        assert_eq!(sent, queued);
        assert_eq!(body.as_object().unwrap().len(), 1);
        assert_eq!(request_body(&[]), br#"{"TraceSegmentDocuments":[]}"#);
    }

    /// Escapes are the short forms where JSON has them, `\u00XX` otherwise.
    #[test]
    fn escapes_are_written_as_the_sdk_writes_them() {
        let body = request_body(&[queued("a\"b\\c\nd\u{1}é")]);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"TraceSegmentDocuments":["a\"b\\c\nd\u0001é"]}"#
        );
    }
}
