//! The documents the relay benchmark posts: the meshray filter's own output, captured by
//! the receiver during the filter benchmark, re-issued with fresh ids so that batches
//! hold many traces, a share of them with foreign ids (raw 32 hex, resolved through the
//! relay's epoch cache) as Zipkin- or W3C-started traces give.

use std::path::Path;

use bytes::Bytes;
use serde_json::Value;

use crate::error::{BenchError, Result, io};

/// Documents per posted batch (the filter's default `max_batch`).
pub const BATCH_DOCUMENTS: usize = 50;
/// Documents of one trace in a batch: a segment and its subsegments.
const DOCUMENTS_PER_TRACE: usize = 4;

/// Reads the captured filter documents.
///
/// # Errors
/// When the file is missing (run the filter benchmark first) or not a JSON array of objects.
pub fn load_templates(path: &Path) -> Result<Vec<Value>> {
    let bytes = std::fs::read(path).map_err(io(format!(
        "reading {} (the filter benchmark writes it: run `make bench` or `meshray-bench filter` first)",
        path.display()
    )))?;
    let templates: Vec<Value> = serde_json::from_slice(&bytes)?;
    if templates.is_empty() || !templates.iter().all(Value::is_object) {
        return Err(BenchError::Output {
            tool: "capture",
            detail: format!("{} holds no documents", path.display()),
        });
    }
    Ok(templates)
}

fn hex(rng: &mut fastrand::Rng, digits: usize) -> String {
    (0..digits)
        .map(|_| char::from_digit(rng.u32(0..16), 16).unwrap_or('0'))
        .collect()
}

/// `batches` JSON bodies of [`BATCH_DOCUMENTS`] documents each, built from `templates`,
/// `foreign_share` of the traces with a foreign id. Deterministic for a `seed`.
pub fn batches(
    templates: &[Value],
    batches: usize,
    foreign_share: f64,
    now_secs: u64,
    seed: u64,
) -> Result<Vec<Bytes>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut next_template = 0usize;
    let mut out = Vec::with_capacity(batches);
    for _ in 0..batches {
        let mut batch = Vec::with_capacity(BATCH_DOCUMENTS);
        let mut trace_id = String::new();
        for i in 0..BATCH_DOCUMENTS {
            if i % DOCUMENTS_PER_TRACE == 0 {
                trace_id = if rng.f64() < foreign_share {
                    // High bits far outside the epoch window: a foreign id.
                    format!("00{}", hex(&mut rng, 30))
                } else {
                    format!("1-{now_secs:08x}-{}", hex(&mut rng, 24))
                };
            }
            let mut document = templates[next_template % templates.len()].clone();
            next_template += 1;
            if let Some(map) = document.as_object_mut() {
                map.insert("trace_id".to_owned(), Value::String(trace_id.clone()));
                map.insert("id".to_owned(), Value::String(hex(&mut rng, 16)));
                map.insert(
                    "start_time".to_owned(),
                    Value::from(now_secs as f64 + rng.f64()),
                );
                map.insert(
                    "end_time".to_owned(),
                    Value::from(now_secs as f64 + 1.0 + rng.f64()),
                );
            }
            batch.push(document);
        }
        out.push(Bytes::from(serde_json::to_vec(&batch)?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn batches_carry_fresh_ids_and_the_asked_share_of_foreign_traces() {
        let templates = vec![
            json!({"name": "reviews", "id": "x", "trace_id": "y", "start_time": 1.0, "http": {"response": {"status": 200}}}),
        ];
        let bodies = batches(&templates, 20, 0.25, 1_700_000_000, 7).unwrap();
        let docs: Vec<Value> = bodies
            .iter()
            .flat_map(|b| serde_json::from_slice::<Vec<Value>>(b).unwrap())
            .collect();
        assert_eq!(docs.len(), 20 * BATCH_DOCUMENTS);
        let foreign = docs
            .iter()
            .filter(|d| !d["trace_id"].as_str().unwrap().starts_with("1-"))
            .count();
        let share = foreign as f64 / docs.len() as f64;
        assert!((0.1..0.4).contains(&share), "foreign share {share}");
        assert!(docs.iter().all(
            |d| d["id"].as_str().unwrap().len() == 16 && d["http"]["response"]["status"] == 200
        ));
        let ids: std::collections::HashSet<_> =
            docs.iter().map(|d| d["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), docs.len());
    }
}
