//! The harness's X-Ray reader against the local X-Ray API alone (no Envoy, no relay).
//!
//! Needs moto (`make tools`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use meshray_e2e::check::trace_problems;
use meshray_e2e::moto::Moto;
use meshray_e2e::run_dir::RunDir;
use meshray_e2e::xray::{Edge, Expectation, service_graph, wait_for_traces};
use serde_json::json;

const TRACES: usize = 7;

/// What `PutTraceSegments` stores, the harness reads back: `GetTraceSummaries` lists all
/// traces (through the raw fallback where the SDK cannot parse moto's answer),
/// `BatchGetTraces` in chunks of 5 returns every document, and the tree and edges are
/// derived from independent subsegments linked by `parent_id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_back_what_put_trace_segments_stored() {
    let dir = RunDir::new("xray-api").unwrap();
    let moto = Moto::start(dir.path()).await.unwrap();
    let api = moto.api();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let start = now.as_secs_f64();
    let mut documents = Vec::new();
    for i in 0..TRACES {
        let trace_id = format!("1-{:08x}-{:024x}", now.as_secs(), 0xabc000 + i);
        let caller = format!("{:016x}", 0x1000 + i);
        let sub = format!("{:016x}", 0x2000 + i);
        let callee = format!("{:016x}", 0x3000 + i);
        documents.push(
            json!({"name": "productpage", "id": caller, "trace_id": trace_id,
            "start_time": start, "end_time": start + 0.01}),
        );
        documents.push(
            json!({"name": "reviews", "type": "subsegment", "namespace": "remote",
            "id": sub, "parent_id": caller, "trace_id": trace_id,
            "start_time": start + 0.001, "end_time": start + 0.009}),
        );
        documents.push(json!({"name": "reviews", "id": callee, "parent_id": sub,
            "trace_id": trace_id, "start_time": start + 0.002, "end_time": start + 0.008}));
    }
    let output = api
        .client()
        .put_trace_segments()
        .set_trace_segment_documents(Some(documents.iter().map(|d| d.to_string()).collect()))
        .send()
        .await
        .unwrap();
    assert!(output.unprocessed_trace_segments().is_empty());

    let expect = Expectation {
        traces: TRACES,
        documents_per_trace: 3,
    };
    let since = SystemTime::now() - Duration::from_secs(5);
    let collected =
        wait_for_traces(&api, since, expect, Duration::from_secs(20), Duration::ZERO).await;
    assert!(collected.complete, "{}", collected.describe());
    assert_eq!(collected.traces.len(), TRACES, "{}", collected.describe());
    for trace in &collected.traces {
        let problems = trace_problems(trace);
        assert!(problems.is_empty(), "{problems:?}\n{}", trace.render());
    }
    let graph = service_graph(&collected.traces);
    assert_eq!(
        graph.into_iter().collect::<Vec<_>>(),
        vec![(Edge::new("productpage", "reviews"), TRACES)]
    );
}
