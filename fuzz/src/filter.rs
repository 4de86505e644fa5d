//! Targets for the filter: its `pluginConfig` and whole requests through the tracer
//! with the scripted host, as Envoy would run them.

use meshray_core::validate::validate_document;
use meshray_filter::config::FilterConfig;
use meshray_filter::host::FakeHost;
use meshray_filter::metrics::Metrics;
use meshray_filter::tracer::{self, Random};
use meshray_filter::workload::Workload;

use crate::{as_header_value, header_lines, is_header_value};

/// The fuzzed proxy's clock: any time inside X-Ray's window.
const NOW_SECS: u64 = 1_764_000_000;

/// A `pluginConfig` document (the WasmPlugin's `pluginConfig`, as JSON bytes).
///
/// Checks: a refused configuration lists at least one problem, each naming a field
/// and saying what is wrong.
pub fn plugin_config(data: &[u8]) {
    match FilterConfig::parse(data) {
        Ok(_) => {}
        Err(errors) => {
            assert!(!errors.0.is_empty(), "refused without a reason");
            for error in &errors.0 {
                assert!(!error.to_string().trim().is_empty(), "an empty problem");
            }
        }
    }
}

/// Deterministic randomness for reproducible runs.
struct Counter(u64);

impl Random for Counter {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        self.0
    }
    fn next_f64(&mut self) -> f64 {
        0.5
    }
}

/// One or more requests through one sidecar, blocks separated by a `---` line. In a
/// block, each line is one of:
/// - `name: value` — a request header (names lowercased, as Envoy hands them over);
/// - `@path: text` / `#path: integer` — a string / int64 property (`@xds.cluster_name: …`,
///   `#response.code: 503`); properties of the first block are the node's and stay;
/// - `<name: value` / `<<name: value` — a response header / trailer;
/// - `!config: {json}` (first block only) — the `pluginConfig`;
/// - `!unseen` — something before the filter answered: only the log phase runs.
///
/// Checks: every header the filter writes is a valid header value; every document it
/// emits is a JSON object the relay accepts (`validate_document`).
pub fn filter_request(data: &[u8]) {
    let mut blocks = data.split(|&b| b == b'\n').peekable();
    let mut base = FakeHost::at(NOW_SECS);
    let mut config = FilterConfig::default();
    let mut first = true;
    let mut setup: Option<(Workload, Metrics)> = None;
    let mut random = Counter(1);
    while blocks.peek().is_some() {
        let mut block = Vec::new();
        for line in blocks.by_ref() {
            if line == b"---" {
                break;
            }
            block.extend_from_slice(line);
            block.push(b'\n');
        }
        let mut host = base.clone();
        host.header_writes = Default::default();
        host.headers = Default::default();
        let mut unseen = false;
        for (name, value) in header_lines(&block) {
            let text = String::from_utf8_lossy(value);
            match name {
                [b'@', path @ ..] => {
                    let path = String::from_utf8_lossy(path).into_owned();
                    let value = text.as_bytes().to_vec();
                    if first {
                        base.properties.insert(path.clone(), value.clone());
                    }
                    host.properties.insert(path, value);
                }
                [b'#', path @ ..] => {
                    let path = String::from_utf8_lossy(path).into_owned();
                    let value = text
                        .trim()
                        .parse::<i64>()
                        .unwrap_or_default()
                        .to_le_bytes()
                        .to_vec();
                    if first {
                        base.properties.insert(path.clone(), value.clone());
                    }
                    host.properties.insert(path, value);
                }
                [b'<', b'<', name @ ..] => host
                    .response_trailers
                    .push((lowercase(name), as_header_value(value))),
                [b'<', name @ ..] => host
                    .response_headers
                    .push((lowercase(name), as_header_value(value))),
                b"!config" if first => {
                    config = FilterConfig::parse(value).unwrap_or_default();
                }
                b"!unseen" => unseen = true,
                b"" => {}
                _ => host
                    .headers
                    .borrow_mut()
                    .push((lowercase(name), as_header_value(value))),
            }
        }
        first = false;
        let (workload, metrics) =
            setup.get_or_insert_with(|| (Workload::read(&host, &config), Metrics::define(&host)));
        let document = if unseen {
            tracer::on_log_unseen(&host, &config, workload, metrics, &mut random)
        } else {
            tracer::on_request_headers(&host, &config, workload, metrics, &mut random)
                .and_then(|span| tracer::on_log(&host, span, workload, metrics))
        };
        for (name, value) in host.header_writes.borrow().iter() {
            assert!(
                !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b == b'-' || b.is_ascii_digit()),
                "invalid header name {name:?}"
            );
            assert!(
                is_header_value(value.as_bytes()),
                "{name}: {value:?} is not a header value"
            );
        }
        if let Some(document) = document {
            let value = serde_json::from_slice::<serde_json::Value>(&document);
            assert!(
                value.is_ok(),
                "the filter emitted invalid JSON: {}",
                String::from_utf8_lossy(&document)
            );
            if let Ok(value) = value {
                let checked = validate_document(value);
                assert!(
                    checked.is_ok(),
                    "the relay refuses a document the filter emitted ({:?}): {}",
                    checked.err(),
                    String::from_utf8_lossy(&document)
                );
            }
        }
    }
}

/// A header name as Envoy hands it over.
fn lowercase(name: &[u8]) -> String {
    String::from_utf8_lossy(name).to_ascii_lowercase()
}
