//! Foreign trace ids seen by an X-Ray SDK app (issue 8, item 5).
//!
//! A caller with a 64-bit B3 id, and one with a random W3C id (whose first 8 hex digits are
//! no time near now), call the mesh. The filter ships the raw id and writes
//! `x-amzn-trace-id: Root=1-{first 8}-{last 24};Parent={segment}` into each app's request;
//! ratings, at the end of the chain, is instrumented with an X-Ray SDK: it records its own
//! segment under that header and sends it to the relay's daemon UDP port. The relay must
//! put all six documents — five from the sidecars under the raw id, one from the SDK under
//! the X-Ray-shaped id — in one X-Ray trace: with `--foreign-ids epoch` (the default) under
//! `1-{epoch of the first document}-{last 24}`, with `--foreign-ids passthrough` under
//! `1-{first 8}-{last 24}` unchanged.
//!
//! Needs the filter module, the relay binary, Envoy and moto (`make test`).

// Helpers outside `#[test]` functions fail the test with a message, as the tests do.
#![allow(clippy::panic)]

mod common;

use std::time::{Duration, SystemTime};

use common::{request_expecting, start_mesh};
use hyper::http::HeaderMap;
use meshray_core::ids::TraceId;
use meshray_e2e::MeshOptions;
use meshray_e2e::app::Service;
use meshray_e2e::check::{BOOKINFO_DOCUMENTS, bookinfo_trace_problems_with_caller};
use meshray_e2e::http::header_map;
use meshray_e2e::ids::{epoch_secs, now_secs, random_hex, xray_epoch};
use meshray_e2e::relay::RelayOptions;
use meshray_e2e::xray::{Expectation, Trace};
use meshray_e2e::xray_sdk::{self, TraceHeader};

/// The SDK app's segment name.
const SDK_SEGMENT: &str = "ratings-sdk";
/// Clock slack allowed around the relay's epoch.
const EPOCH_SLACK_SECS: u64 = 5;

/// One client: the raw trace id as 32 hex (the filter's and relay's view), the headers
/// it sends, and the span it names as parent.
struct Client {
    what: &'static str,
    raw: String,
    headers: HeaderMap,
    span: String,
}

/// A Zipkin-instrumented caller: 64-bit `x-b3-traceid`.
fn b3_64_bit_client() -> Client {
    let trace = random_hex(16);
    let span = random_hex(16);
    let headers = header_map(&[
        ("x-b3-traceid", &trace),
        ("x-b3-spanid", &span),
        ("x-b3-sampled", "1"),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    Client {
        what: "64-bit B3",
        raw: format!("{:0>32}", trace),
        headers,
        span,
    }
}

/// A W3C-instrumented caller with a random 128-bit id whose first 32 bits are no epoch
/// near now (else it would be an X-Ray id already).
fn random_w3c_client() -> Client {
    let now = epoch_secs(SystemTime::now());
    let trace = loop {
        let hex = random_hex(32);
        let in_window = TraceId::from_hex(&hex).is_ok_and(|id| id.embedded_epoch(now).is_some());
        if !in_window {
            break hex;
        }
    };
    let span = random_hex(16);
    let traceparent = format!("00-{trace}-{span}-01");
    let headers = header_map(&[("traceparent", &traceparent)]).unwrap_or_else(|e| panic!("{e}"));
    Client {
        what: "random W3C",
        raw: trace,
        headers,
        span,
    }
}

async fn sdk_documents_join_the_sidecars_trace(mode: &str) {
    let test_start = SystemTime::now();
    let options = MeshOptions {
        relay: RelayOptions {
            daemon: true,
            extra_args: vec!["--foreign-ids".to_owned(), mode.to_owned()],
            ..RelayOptions::default()
        },
        ..MeshOptions::default()
    };
    let mut mesh = start_mesh(&format!("sdk-app-{mode}"), options).await;
    let Some(daemon) = mesh.relay().daemon_addr() else {
        panic!("the relay has no daemon port\n{}", mesh.diagnostics().await);
    };
    let clients = [b3_64_bit_client(), random_w3c_client()];
    let mut sdk_ids = Vec::new();
    for client in &clients {
        let start = now_secs();
        request_expecting(&mut mesh, "", &client.headers, 200).await;
        // Requests go one at a time: ratings' last request is this one's.
        let stats = mesh.pod(Service::Ratings).app.stats();
        let header = stats.last_header("x-amzn-trace-id").unwrap_or_default();
        let context = TraceHeader::parse(&header).unwrap_or_else(|| {
            panic!(
                "{}: ratings received no x-amzn-trace-id Root; headers {:?}",
                client.what,
                stats.last_headers()
            )
        });
        let expected_root = format!("1-{}-{}", &client.raw[..8], &client.raw[8..]);
        assert_eq!(
            context.root, expected_root,
            "{}: Root= of {header}",
            client.what
        );
        let document = xray_sdk::segment(&context, SDK_SEGMENT, start);
        if let Err(err) = xray_sdk::send_to_daemon(daemon, &document).await {
            panic!("{}: {err}", client.what);
        }
        sdk_ids.push((
            document["id"].as_str().unwrap_or_default().to_owned(),
            context,
        ));
    }

    let expect = Expectation {
        traces: clients.len(),
        documents_per_trace: BOOKINFO_DOCUMENTS + 1,
    };
    let collected = mesh.wait_for_traces(expect, Duration::from_secs(60)).await;
    if !collected.complete || collected.traces.len() != clients.len() {
        panic!(
            "--foreign-ids {mode}: expected exactly {} traces of {} documents (the SDK app's \
             segment in the sidecars' trace)\n{}\n{}",
            clients.len(),
            BOOKINFO_DOCUMENTS + 1,
            collected.describe(),
            mesh.diagnostics().await
        );
    }
    let earliest = epoch_secs(test_start) - EPOCH_SLACK_SECS;
    let latest = epoch_secs(SystemTime::now()) + EPOCH_SLACK_SECS;
    for (client, (sdk_id, context)) in clients.iter().zip(&sdk_ids) {
        let what = format!(
            "--foreign-ids {mode}, {} client {}",
            client.what, client.raw
        );
        let suffix = format!("-{}", &client.raw[8..]);
        let trace: &Trace = collected
            .traces
            .iter()
            .find(|t| t.id.ends_with(&suffix))
            .unwrap_or_else(|| panic!("{what}: no trace …{suffix}\n{}", collected.describe()));
        let shown = trace.render();
        if mode == "passthrough" {
            assert_eq!(
                trace.id, context.root,
                "{what}: the id passes through\n{shown}"
            );
        } else {
            let epoch = xray_epoch(&trace.id);
            assert!(
                epoch.is_some_and(|e| (earliest..=latest).contains(&e)),
                "{what}: trace {} should carry the first document's epoch, in \
                 [{earliest}, {latest}]\n{shown}",
                trace.id
            );
        }
        assert_eq!(
            trace.documents.len(),
            BOOKINFO_DOCUMENTS + 1,
            "{what}\n{shown}"
        );
        let sdk = trace
            .find(sdk_id)
            .unwrap_or_else(|| panic!("{what}: the SDK app's segment {sdk_id} is not in\n{shown}"));
        let ratings = trace
            .single("ratings", false)
            .unwrap_or_else(|| panic!("{what}: no ratings segment\n{shown}"));
        assert_eq!(
            sdk.parent_id.as_deref(),
            Some(ratings.id.as_str()),
            "{what}: the SDK app's segment hangs under ratings' sidecar segment\n{shown}"
        );
        // The sidecars' five documents, linked under the client's span.
        let sidecars: Vec<_> = trace
            .documents
            .iter()
            .filter(|d| d.name != SDK_SEGMENT)
            .cloned()
            .collect();
        let bookinfo = Trace::from_documents(&trace.id, sidecars);
        let problems = bookinfo_trace_problems_with_caller(&bookinfo, Some(&client.span));
        assert!(
            problems.is_empty(),
            "{what}:\n  - {}\n{shown}",
            problems.join("\n  - ")
        );
    }
}

/// `--foreign-ids epoch`: each client's six documents in one trace with the epoch of its
/// first document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_segments_join_the_trace_with_epoch_foreign_ids() {
    sdk_documents_join_the_sidecars_trace("epoch").await;
}

/// `--foreign-ids passthrough`: each client's six documents in one trace `1-{first 8}-{last 24}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_segments_join_the_trace_with_passthrough_foreign_ids() {
    sdk_documents_join_the_sidecars_trace("passthrough").await;
}
