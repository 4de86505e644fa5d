//! Foreign trace ids: a caller with its own 64-bit B3 context (a Zipkin-instrumented
//! service, an old gateway) sends requests into the mesh.
//!
//! A 64-bit id carries no epoch, so the filter ships the raw id and the relay gives the
//! trace its X-Ray id through its epoch cache: `1-{epoch of the first document}-00000000{id}`,
//! the same for every sidecar's documents. On the wire the id keeps its width, so the
//! caller's tracer still recognises its trace downstream.
//!
//! Needs the filter module, the relay binary, Envoy and moto (`make test`).

mod common;

use std::time::{Duration, SystemTime};

use common::start_mesh;
use meshray_e2e::MeshOptions;
use meshray_e2e::app::Service;
use meshray_e2e::check::{BOOKINFO_DOCUMENTS, bookinfo_trace_problems_with_caller};
use meshray_e2e::http::header_map;
use meshray_e2e::ids::{epoch_secs, random_hex, xray_epoch};
use meshray_e2e::xray::{Expectation, Trace};

const REQUESTS: usize = 5;
/// Clock slack allowed around the relay's epoch for a raw id.
const EPOCH_SLACK_SECS: u64 = 5;

/// Five requests, each with its own random 64-bit `x-b3-traceid`, an `x-b3-spanid` and
/// `x-b3-sampled: 1`, give exactly five traces of the five Bookinfo documents each, fully
/// linked; every document of a trace carries the one X-Ray id
/// `1-{epoch}-00000000{the 16 hex sent}` with the epoch between the test's start and now
/// (± 5 s); the productpage segment's `parent_id` is the span id the client sent; and
/// ratings, two hops down, still receives `x-b3-traceid` as the same 16 hex digits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_64_bit_b3_ids_become_one_xray_trace_each() {
    let test_start = SystemTime::now();
    let mut mesh = start_mesh("foreign-ids", MeshOptions::default()).await;

    let mut sent: Vec<(String, String)> = Vec::new();
    for i in 0..REQUESTS {
        let trace_id = random_hex(16);
        let span_id = random_hex(16);
        let headers = header_map(&[
            ("x-b3-traceid", &trace_id),
            ("x-b3-spanid", &span_id),
            ("x-b3-sampled", "1"),
        ])
        .unwrap();
        let response = match mesh.request_productpage_with("", &headers).await {
            Ok(response) => response,
            Err(err) => panic!("request {i}: {err}\n{}", mesh.diagnostics().await),
        };
        if response.status != 200 {
            panic!(
                "request {i} answered {}: {}\n{}",
                response.status,
                response.text(),
                mesh.diagnostics().await
            );
        }
        // Requests go one at a time, so ratings' last request is this one's.
        let at_ratings = mesh
            .pod(Service::Ratings)
            .app
            .stats()
            .last_header("x-b3-traceid");
        assert_eq!(
            at_ratings.as_deref(),
            Some(trace_id.as_str()),
            "request {i}: ratings should receive the caller's 64-bit x-b3-traceid unchanged \
             (width kept on the wire); it received headers {:?}",
            mesh.pod(Service::Ratings).app.stats().last_headers()
        );
        sent.push((trace_id, span_id));
    }

    let expect = Expectation {
        traces: REQUESTS,
        documents_per_trace: BOOKINFO_DOCUMENTS,
    };
    let collected = mesh.wait_for_traces(expect, Duration::from_secs(60)).await;
    if !collected.complete || collected.traces.len() != REQUESTS {
        panic!(
            "expected exactly {REQUESTS} traces of {BOOKINFO_DOCUMENTS} documents, one per \
             foreign id sent {:?}\n{}\n{}",
            sent.iter().map(|(t, _)| t).collect::<Vec<_>>(),
            collected.describe(),
            mesh.diagnostics().await
        );
    }
    let earliest = epoch_secs(test_start) - EPOCH_SLACK_SECS;
    let latest = epoch_secs(SystemTime::now()) + EPOCH_SLACK_SECS;
    for (trace_hex, span_id) in &sent {
        let suffix = format!("-00000000{trace_hex}");
        let matching: Vec<&Trace> = collected
            .traces
            .iter()
            .filter(|t| t.id.ends_with(&suffix))
            .collect();
        let ids: Vec<&str> = collected.traces.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(
            matching.len(),
            1,
            "expected exactly one trace with id 1-<epoch>{suffix} for x-b3-traceid \
             {trace_hex}; traces are {ids:?}"
        );
        let trace = matching[0];
        let epoch = xray_epoch(&trace.id);
        assert!(
            epoch.is_some_and(|e| (earliest..=latest).contains(&e)),
            "trace {} has epoch {epoch:?}, expected one in [{earliest}, {latest}]\n{}",
            trace.id,
            trace.render()
        );
        assert_eq!(
            trace.documents.len(),
            BOOKINFO_DOCUMENTS,
            "{}",
            trace.render()
        );
        let problems = bookinfo_trace_problems_with_caller(trace, Some(span_id));
        assert!(
            problems.is_empty(),
            "trace {} (x-b3-traceid {trace_hex}, x-b3-spanid {span_id}) is not fully linked \
             under the caller's span:\n  - {}\n{}",
            trace.id,
            problems.join("\n  - "),
            trace.render()
        );
    }
}
