//! A rolling restart of the relay under steady mesh load (issue 12): two relay replicas
//! are the two endpoints of the one relay cluster of every sidecar, and each is restarted
//! in turn with SIGTERM, as a Deployment rollout does. 0 failed app requests, 0 documents
//! lost, none twice, and not one post to the relay fails.
//!
//! What makes it lossless, and what the test breaks to see it go red (docs/RELIABILITY.md):
//! - the relay's `--shutdown-delay`: `/readyz` answers 503 at once while posts are still
//!   taken, so senders move away before the port closes;
//! - the sidecars' active health check of `/readyz` (Kubernetes' readiness probe and
//!   endpoint removal, played by Envoy here): the draining replica gets no new posts;
//! - the relay's drain: what it accepted is sent before it exits.
//!
//! Needs the filter module, the relay binary, Envoy and moto (`make test`).

// Test helpers outside `#[test]` functions: a failed unwrap or panic here is a failed test
// with a clear location, as clippy.toml allows inside tests.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use meshray_e2e::app::Service;
use meshray_e2e::envoy::{HostStatus, RELAY_CLUSTER};
use meshray_e2e::load::SteadyLoad;
use meshray_e2e::relay::RelayOptions;
use meshray_e2e::{Mesh, MeshOptions};
use meshray_filter::metrics::{
    BUFFERED_DOCUMENTS, DROPPED_TOTAL, EMITTED_TOTAL, RETRIED_TOTAL, SENT_TOTAL,
};

use common::start_mesh;

/// Relay replicas behind the one cluster.
const REPLICAS: usize = 2;
/// The sidecars check each replica's `/readyz` this often.
const HEALTH_CHECK_EVERY: Duration = Duration::from_millis(250);
/// The relays' `--shutdown-delay`: 8 health-check intervals, so the draining replica is
/// out of every sidecar's rotation long before its port closes, even on a busy machine.
const SHUTDOWN_DELAY_SECS: &str = "2";
/// The relays' `--batch-interval-ms`: longer than the shutdown delay, so that each replica
/// still holds accepted documents when its drain starts, and the drain must send them.
const BATCH_INTERVAL_MS: &str = "3000";
/// Concurrent app clients, and the pause each makes between requests.
const CLIENTS: usize = 2;
const PAUSE: Duration = Duration::from_millis(50);
/// How long a stopped replica stays down before it starts again (a new pod's start-up):
/// long enough that posts sent to it while it is down would fail.
const DOWNTIME: Duration = Duration::from_millis(1500);
/// Load before the first restart, and after each replica is back.
const SETTLE: Duration = Duration::from_secs(1);
/// Longest wait for every sidecar to see every replica ready again.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The relay cluster's endpoints as each sidecar sees them.
async fn relay_hosts(mesh: &Mesh) -> BTreeMap<Service, BTreeMap<SocketAddr, HostStatus>> {
    let mut all = BTreeMap::new();
    for pod in mesh.pods() {
        let hosts = pod
            .sidecar
            .cluster_hosts(RELAY_CLUSTER)
            .await
            .unwrap_or_else(|e| panic!("reading {}'s clusters: {e}", pod.app.service()));
        all.insert(pod.app.service(), hosts);
    }
    all
}

/// Waits until every sidecar has every replica in its relay cluster, healthy.
async fn wait_until_all_ready(mesh: &mut Mesh) {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let hosts = relay_hosts(mesh).await;
        let ready = hosts
            .values()
            .all(|h| h.len() == REPLICAS && h.values().all(HostStatus::is_healthy));
        if ready {
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "not every sidecar sees {REPLICAS} ready relays after {READY_TIMEOUT:?}: \
                 {hosts:?}\n{}",
                mesh.diagnostics().await
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Posts each replica answered, summed over the sidecars.
fn posts_per_replica(
    hosts: &BTreeMap<Service, BTreeMap<SocketAddr, HostStatus>>,
) -> BTreeMap<SocketAddr, (u64, u64)> {
    let mut sums: BTreeMap<SocketAddr, (u64, u64)> = BTreeMap::new();
    for per_sidecar in hosts.values() {
        for (addr, host) in per_sidecar {
            let sum = sums.entry(*addr).or_default();
            sum.0 += host.rq_success;
            sum.1 += host.rq_error;
        }
    }
    sums
}

/// Both replicas restarted one after the other (SIGTERM, drained, down for 1.5 s, started
/// again on the same port; the next only once every sidecar sees the first ready
/// again) while two clients call productpage. Every request is answered 200 and becomes
/// exactly one fully linked trace of five documents in X-Ray (no document lost, none
/// twice); every sidecar sent every document it emitted, retried none and dropped none;
/// no post to either replica failed, and each replica took posts after its restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_loses_no_document_and_fails_no_request() {
    let mut mesh = start_mesh(
        "relay-rolling-restart",
        MeshOptions {
            relay_replicas: REPLICAS,
            relay_health_check: Some(HEALTH_CHECK_EVERY),
            relay: RelayOptions {
                extra_args: vec![
                    "--shutdown-delay".into(),
                    SHUTDOWN_DELAY_SECS.into(),
                    "--batch-interval-ms".into(),
                    BATCH_INTERVAL_MS.into(),
                ],
                ..RelayOptions::default()
            },
            ..MeshOptions::default()
        },
    )
    .await;
    wait_until_all_ready(&mut mesh).await;

    let load = SteadyLoad::start(&mesh.productpage_url(), CLIENTS, PAUSE);
    tokio::time::sleep(SETTLE).await;
    let mut before_restart = Vec::new();
    for replica in 0..REPLICAS {
        before_restart.push(posts_per_replica(&relay_hosts(&mesh).await));
        let relay = &mut mesh.relays()[replica];
        let addr = relay.addr();
        let stopping = Instant::now();
        let status = relay.stop().await.unwrap_or_else(|e| panic!("{e}"));
        let stopped_after = stopping.elapsed();
        tokio::time::sleep(DOWNTIME).await;
        relay
            .restart()
            .await
            .unwrap_or_else(|e| panic!("relay {addr} did not come back on its port: {e}"));
        wait_until_all_ready(&mut mesh).await;
        eprintln!(
            "replica {addr}: SIGTERM → exit ({status}) in {stopped_after:.1?}, back and ready \
             in every sidecar after {:.1?}",
            stopping.elapsed()
        );
        assert!(
            status.contains("exit status: 0"),
            "relay {addr} did not exit cleanly after SIGTERM: {status}"
        );
        tokio::time::sleep(SETTLE).await;
    }
    let report = load.stop().await;
    eprintln!("load: {}", report.summary());
    if !report.failures.is_empty() {
        panic!(
            "{} of {} app requests failed during the rolling restart; first: {:?}\n{}",
            report.failures.len(),
            report.requests(),
            &report.failures[..report.failures.len().min(5)],
            mesh.diagnostics().await
        );
    }

    // Every request is one complete trace: exact counts by document id.
    let traces = mesh.linked_bookinfo_traces(report.ok).await;
    let end = posts_per_replica(&relay_hosts(&mesh).await);
    let stats = mesh
        .meshray_stats()
        .await
        .unwrap_or_else(|e| panic!("reading the sidecars' stats: {e}"));
    let mut wrong = Vec::new();
    let mut lines = Vec::new();
    for (service, s) in &stats {
        let get = |name: &str| s.get(name).unwrap_or(0);
        let (emitted, sent, dropped, retried) = (
            get(EMITTED_TOTAL),
            get(SENT_TOTAL),
            get(DROPPED_TOTAL),
            get(RETRIED_TOTAL),
        );
        let buffered = get(BUFFERED_DOCUMENTS);
        lines.push(format!(
            "{service}: emitted {emitted}, sent {sent}, dropped {dropped}, retried {retried}, \
             buffered {buffered}"
        ));
        if sent != emitted || dropped != 0 || buffered != 0 {
            wrong.push(format!(
                "{service} did not send every document: emitted {emitted}, sent {sent}, \
                 dropped {dropped}, buffered {buffered}"
            ));
        }
        if retried != 0 {
            wrong.push(format!(
                "{service} retried {retried} documents: a post failed, so a draining or \
                 stopped replica still got posts"
            ));
        }
    }
    for (addr, (ok, failed)) in &end {
        lines.push(format!(
            "replica {addr}: {ok} posts answered, {failed} failed"
        ));
        if *failed != 0 {
            wrong.push(format!("{failed} posts to replica {addr} failed"));
        }
    }
    for (replica, before) in before_restart.iter().enumerate() {
        let addr = mesh.relays()[replica].addr();
        let (was, now) = (before.get(&addr).map_or(0, |p| p.0), end[&addr].0);
        if now <= was {
            wrong.push(format!(
                "replica {addr} took no posts after its restart ({was} before, {now} at the end)"
            ));
        }
    }
    eprintln!("{}", lines.join("\n"));
    if let Err(err) = traces {
        panic!("documents lost or doubled:\n{err}\n{}", lines.join("\n"));
    }
    if !wrong.is_empty() {
        panic!(
            "during the rolling restart:\n  - {}\n{}",
            wrong.join("\n  - "),
            mesh.diagnostics().await
        );
    }
    eprintln!(
        "{} requests = {} traces of 5 documents in X-Ray",
        report.ok, report.ok
    );
}
