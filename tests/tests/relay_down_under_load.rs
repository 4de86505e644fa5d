//! A relay outage under load: the relay is killed (SIGKILL) while 16 clients drive traffic;
//! the filter's buffers stay bounded, traffic is unharmed, every document is accounted for,
//! and tracing resumes when the relay is back.
//!
//! The plugin config keeps the bounds small (`max_buffered` 100, `max_batch` 20, flush every
//! 200 ms) so that 2000 requests overflow them many times over. Measured numbers (requests/s
//! during the outage, RSS, drops) are printed; see them with `--nocapture`.
//!
//! Needs the filter module, the relay binary, Envoy and moto (`make test`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use meshray_e2e::app::Service;
use meshray_e2e::check::{BOOKINFO_DOCUMENTS, bookinfo_trace_problems};
use meshray_e2e::envoy::Stats;
use meshray_e2e::http::HttpClient;
use meshray_e2e::xray::{self, Expectation};
use meshray_e2e::{Mesh, MeshOptions};
use meshray_filter::config::DEFAULT_MAX_IN_FLIGHT;
use meshray_filter::metrics::{
    BUFFERED_DOCUMENTS, DROP_REASONS, DROPPED_TOTAL, EMITTED_TOTAL, SENT_TOTAL,
    dropped_counter_name,
};

const PLUGIN_CONFIG: &str = r#"{"max_buffered":100,"max_batch":20,"flush_interval_ms":200}"#;
/// `max_buffered` above: documents per worker.
const MAX_BUFFERED: u64 = 100;
/// `max_batch` above.
const MAX_BATCH: u64 = 20;
/// The filter's default `max_in_flight` (posts per worker).
const MAX_IN_FLIGHT: u64 = DEFAULT_MAX_IN_FLIGHT as u64;
/// Envoy worker threads per sidecar: each worker has its own VM and buffer.
const CONCURRENCY: u32 = 2;
const REQUESTS: usize = 2000;
const CLIENTS: usize = 16;
const AFTER_RESTART: usize = 5;
const MAX_RSS_GROWTH: u64 = 64 * 1024 * 1024;
const MIB: f64 = 1024.0 * 1024.0;

/// The filter's document counters of one sidecar at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    emitted: u64,
    sent: u64,
    dropped: u64,
    buffered: u64,
    buffer_full: u64,
    relay_unavailable: u64,
    dropped_by_reason_sum: u64,
}

impl Counts {
    /// Reads the counters; a missing gauge is an error (it is part of the interface).
    fn of(service: Service, stats: &Stats) -> Result<Self, String> {
        let get = |name: &str| stats.get(name).unwrap_or(0);
        let buffered = stats.get(BUFFERED_DOCUMENTS).ok_or_else(|| {
            format!(
                "{service}'s sidecar has no {BUFFERED_DOCUMENTS} gauge in /stats: {:?}",
                stats.0
            )
        })?;
        Ok(Self {
            emitted: get(EMITTED_TOTAL),
            sent: get(SENT_TOTAL),
            dropped: get(DROPPED_TOTAL),
            buffered,
            buffer_full: get(&dropped_counter_name("buffer_full")),
            relay_unavailable: get(&dropped_counter_name("relay_unavailable")),
            dropped_by_reason_sum: DROP_REASONS
                .iter()
                .map(|r| get(&dropped_counter_name(r)))
                .sum(),
        })
    }

    /// Documents neither sent, dropped nor buffered: in posts still in flight.
    fn unaccounted(&self) -> i128 {
        i128::from(self.emitted)
            - i128::from(self.sent)
            - i128::from(self.dropped)
            - i128::from(self.buffered)
    }
}

/// Every sidecar's counters (the tests panic with the error).
async fn counts(mesh: &Mesh) -> Result<BTreeMap<Service, Counts>, String> {
    let stats = mesh
        .meshray_stats()
        .await
        .map_err(|e| format!("reading the sidecars' stats: {e}"))?;
    stats
        .iter()
        .map(|(service, s)| Ok((*service, Counts::of(*service, s)?)))
        .collect()
}

/// The relay is killed once a quarter of 2000 requests from 16 concurrent clients were
/// sent; all 2000 answer 200; each
/// sidecar's `meshray_buffered_documents` never exceeds `max_buffered` × workers (sampled
/// every 100 ms during the load and after it); documents are dropped (buffer full or relay
/// unavailable) and every emitted document is sent, dropped, buffered or in one of the
/// at most `max_in_flight` × `max_batch` × workers documents of posts in flight; Envoy's RSS
/// grows by less than 64 MiB per sidecar. Once the relay is back on the same port, five
/// requests become five fully linked traces and every sidecar's
/// `meshray_segments_sent_total` grows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_outage_under_load_stays_bounded_and_tracing_resumes() {
    let mut mesh = Mesh::start(MeshOptions {
        plugin_config_json: PLUGIN_CONFIG.to_owned(),
        concurrency: CONCURRENCY,
        label: "relay-down-load".into(),
        ..MeshOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("the mesh did not start: {e}"));

    let before = counts(&mesh).await.unwrap_or_else(|e| panic!("{e}"));
    let rss_before: BTreeMap<Service, u64> = mesh
        .pods()
        .iter()
        .map(|p| (p.app.service(), p.sidecar.rss_bytes().unwrap()))
        .collect();

    // The load: CLIENTS tasks share one counter of requests to send.
    let url = mesh.productpage_url();
    let client = HttpClient::new();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut load = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (url, client, next) = (url.clone(), client.clone(), Arc::clone(&next));
        load.spawn(async move {
            let mut failures: Vec<String> = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < REQUESTS {
                match client.get(&url).await {
                    Ok(r) if r.status == 200 => {}
                    Ok(r) => failures.push(format!("status {}: {}", r.status, r.text())),
                    Err(e) => failures.push(e.to_string()),
                }
            }
            failures
        });
    }
    // Meanwhile, kill the relay a quarter of the way in and sample the gauge of every sidecar.
    let mut killed_after = None;
    let mut max_buffered: BTreeMap<Service, u64> = BTreeMap::new();
    let mut samples = 0;
    let mut failures: Vec<String> = Vec::new();
    while !load.is_empty() {
        tokio::select! {
            done = load.join_next() => {
                if let Some(result) = done {
                    failures.extend(result.unwrap_or_else(|e| vec![format!("client task: {e}")]));
                }
            }
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                let sent = next.load(Ordering::Relaxed).min(REQUESTS);
                if killed_after.is_none() && sent >= REQUESTS / 4 {
                    let status = mesh.relay().kill().unwrap_or_else(|e| panic!("{e}"));
                    assert!(!mesh.relay().is_running(), "relay still running ({status})");
                    killed_after = Some(sent);
                }
                for (service, c) in counts(&mesh).await.unwrap_or_else(|e| panic!("{e}")) {
                    let max = max_buffered.entry(service).or_default();
                    *max = (*max).max(c.buffered);
                }
                samples += 1;
            }
        }
    }
    let elapsed = started.elapsed();
    let rate = REQUESTS as f64 / elapsed.as_secs_f64();
    eprintln!(
        "relay killed after {killed_after:?} requests: {REQUESTS} requests from {CLIENTS} clients \
         in {elapsed:.2?} = {rate:.0} requests/s, {} failed; {samples} gauge samples",
        failures.len()
    );
    assert!(
        killed_after.is_some(),
        "the load ended before the relay was killed"
    );
    if !failures.is_empty() {
        panic!(
            "{} of {REQUESTS} requests failed while the relay was down; first: {:?}\n{}",
            failures.len(),
            &failures[..failures.len().min(5)],
            mesh.diagnostics().await
        );
    }

    // Let the last flushes fail, then read counters that no longer move.
    let mut after = counts(&mesh).await.unwrap_or_else(|e| panic!("{e}"));
    let settle_until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < settle_until {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let again = counts(&mesh).await.unwrap_or_else(|e| panic!("{e}"));
        let settled = again == after;
        after = again;
        if settled {
            break;
        }
    }
    let in_flight_bound = MAX_IN_FLIGHT * MAX_BATCH * u64::from(CONCURRENCY);
    let buffered_bound = MAX_BUFFERED * u64::from(CONCURRENCY);
    let mut wrong: Vec<String> = Vec::new();
    for pod in mesh.pods() {
        let service = pod.app.service();
        let c = after[&service];
        let max = max_buffered
            .get(&service)
            .copied()
            .unwrap_or(0)
            .max(c.buffered);
        let rss_after = pod.sidecar.rss_bytes().unwrap();
        let growth = rss_after.saturating_sub(rss_before[&service]);
        eprintln!(
            "{service}: emitted {} (before the outage {}), sent {}, dropped {} (buffer_full {}, \
             relay_unavailable {}, all reasons {}), buffered {} (max seen {max}), in flight {}; \
             RSS {:.1} MiB -> {:.1} MiB (+{:.1} MiB)",
            c.emitted,
            before[&service].emitted,
            c.sent,
            c.dropped,
            c.buffer_full,
            c.relay_unavailable,
            c.dropped_by_reason_sum,
            c.buffered,
            c.unaccounted(),
            rss_before[&service] as f64 / MIB,
            rss_after as f64 / MIB,
            growth as f64 / MIB
        );
        if max > buffered_bound {
            wrong.push(format!(
                "{service}: meshray_buffered_documents reached {max}, more than max_buffered × \
                 {CONCURRENCY} workers = {buffered_bound}"
            ));
        }
        if c.buffer_full + c.relay_unavailable == 0 {
            wrong.push(format!(
                "{service}: nothing counted as dropped for buffer_full or relay_unavailable: {c:?}"
            ));
        }
        if c.dropped != c.dropped_by_reason_sum {
            wrong.push(format!(
                "{service}: meshray_segments_dropped_total {} is not the sum of the per-reason \
                 counters {}",
                c.dropped, c.dropped_by_reason_sum
            ));
        }
        // emitted = sent + dropped + buffered + (documents in posts not yet answered), and at
        // most max_in_flight posts of max_batch documents per worker are in flight.
        let unaccounted = c.unaccounted();
        if !(0..=i128::from(in_flight_bound)).contains(&unaccounted) {
            wrong.push(format!(
                "{service}: emitted {} but sent {} + dropped {} + buffered {} leaves {unaccounted} \
                 documents, expected 0 ..= {in_flight_bound} (posts in flight)",
                c.emitted, c.sent, c.dropped, c.buffered
            ));
        }
        if c.emitted <= before[&service].emitted {
            wrong.push(format!("{service}: emitted nothing during the load: {c:?}"));
        }
        if growth >= MAX_RSS_GROWTH {
            wrong.push(format!(
                "{service}: Envoy's RSS grew by {:.1} MiB, limit {:.0} MiB",
                growth as f64 / MIB,
                MAX_RSS_GROWTH as f64 / MIB
            ));
        }
    }
    if !wrong.is_empty() {
        panic!(
            "during the relay outage:\n  - {}\n{}",
            wrong.join("\n  - "),
            mesh.diagnostics().await
        );
    }

    // The relay comes back on the same port; tracing resumes.
    mesh.relay().restart().await.unwrap();
    let restarted = SystemTime::now();
    if let Err(err) = mesh.send_requests(AFTER_RESTART, "").await {
        panic!("{err}\n{}", mesh.diagnostics().await);
    }
    let expect = Expectation {
        traces: AFTER_RESTART,
        documents_per_trace: BOOKINFO_DOCUMENTS,
    };
    let since = restarted
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    // The sidecars retry their buffered backlog first, so traces from before the outage
    // arrive in the window too: wait until the requests sent after the restart are in.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let collected = loop {
        let collected = xray::wait_for_traces(
            mesh.xray(),
            restarted,
            expect,
            Duration::from_secs(60),
            Duration::from_secs(1),
        )
        .await;
        let fresh = collected
            .traces
            .iter()
            .filter(|t| t.start_time() >= since)
            .count();
        if fresh >= AFTER_RESTART || std::time::Instant::now() >= deadline {
            break collected;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let fresh: Vec<_> = collected
        .traces
        .iter()
        .filter(|t| t.start_time() >= since)
        .collect();
    if fresh.len() != AFTER_RESTART {
        panic!(
            "expected {AFTER_RESTART} traces after the relay restart, found {}\n{}\n{}",
            fresh.len(),
            collected.describe(),
            mesh.diagnostics().await
        );
    }
    for trace in fresh {
        let problems = bookinfo_trace_problems(trace);
        assert!(
            problems.is_empty(),
            "trace {} after the restart is not fully linked:\n  - {}\n{}",
            trace.id,
            problems.join("\n  - "),
            trace.render()
        );
    }
    let resumed = counts(&mesh).await.unwrap_or_else(|e| panic!("{e}"));
    for (service, c) in &resumed {
        let sent_before = after[service].sent;
        eprintln!(
            "{service}: sent {sent_before} -> {} after the relay restart",
            c.sent
        );
        assert!(
            c.sent > sent_before,
            "{service}: meshray_segments_sent_total did not grow after the relay restart \
             ({sent_before} -> {})\n{}",
            c.sent,
            mesh.diagnostics().await
        );
    }
}
