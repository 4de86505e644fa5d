//! A slow relay under steady mesh load (issue 12): a proxy in front of the relay holds
//! every post for 3 s. The application does not wait for tracing — its p99 with the slow
//! relay is compared with its p99 with a healthy relay in the same test — and the
//! filter's bounds hold: the buffer never exceeds `max_buffered` per worker, what does
//! not fit is dropped and counted, and every document is accounted for
//! (`emitted = sent + dropped`), with exactly the sent ones in X-Ray.
//!
//! The plugin config keeps the bounds small (`max_buffered` 50, `max_batch` 10,
//! `max_in_flight` 2): with 3 s per post a worker ships at most 2 × 10 documents per 3 s,
//! so the load overflows the buffer. Figures are printed; see them with `--nocapture`.
//!
//! Needs the filter module, the relay binary, Envoy and moto (`make test`).

// Test helpers outside `#[test]` functions: a failed unwrap or panic here is a failed test
// with a clear location, as clippy.toml allows inside tests.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use meshray_e2e::app::Service;
use meshray_e2e::delay_proxy::DelayProxy;
use meshray_e2e::load::{LoadReport, SteadyLoad};
use meshray_e2e::relay::RelayOptions;
use meshray_e2e::{Mesh, MeshOptions};
use meshray_filter::metrics::{
    BUFFERED_DOCUMENTS, DROP_REASONS, DROPPED_TOTAL, EMITTED_TOTAL, RETRIED_TOTAL, SENT_TOTAL,
    dropped_counter_name,
};

use common::start_mesh;

const PLUGIN_CONFIG: &str =
    r#"{"max_buffered":50,"max_batch":10,"max_in_flight":2,"flush_interval_ms":200}"#;
/// `max_buffered` above: documents per worker.
const MAX_BUFFERED: u64 = 50;
/// `max_batch` × `max_in_flight` above: documents in posts in flight per worker.
const MAX_IN_FLIGHT_DOCUMENTS: u64 = 10 * 2;
/// Envoy worker threads per sidecar: each has its own VM and buffer.
const CONCURRENCY: u32 = 2;
/// How long the slow relay holds every post (the filter's post timeout is 5 s).
const RELAY_DELAY: Duration = Duration::from_secs(3);
/// Concurrent app clients, and the pause each makes between requests.
const CLIENTS: usize = 4;
const PAUSE: Duration = Duration::from_millis(20);
/// Length of the healthy phase and of the slow phase.
const PHASE: Duration = Duration::from_secs(5);
/// Requests before the healthy phase.
const WARM_UP: usize = 20;
/// Envoy's RSS may grow by less than this per sidecar.
const MAX_RSS_GROWTH: u64 = 64 * 1024 * 1024;
const MIB: f64 = 1024.0 * 1024.0;

/// The filter's document counters of one sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Counts {
    emitted: u64,
    sent: u64,
    dropped: u64,
    buffer_full: u64,
    by_reason: u64,
    retried: u64,
    buffered: u64,
}

async fn counts(mesh: &Mesh) -> BTreeMap<Service, Counts> {
    let stats = mesh
        .meshray_stats()
        .await
        .unwrap_or_else(|e| panic!("reading the sidecars' stats: {e}"));
    stats
        .iter()
        .map(|(service, s)| {
            let get = |name: &str| s.get(name).unwrap_or(0);
            let c = Counts {
                emitted: get(EMITTED_TOTAL),
                sent: get(SENT_TOTAL),
                dropped: get(DROPPED_TOTAL),
                buffer_full: get(&dropped_counter_name("buffer_full")),
                by_reason: DROP_REASONS
                    .iter()
                    .map(|r| get(&dropped_counter_name(r)))
                    .sum(),
                retried: get(RETRIED_TOTAL),
                buffered: get(BUFFERED_DOCUMENTS),
            };
            (*service, c)
        })
        .collect()
}

/// Every sidecar's Envoy RSS in bytes (0 when unreadable).
fn rss(mesh: &Mesh) -> BTreeMap<Service, u64> {
    mesh.pods()
        .iter()
        .map(|p| (p.app.service(), p.sidecar.rss_bytes().unwrap_or(0)))
        .collect()
}

/// Runs the steady load for [`PHASE`], sampling every sidecar's buffer gauge every
/// 100 ms into `max_buffered`.
async fn phase(mesh: &Mesh, max_buffered: &mut BTreeMap<Service, u64>) -> LoadReport {
    let load = SteadyLoad::start(&mesh.productpage_url(), CLIENTS, PAUSE);
    let end = Instant::now() + PHASE;
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
        for (service, c) in counts(mesh).await {
            let max = max_buffered.entry(service).or_default();
            *max = (*max).max(c.buffered);
        }
    }
    load.stop().await
}

/// The same steady load (4 clients) first with a healthy relay, then with every post held
/// 3 s. No request fails in either phase; the slow relay adds less than half its delay to
/// the app's p99; the proxy held posts back; each sidecar's buffer stays within
/// `max_buffered` × workers and drops what does not fit (counted `buffer_full`, the only
/// reason); Envoy's RSS grows by less than 64 MiB. Once the relay is fast again and the
/// counters settle, every document emitted was sent or dropped, and X-Ray holds exactly
/// the sent ones, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_relay_does_not_slow_the_app_and_the_buffers_stay_bounded() {
    let proxy = DelayProxy::start()
        .await
        .unwrap_or_else(|e| panic!("the proxy did not start: {e}"));
    let mut mesh = start_mesh(
        "slow-relay",
        MeshOptions {
            plugin_config_json: PLUGIN_CONFIG.to_owned(),
            concurrency: CONCURRENCY,
            relay_endpoints: Some(vec![proxy.addr()]),
            // One PutTraceSegments call at a time: moto's store can lose the first
            // documents of a trace when two calls create it at once, and this drill counts
            // X-Ray's documents exactly.
            relay: RelayOptions {
                extra_args: vec!["--uploaders".into(), "1".into()],
                ..RelayOptions::default()
            },
            ..MeshOptions::default()
        },
    )
    .await;
    proxy.set_upstream(mesh.relay().addr());
    // Warm up (VMs, connection pools), so the healthy phase is not the cold one.
    if let Err(err) = mesh.send_requests(WARM_UP, "").await {
        panic!("{err}\n{}", mesh.diagnostics().await);
    }
    let started = SystemTime::now();
    let rss_before = rss(&mesh);

    let mut max_buffered = BTreeMap::new();
    let healthy = phase(&mesh, &mut max_buffered).await;
    let before_slow = counts(&mesh).await;
    proxy.set_delay(RELAY_DELAY);
    let slow = phase(&mesh, &mut max_buffered).await;
    let delayed = proxy.delayed();
    proxy.set_delay(Duration::ZERO);
    let (p99_healthy, p99_slow) = (healthy.percentile(99.0), slow.percentile(99.0));
    eprintln!("healthy relay: {}", healthy.summary());
    eprintln!(
        "relay answering after {RELAY_DELAY:?}: {}; {delayed} posts held back",
        slow.summary()
    );
    eprintln!(
        "p99 {p99_healthy:.1?} -> {p99_slow:.1?} ({:.2}x)",
        p99_slow.as_secs_f64() / p99_healthy.as_secs_f64().max(1e-6)
    );
    let rss_after = rss(&mesh);

    let mut wrong = Vec::new();
    for (phase, report) in [("healthy", &healthy), ("slow", &slow)] {
        if !report.failures.is_empty() {
            wrong.push(format!(
                "{} of {} requests failed with the {phase} relay; first: {:?}",
                report.failures.len(),
                report.requests(),
                &report.failures[..report.failures.len().min(3)]
            ));
        }
    }
    if p99_slow.saturating_sub(p99_healthy) >= RELAY_DELAY / 2 {
        wrong.push(format!(
            "the slow relay added {:.1?} to the app's p99 ({p99_healthy:.1?} -> {p99_slow:.1?}): \
             requests waited for tracing",
            p99_slow.saturating_sub(p99_healthy)
        ));
    }
    if delayed == 0 {
        wrong.push("the proxy held back no post: the relay was never slow".to_owned());
    }
    let buffered_bound = MAX_BUFFERED * u64::from(CONCURRENCY);
    for (service, max) in &max_buffered {
        if *max > buffered_bound {
            wrong.push(format!(
                "{service}: {BUFFERED_DOCUMENTS} reached {max}, more than max_buffered × \
                 {CONCURRENCY} workers = {buffered_bound}"
            ));
        }
    }
    for (service, before) in &rss_before {
        let growth = rss_after[service].saturating_sub(*before);
        eprintln!(
            "{service}: RSS {:.1} MiB -> {:.1} MiB",
            *before as f64 / MIB,
            rss_after[service] as f64 / MIB
        );
        if growth >= MAX_RSS_GROWTH {
            wrong.push(format!(
                "{service}: Envoy's RSS grew by {:.1} MiB",
                growth as f64 / MIB
            ));
        }
    }
    let during_slow = counts(&mesh).await;
    let in_flight_bound = MAX_IN_FLIGHT_DOCUMENTS * u64::from(CONCURRENCY);
    for (service, c) in &during_slow {
        // emitted = sent + dropped + buffered + documents of posts in flight.
        let unaccounted = i128::from(c.emitted) - i128::from(c.sent + c.dropped + c.buffered);
        if !(0..=i128::from(in_flight_bound)).contains(&unaccounted) {
            wrong.push(format!(
                "{service}: {unaccounted} documents neither sent, dropped nor buffered, \
                 expected 0 ..= {in_flight_bound} in flight: {c:?}"
            ));
        }
    }

    // The relay is fast again: the backlog goes out; then the counters stop moving.
    let mut after = counts(&mesh).await;
    let settle_until = Instant::now() + Duration::from_secs(30);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let again = counts(&mesh).await;
        let settled = again == after && again.values().all(|c| c.buffered == 0);
        after = again;
        if settled || Instant::now() >= settle_until {
            break;
        }
    }
    let mut sent_total = 0;
    for (service, c) in &after {
        eprintln!(
            "{service}: emitted {} (before the slow phase {}), sent {}, dropped {} (buffer_full \
             {}), retried {}, buffered {} (max seen {})",
            c.emitted,
            before_slow[service].emitted,
            c.sent,
            c.dropped,
            c.buffer_full,
            c.retried,
            c.buffered,
            max_buffered.get(service).copied().unwrap_or(0)
        );
        sent_total += c.sent;
        if c.emitted != c.sent + c.dropped || c.buffered != 0 {
            wrong.push(format!(
                "{service}: emitted {} ≠ sent {} + dropped {} (buffered {})",
                c.emitted, c.sent, c.dropped, c.buffered
            ));
        }
        if c.dropped != c.by_reason || c.dropped != c.buffer_full {
            wrong.push(format!(
                "{service}: dropped {} is not buffer_full {} (all reasons {})",
                c.dropped, c.buffer_full, c.by_reason
            ));
        }
    }
    if after.values().all(|c| c.buffer_full == 0) {
        wrong.push("no sidecar hit its buffer bound: the drill did not load it".to_owned());
    }

    // X-Ray holds exactly the sent documents, each once.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (documents, ids) = loop {
        let traces = mesh
            .xray()
            .fetch_traces(
                started - Duration::from_secs(120),
                SystemTime::now() + Duration::from_secs(120),
            )
            .await
            .unwrap_or_default();
        let documents: usize = traces.iter().map(|t| t.documents.len()).sum();
        let ids: HashSet<String> = traces
            .iter()
            .flat_map(|t| t.documents.iter().map(|d| d.id.clone()))
            .collect();
        if documents as u64 >= sent_total || Instant::now() >= deadline {
            break (documents, ids);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    eprintln!(
        "X-Ray: {documents} documents ({} distinct ids), sidecars sent {sent_total}",
        ids.len()
    );
    if documents as u64 != sent_total || ids.len() != documents {
        wrong.push(format!(
            "X-Ray holds {documents} documents ({} distinct), the sidecars sent {sent_total}",
            ids.len()
        ));
    }
    if !wrong.is_empty() {
        panic!(
            "with a slow relay:\n  - {}\n{}",
            wrong.join("\n  - "),
            mesh.diagnostics().await
        );
    }
}
