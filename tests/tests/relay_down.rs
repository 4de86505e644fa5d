//! A relay-down drill: the relay goes away and comes back on the same address.
//!
//! Needs the filter module, the relay binary, Envoy and moto (`make test`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use meshray_e2e::check::{BOOKINFO_DOCUMENTS, bookinfo_trace_problems};
use meshray_e2e::xray::{self, Expectation};
use meshray_e2e::{Mesh, MeshOptions};

const DURING_OUTAGE: usize = 10;
const AFTER_RESTART: usize = 5;

/// While the relay is down, requests through the mesh still succeed (the filter never
/// blocks or fails traffic) and the filter counts what it could not deliver; once the
/// relay is back on the same address, new requests become fully linked traces again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_survives_a_relay_outage_and_tracing_resumes() {
    let mut mesh = Mesh::start(MeshOptions {
        label: "relay-down".into(),
        ..MeshOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("the mesh did not start: {e}"));

    let status = mesh.relay().stop().await.unwrap();
    assert!(
        !mesh.relay().is_running(),
        "relay still running after stop ({status})"
    );
    if let Err(err) = mesh.send_requests(DURING_OUTAGE, "").await {
        panic!(
            "requests failed while the relay was down: {err}\n{}",
            mesh.diagnostics().await
        );
    }
    // Let every sidecar try (and fail) to flush at least once.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stats = mesh.meshray_stats().await.unwrap();
    let undelivered: u64 = stats
        .values()
        .map(|s| s.get("meshray_segments_dropped_total").unwrap_or(0))
        .sum();
    let sent: u64 = stats
        .values()
        .map(|s| s.get("meshray_segments_sent_total").unwrap_or(0))
        .sum();
    assert!(
        undelivered > 0,
        "expected the undelivered documents to be counted as dropped; \
         dropped {undelivered}, sent {sent}\n{}",
        mesh.diagnostics().await
    );

    mesh.relay().restart().await.unwrap();
    let restarted = SystemTime::now();
    if let Err(err) = mesh.send_requests(AFTER_RESTART, "").await {
        panic!("{err}\n{}", mesh.diagnostics().await);
    }
    let expect = Expectation {
        traces: AFTER_RESTART,
        documents_per_trace: BOOKINFO_DOCUMENTS,
    };
    let collected = xray::wait_for_traces(
        mesh.xray(),
        restarted,
        expect,
        Duration::from_secs(60),
        Duration::from_secs(1),
    )
    .await;
    let since = restarted
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let fresh: Vec<_> = collected
        .traces
        .iter()
        .filter(|t| t.start_time() >= since)
        .collect();
    if fresh.len() != AFTER_RESTART {
        panic!(
            "expected {AFTER_RESTART} traces after the restart, found {}\n{}\n{}",
            fresh.len(),
            collected.describe(),
            mesh.diagnostics().await
        );
    }
    for trace in fresh {
        let problems = bookinfo_trace_problems(trace);
        assert!(problems.is_empty(), "{problems:?}\n{}", trace.render());
    }
}
