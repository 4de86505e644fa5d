//! The raw limit the relay is compared with (`relay_vs_serde`): a typed, borrowed serde
//! parse of the same batches, the same checks the relay makes (trace id form, span ids,
//! times, `type`/`parent_id`, name length, document size) and serialisation of each
//! document, in a tight loop on one core. No HTTP, no queue, no upload.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use meshray_core::ids::SpanId;
use meshray_core::limits::{MAX_DOCUMENT_BYTES, MAX_NAME_CHARS};
use meshray_core::validate::parse_trace_id;
use serde_json::value::RawValue;

/// A document parsed without copying: each top-level field kept as its raw JSON text.
/// (serde's `flatten` cannot hold `RawValue`s, so the checked fields are read from the
/// map one by one.)
type RawDocument<'a> = BTreeMap<&'a str, &'a RawValue>;

/// The string value of `field`, borrowed when it has no escapes.
fn string_field<'a>(document: &RawDocument<'a>, field: &str) -> Option<Cow<'a, str>> {
    let raw: &'a RawValue = document.get(field)?;
    serde_json::from_str::<Cow<'a, str>>(raw.get()).ok()
}

/// The number value of `field`.
fn number_field(document: &RawDocument<'_>, field: &str) -> Option<f64> {
    serde_json::from_str::<f64>(document.get(field)?.get()).ok()
}

/// Whether a document passes the checks; serialises it into `out` when it does.
fn check_and_serialise(document: &RawDocument<'_>, out: &mut Vec<u8>) -> bool {
    let parent_id = string_field(document, "parent_id");
    let start_time = number_field(document, "start_time").unwrap_or(0.0);
    let ok = string_field(document, "trace_id").is_some_and(|t| parse_trace_id(&t).is_ok())
        && string_field(document, "id").is_some_and(|id| SpanId::from_hex(&id).is_ok())
        && parent_id
            .as_deref()
            .is_none_or(|p| SpanId::from_hex(p).is_ok())
        && start_time > 0.0
        && number_field(document, "end_time").is_none_or(|end| end >= start_time)
        && string_field(document, "type").is_none_or(|k| k == "subsegment" && parent_id.is_some())
        && string_field(document, "name").is_some_and(|n| n.chars().count() <= MAX_NAME_CHARS);
    if !ok {
        return false;
    }
    out.clear();
    serde_json::to_writer(&mut *out, document).is_ok() && out.len() <= MAX_DOCUMENT_BYTES
}

/// Documents per second of parse + checks + serialisation over `bodies` for `duration`,
/// and how many documents failed the checks (should be 0).
pub fn documents_per_second(bodies: &[Bytes], duration: Duration) -> (f64, u64) {
    let started = Instant::now();
    let mut documents = 0u64;
    let mut failed = 0u64;
    let mut out = Vec::with_capacity(4096);
    'outer: loop {
        for body in bodies {
            match serde_json::from_slice::<Vec<RawDocument<'_>>>(body) {
                Ok(batch) => {
                    for document in &batch {
                        if !check_and_serialise(document, &mut out) {
                            failed += 1;
                        }
                        documents += 1;
                    }
                }
                Err(_) => failed += 1,
            }
            if started.elapsed() >= duration {
                break 'outer;
            }
        }
    }
    (documents as f64 / started.elapsed().as_secs_f64(), failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_documents_pass_and_bad_ones_fail() {
        let good = Bytes::from_static(
            br#"[{"trace_id":"1-581cf771-a006649127e371903a2de979","id":"70de5b6f19ff9a0a","name":"a","start_time":1.5,"end_time":2.0,"http":{"x":1}},
                 {"trace_id":"0000000000000000463ac35c9f6413ad","id":"70de5b6f19ff9a0b","name":"b","start_time":1.5,"type":"subsegment","parent_id":"70de5b6f19ff9a0a"}]"#,
        );
        let bad = Bytes::from_static(
            br#"[{"trace_id":"1-abc","id":"70de5b6f19ff9a0a","name":"a","start_time":1.5}]"#,
        );
        let (rate, failed) = documents_per_second(&[good], Duration::from_millis(20));
        assert!(rate > 0.0);
        assert_eq!(failed, 0);
        let (_, failed) = documents_per_second(&[bad], Duration::from_millis(5));
        assert!(failed > 0);
    }

    #[test]
    fn serialisation_keeps_every_field() {
        let text = r#"{"trace_id":"1-581cf771-a006649127e371903a2de979","id":"70de5b6f19ff9a0a","name":"a","start_time":1.5,"aws":{"eks":{"pod":"p"}}}"#;
        let document: RawDocument<'_> = serde_json::from_str(text).unwrap();
        let mut out = Vec::new();
        assert!(check_and_serialise(&document, &mut out));
        let back: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(text).unwrap()
        );
    }
}
