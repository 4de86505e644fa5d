//! Huge, garbage and repeated header values through the sidecars (issue 12, bad input at
//! the filter): none fails a request, and each request is still recorded as one fully
//! linked trace of valid documents — under the caller's trace id where a readable one came
//! along, a new one otherwise.
//!
//! Sizes stay under Envoy's own limits (60 KiB of request headers, 100 headers), which
//! Envoy enforces with 431 before any filter runs.
//!
//! Needs the filter module, the relay binary, Envoy and moto (`make test`).

// Test helpers outside `#[test]` functions: a failed unwrap or panic here is a failed test
// with a clear location, as clippy.toml allows inside tests.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use meshray_core::limits::{MAX_ANNOTATION_VALUE_CHARS, MAX_DOCUMENT_BYTES};
use meshray_e2e::MeshOptions;
use meshray_e2e::app::Service;
use meshray_e2e::check::{BOOKINFO_DOCUMENTS, bookinfo_trace_problems_with_caller};
use meshray_e2e::http::header_map;
use meshray_e2e::ids::{new_epoch_trace_hex, new_xray_trace_id, random_hex, xray_root};
use meshray_e2e::xray::Expectation;

use common::{request_expecting, start_mesh};

/// The filter copies this request header into an annotation.
const ANNOTATED: &str = "x-user-id";
const PLUGIN_CONFIG: &str = r#"{"flush_interval_ms":200,"annotate_headers":["x-user-id"]}"#;
/// The size of one huge header value: most of Envoy's 60 KiB.
const HUGE: usize = 40 * 1024;

/// `len` characters of visible garbage that no propagation format can read.
fn garbage(len: usize) -> String {
    let unit = "zq-9;=,.Root=Parent=~";
    unit.repeat(len / unit.len() + 1)[..len].to_owned()
}

/// One request of the drill: what it sends, and which trace and parent it must give.
struct Case {
    what: &'static str,
    headers: Vec<(String, String)>,
    /// The X-Ray trace id the caller's context names (`None`: a new trace).
    trace: Option<String>,
    /// The caller's span, the productpage segment's parent (`None`: no parent).
    parent: Option<String>,
}

fn cases() -> Vec<Case> {
    let xray_trace = new_xray_trace_id();
    let xray_parent = random_hex(16);
    let w3c_trace = new_epoch_trace_hex();
    let w3c_parent = random_hex(16);
    let xray_of_w3c = format!("1-{}-{}", &w3c_trace[..8], &w3c_trace[8..]);
    let many: Vec<(String, String)> = (0..30)
        .flat_map(|i| {
            [
                (
                    "traceparent".to_owned(),
                    format!("00-{}-01", garbage(40 + i)),
                ),
                ("b3".to_owned(), garbage(20 + i)),
                (
                    "x-amzn-trace-id".to_owned(),
                    format!("Root={}", garbage(10 + i)),
                ),
            ]
        })
        .collect();
    vec![
        Case {
            what: "a 40 KiB garbage x-amzn-trace-id",
            headers: vec![("x-amzn-trace-id".into(), garbage(HUGE))],
            trace: None,
            parent: None,
        },
        Case {
            what: "a 40 KiB garbage b3",
            headers: vec![("b3".into(), garbage(HUGE))],
            trace: None,
            parent: None,
        },
        Case {
            what: "a 40 KiB garbage traceparent and tracestate",
            headers: vec![
                ("traceparent".into(), garbage(HUGE / 2)),
                ("tracestate".into(), garbage(HUGE / 2)),
            ],
            trace: None,
            parent: None,
        },
        Case {
            what: "a valid traceparent with a 40 KiB tracestate",
            headers: vec![
                (
                    "traceparent".into(),
                    format!("00-{w3c_trace}-{w3c_parent}-01"),
                ),
                ("tracestate".into(), format!("vendor={}", "a".repeat(HUGE))),
            ],
            trace: Some(xray_of_w3c),
            parent: Some(w3c_parent),
        },
        Case {
            what: "a valid x-amzn-trace-id with a 40 KiB extra field",
            headers: vec![(
                "x-amzn-trace-id".into(),
                format!(
                    "Root={xray_trace};Parent={xray_parent};Sampled=1;Extra={}",
                    "x".repeat(HUGE)
                ),
            )],
            trace: Some(xray_trace),
            parent: Some(xray_parent),
        },
        Case {
            what: "90 repeated garbage traceparent, b3 and x-amzn-trace-id headers",
            headers: many,
            trace: None,
            parent: None,
        },
        Case {
            what: "a 40 KiB annotated header, user-agent and query string",
            headers: vec![
                (ANNOTATED.into(), "u".repeat(HUGE / 3)),
                ("user-agent".into(), garbage(HUGE / 3)),
            ],
            trace: None,
            parent: None,
        },
    ]
}

/// Each case is one request to productpage: it answers 200, the app behind the sidecar is
/// told a valid X-Ray trace id (the caller's where one was readable), and X-Ray ends up
/// with exactly one fully linked trace of five valid documents per request (caller's
/// span as the productpage segment's parent where one came); every document is within
/// X-Ray's 64 KiB and the annotated header is cut to the annotation limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_and_repeated_headers_never_fail_a_request_and_are_still_traced() {
    let mut mesh = start_mesh(
        "huge-headers",
        MeshOptions {
            plugin_config_json: PLUGIN_CONFIG.to_owned(),
            ..MeshOptions::default()
        },
    )
    .await;
    let cases = cases();
    let mut told = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let pairs: Vec<(&str, &str)> = case
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let headers = header_map(&pairs).unwrap_or_else(|e| panic!("{}: {e}", case.what));
        let query = if i == cases.len() - 1 {
            format!("q={}", "a".repeat(HUGE / 3))
        } else {
            String::new()
        };
        request_expecting(&mut mesh, &query, &headers, 200).await;
        let header = mesh
            .pod(Service::Productpage)
            .app
            .stats()
            .last_header("x-amzn-trace-id");
        let Some(trace) = header.as_deref().and_then(xray_root).map(str::to_owned) else {
            panic!(
                "{}: productpage's app was told no trace id (x-amzn-trace-id {header:?})",
                case.what
            );
        };
        if let Some(expected) = &case.trace {
            assert_eq!(
                &trace, expected,
                "{}: the caller's trace id was not kept",
                case.what
            );
        }
        told.push(trace);
    }
    let malformed = mesh
        .pod(Service::Productpage)
        .sidecar
        .meshray_stats()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .get("meshray_headers_malformed_total")
        .unwrap_or(0);
    eprintln!("meshray_headers_malformed_total on productpage's sidecar: {malformed}");

    let expect = Expectation {
        traces: cases.len(),
        documents_per_trace: BOOKINFO_DOCUMENTS,
    };
    let collected = mesh.wait_for_traces(expect, Duration::from_secs(60)).await;
    if !(collected.complete && collected.traces.len() == cases.len()) {
        panic!(
            "expected exactly {} traces\n{}\n{}",
            cases.len(),
            collected.describe(),
            mesh.diagnostics().await
        );
    }
    for (case, id) in cases.iter().zip(&told) {
        let Some(trace) = collected.traces.iter().find(|t| &t.id == id) else {
            panic!(
                "{}: no trace {id} in X-Ray\n{}",
                case.what,
                collected.describe()
            );
        };
        let problems = bookinfo_trace_problems_with_caller(trace, case.parent.as_deref());
        assert!(
            problems.is_empty(),
            "{}: trace {id} is not a fully linked trace:\n  - {}\n{}",
            case.what,
            problems.join("\n  - "),
            trace.render()
        );
        for document in &trace.documents {
            let size = document.raw.to_string().len();
            assert!(
                size <= MAX_DOCUMENT_BYTES,
                "{}: a document of {size} bytes",
                case.what
            );
        }
    }
    let annotated_trace = collected
        .traces
        .iter()
        .find(|t| Some(&t.id) == told.last())
        .unwrap_or_else(|| panic!("no trace for the annotated request"));
    let annotation = annotated_trace
        .documents
        .iter()
        .flat_map(|d| d.annotations())
        .find(|(key, _)| key.contains("user"))
        .unwrap_or_else(|| {
            panic!(
                "the {ANNOTATED} header is in no annotation:\n{}",
                annotated_trace.render()
            )
        });
    assert!(
        !annotation.1.is_empty() && annotation.1.chars().count() <= MAX_ANNOTATION_VALUE_CHARS,
        "annotation {} has {} characters, limit {MAX_ANNOTATION_VALUE_CHARS}",
        annotation.0,
        annotation.1.chars().count()
    );
    eprintln!(
        "{} requests, {} fully linked traces; annotation {} cut to {} characters",
        cases.len(),
        collected.traces.len(),
        annotation.0,
        annotation.1.chars().count()
    );
}
