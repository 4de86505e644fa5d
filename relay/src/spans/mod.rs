//! Spans from Envoy's own tracers: the relay as a drop-in for the collector.
//!
//! Istio's Telemetry API offers two tracer providers that can point at the relay
//! instead of a collector: Zipkin (`POST /api/v2/spans`, Zipkin v2 JSON) and
//! OpenTelemetry (`POST /v1/traces`, OTLP/HTTP protobuf or JSON). Both decode into one
//! intermediate [`model::Span`], which [`mapping::to_document`] turns into an X-Ray
//! document with core's segment model and cluster classification, so the same traffic
//! gives the same documents whichever tracer reported it. The documents then take the
//! path every document takes ([`crate::ingest::Ingest`]): validation, epoch resolution
//! of foreign trace ids, the queue.
//!
//! # Layout
//! - [`model`]: the intermediate span.
//! - [`zipkin`]: Zipkin v2 JSON decoding.
//! - [`otlp`]: OTLP `ExportTraceServiceRequest` decoding (protobuf and JSON).
//! - [`mapping`]: span → X-Ray document, the mapping rules.
//! - [`endpoints`]: the two HTTP handlers and their answers.

pub mod endpoints;
#[cfg(test)]
mod fixture_tests;
pub mod mapping;
pub mod model;
pub mod otlp;
pub mod zipkin;

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::value::RawValue;

use crate::ingest::{Ingest, IngestError};
use model::{DecodedSpans, SpanRejection};

/// What happened to the spans of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SpanReport {
    /// Spans queued for delivery as X-Ray documents.
    pub accepted: usize,
    /// Spans refused, in index order, each with the reason.
    pub rejected: Vec<SpanRejection>,
}

/// Maps decoded spans to documents and submits them as one batch.
///
/// # Errors
/// [`IngestError`] when the batch cannot be queued at all (queue full, draining, epoch
/// cache down): none of its spans is queued then.
pub async fn submit(ingest: &Ingest, decoded: DecodedSpans) -> Result<SpanReport, IngestError> {
    let Mapped {
        documents,
        span_index,
        mut rejected,
    } = map_all(decoded, now_secs());
    let report = if documents.is_empty() {
        crate::ingest::Report::default()
    } else {
        let documents: Vec<&RawValue> = documents.iter().map(AsRef::as_ref).collect();
        ingest.submit(&documents).await?
    };
    for rejection in report.rejected {
        rejected.push(SpanRejection {
            index: span_index
                .get(rejection.index)
                .copied()
                .unwrap_or(rejection.index),
            reason: rejection.error,
        });
    }
    rejected.sort_by_key(|r| r.index);
    Ok(SpanReport {
        accepted: report.accepted,
        rejected,
    })
}

/// Documents made from a request's spans.
struct Mapped {
    /// One per span that decoded: its X-Ray document's text.
    documents: Vec<Box<RawValue>>,
    /// The request index of the span each document came from.
    span_index: Vec<usize>,
    /// Spans refused so far.
    rejected: Vec<SpanRejection>,
}

/// Maps every decoded span, remembering which request index each document has.
fn map_all(decoded: DecodedSpans, now: u64) -> Mapped {
    let DecodedSpans { spans, rejected } = decoded;
    let mut mapped = Mapped {
        documents: Vec::with_capacity(spans.len()),
        span_index: Vec::with_capacity(spans.len()),
        rejected: Vec::new(),
    };
    // Decoders list rejections in index order; the spans fill the gaps between them.
    let mut taken = rejected.iter().map(|r| r.index).peekable();
    let mut next = 0;
    for span in &spans {
        while taken.next_if(|&index| index == next).is_some() {
            next += 1;
        }
        match serde_json::value::to_raw_value(&mapping::to_document(span, now)) {
            Ok(document) => {
                mapped.documents.push(document);
                mapped.span_index.push(next);
            }
            Err(e) => mapped.rejected.push(SpanRejection {
                index: next,
                reason: format!("could not build its X-Ray document: {e}"),
            }),
        }
        next += 1;
    }
    drop(taken);
    mapped.rejected.extend(rejected);
    mapped
}

/// Seconds since the Unix epoch (0 if the clock is before it).
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
