//! The relay benchmark: the release relay pinned to one core, taking realistic batches
//! (the filter's own documents, segments and subsegments, epoch and foreign ids) from the
//! load generator on the other core and sending them with `PutTraceSegments` to a local
//! sink that answers at once. Measures documents delivered per relay CPU-second at the
//! rate the relay sustains (the load keeps the relay's backlog bounded, so the queue
//! never fills and no refused post spends CPU that no kept document pays back), ingest
//! p99 at half of that rate, RSS with a full queue, and the raw serde limit of the same
//! documents on the same core.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::documents::{BATCH_DOCUMENTS, batches, load_templates};
use crate::error::{BenchError, Result, io};
use crate::load::{self, LoadReport, Pace};
use crate::process::{Pinned, free_tcp_port};
use crate::{LOAD_CORE, TEST_CORE, http, procstat};

/// Settings of a relay benchmark run.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// The release relay binary.
    pub relay: PathBuf,
    /// This binary (sink, baseline).
    pub self_exe: PathBuf,
    /// Captured filter documents.
    pub templates: PathBuf,
    /// Seconds of the full-load measurement.
    pub seconds: u32,
    /// Load connections.
    pub connections: usize,
    /// Share of traces with foreign ids.
    pub foreign_share: f64,
    /// Output directory.
    pub out_dir: PathBuf,
}

/// The relay benchmark's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct RelayResults {
    /// The full-load run (backlog-bounded: as fast as the relay sustains).
    pub full_load: LoadReport,
    /// Relay CPU seconds from the start of the full-load run until the relay had
    /// delivered every document it accepted.
    pub relay_cpu_s: f64,
    /// Wall-clock seconds of the same span.
    pub measured_s: f64,
    /// Documents delivered to the sink per relay CPU-second (what one busy core does).
    pub documents_per_cpu_s: f64,
    /// Documents accepted per wall-clock second.
    pub documents_per_s: f64,
    /// Documents the sink received per wall-clock second during the measured span.
    pub delivered_per_s: f64,
    /// Documents the sink received during the measured span (= accepted, when drained).
    pub delivered: u64,
    /// Relay CPU µs per delivered document.
    pub cpu_us_per_document: f64,
    /// Relay CPU seconds per wall-clock second during the measured span (1.0: its core
    /// was saturated; less: the load core or the backlog bound held it back).
    pub relay_busy: f64,
    /// The most documents the load let the relay hold accepted but undelivered.
    pub backlog_documents: u64,
    /// The run at half of `documents_per_s`.
    pub half_load: LoadReport,
    /// RSS after the runs with the sink answering, MiB.
    pub rss_mib: f64,
    /// RSS with the queue full (sink never answers), MiB.
    pub rss_full_queue_mib: f64,
    /// Posts refused (429/503) while filling the queue: proves it was full.
    pub full_queue_refused_posts: u64,
    /// Typed borrowed serde parse + checks + serialisation, documents per second on one core.
    pub serde_documents_per_s: f64,
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The most documents the throughput run lets the relay hold accepted but undelivered:
/// a fifth of its default queue (10,000), many full batches for its uploaders.
const BACKLOG_DOCUMENTS: u64 = 2_000;
/// How long the bench waits for the relay to deliver what it accepted.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The number of batches prepared (cycled through by the load).
const PREPARED_BATCHES: usize = 400;
/// The seed of the prepared batches (the baseline regenerates the same ones).
pub const SEED: u64 = 0x6d65_7368;

async fn start_sink(settings: &RelaySettings, stall: bool) -> Result<(Pinned, u16)> {
    let port = free_tcp_port()?;
    let mut args = vec![
        "xray-sink".to_owned(),
        "--listen".to_owned(),
        loopback(port).to_string(),
    ];
    if stall {
        args.push("--stall".to_owned());
    }
    let name = if stall { "sink-stalled" } else { "sink" };
    let log = settings.out_dir.join(format!("logs/{name}.log"));
    let sink = Pinned::start(name, LOAD_CORE, &settings.self_exe, &args, &[], &log)?;
    crate::process::wait_ready(name, loopback(port), Duration::from_secs(10), || true)?;
    Ok((sink, port))
}

async fn start_relay(
    settings: &RelaySettings,
    sink_port: u16,
    name: &str,
) -> Result<(Pinned, SocketAddr)> {
    let port = free_tcp_port()?;
    let addr = loopback(port);
    let args: Vec<String> = [
        "--listen",
        &addr.to_string(),
        "--sink",
        "xray",
        "--daemon-listen",
        "off",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let envs = [
        (
            "AWS_ENDPOINT_URL_XRAY",
            format!("http://127.0.0.1:{sink_port}"),
        ),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "bench".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "bench".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    let log = settings.out_dir.join(format!("logs/{name}.log"));
    let mut relay = Pinned::start(name, TEST_CORE, &settings.relay, &args, &envs, &log)?;
    for _ in 0..100 {
        if !relay.is_running() {
            return Err(BenchError::NotReady(format!("{name} (exited)")));
        }
        if let Ok((200, _)) = http::get(addr, "/readyz").await {
            return Ok((relay, addr));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(BenchError::NotReady(name.to_owned()))
}

/// Waits until the sink on `port` has received `expected` documents (the relay delivered
/// all it accepted), or [`DRAIN_TIMEOUT`]; returns the sink's count.
async fn wait_drained(port: u16, expected: u64) -> u64 {
    let deadline = std::time::Instant::now() + DRAIN_TIMEOUT;
    loop {
        let delivered = sink_documents(port).await;
        if delivered >= expected || std::time::Instant::now() >= deadline {
            return delivered;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn sink_documents(port: u16) -> u64 {
    match http::get(loopback(port), "/stats").await {
        Ok((200, body)) => serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["documents"].as_u64())
            .unwrap_or(0),
        _ => 0,
    }
}

/// Runs the relay benchmark.
///
/// # Errors
/// When a process cannot be started, or the captured documents are missing.
pub async fn run(settings: &RelaySettings) -> Result<RelayResults> {
    if !settings.relay.exists() {
        return Err(BenchError::Missing {
            path: settings.relay.clone(),
            hint: "run `cargo build --release -p meshray-relay`",
        });
    }
    std::fs::create_dir_all(settings.out_dir.join("logs"))
        .map_err(io("creating the bench output directory"))?;
    let templates = load_templates(&settings.templates)?;
    let bodies = batches(
        &templates,
        PREPARED_BATCHES,
        settings.foreign_share,
        now_secs(),
        SEED,
    )?;

    let (sink, sink_port) = start_sink(settings, false).await?;
    let (relay, addr) = start_relay(settings, sink_port, "relay").await?;
    let sink_addr = loopback(sink_port);
    let backlog = Pace::Backlog {
        sink: sink_addr,
        max_documents: BACKLOG_DOCUMENTS,
    };
    let warm_up = load::run(
        addr,
        bodies.clone(),
        settings.connections,
        Duration::from_secs(1),
        backlog,
        BATCH_DOCUMENTS,
    )
    .await;
    // The throughput run starts with nothing undelivered (the backlog bound needs it) and
    // ends when everything it got accepted is delivered: the CPU measured is the whole
    // cost of exactly the documents counted.
    let delivered_before = wait_drained(sink_port, warm_up.accepted).await;
    let cpu_before = procstat::cpu_seconds(relay.pid())?;
    let started = std::time::Instant::now();
    let full_load = load::run(
        addr,
        bodies.clone(),
        settings.connections,
        Duration::from_secs(u64::from(settings.seconds)),
        backlog,
        BATCH_DOCUMENTS,
    )
    .await;
    let delivered =
        wait_drained(sink_port, delivered_before + full_load.accepted).await - delivered_before;
    let relay_cpu_s = procstat::cpu_seconds(relay.pid())? - cpu_before;
    let measured_s = started.elapsed().as_secs_f64();
    let documents_per_s = full_load.accepted as f64 / full_load.elapsed_s.max(1e-9);
    let delivered_per_s = delivered as f64 / measured_s.max(1e-9);
    println!(
        "relay: {} documents accepted in {:.1} s ({documents_per_s:.0}/s), {delivered} delivered in {measured_s:.1} s, {relay_cpu_s:.2} s relay CPU ({:.0} delivered/CPU-s, busy {:.0} %), {} refused posts, {} failed",
        full_load.accepted,
        full_load.elapsed_s,
        delivered as f64 / relay_cpu_s.max(1e-9),
        100.0 * relay_cpu_s / measured_s.max(1e-9),
        full_load.refused_posts,
        full_load.failed_posts
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let half_load = load::run(
        addr,
        bodies.clone(),
        settings.connections,
        Duration::from_secs(5),
        Pace::Rate(delivered_per_s / 2.0),
        BATCH_DOCUMENTS,
    )
    .await;
    println!(
        "relay at half load ({:.0} docs/s): p50 {:.0} µs, p99 {:.0} µs",
        delivered_per_s / 2.0,
        half_load.p50_us,
        half_load.p99_us
    );
    let rss_mib = procstat::rss_mib(relay.pid())?;
    drop(relay);
    drop(sink);

    let (stalled_sink, stalled_port) = start_sink(settings, true).await?;
    let (full_relay, full_addr) = start_relay(settings, stalled_port, "relay-full-queue").await?;
    let filling = load::run(
        full_addr,
        bodies.clone(),
        settings.connections,
        Duration::from_secs(4),
        Pace::Closed,
        BATCH_DOCUMENTS,
    )
    .await;
    let rss_full_queue_mib = procstat::rss_mib(full_relay.pid())?;
    println!(
        "relay with a full queue: {rss_full_queue_mib:.1} MiB RSS after {} refused posts",
        filling.refused_posts
    );
    drop(full_relay);
    drop(stalled_sink);

    let baseline_out = settings.out_dir.join("serde-baseline.json");
    let args = vec![
        "serde-baseline".to_owned(),
        "--templates".to_owned(),
        settings.templates.display().to_string(),
        "--foreign-share".to_owned(),
        settings.foreign_share.to_string(),
        "--out".to_owned(),
        baseline_out.display().to_string(),
    ];
    let log = settings.out_dir.join("logs/serde-baseline.log");
    let mut baseline = Pinned::start(
        "serde-baseline",
        TEST_CORE,
        &settings.self_exe,
        &args,
        &[],
        &log,
    )?;
    while baseline.is_running() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let baseline: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&baseline_out).map_err(io(format!("reading {}", baseline_out.display())))?,
    )?;
    let serde_documents_per_s = baseline["documents_per_s"].as_f64().unwrap_or(0.0);
    println!("serde baseline: {serde_documents_per_s:.0} documents/s on one core");

    Ok(RelayResults {
        documents_per_cpu_s: delivered as f64 / relay_cpu_s.max(1e-9),
        cpu_us_per_document: relay_cpu_s * 1e6 / delivered.max(1) as f64,
        relay_busy: relay_cpu_s / measured_s.max(1e-9),
        backlog_documents: BACKLOG_DOCUMENTS,
        delivered_per_s,
        delivered,
        documents_per_s,
        relay_cpu_s,
        measured_s,
        full_load,
        half_load,
        rss_mib,
        rss_full_queue_mib,
        full_queue_refused_posts: filling.refused_posts,
        serde_documents_per_s,
    })
}

/// The baseline subcommand: regenerates the same batches and measures them for 3 s.
///
/// # Errors
/// When the templates cannot be read or the result not written.
pub fn run_baseline(
    templates: &std::path::Path,
    foreign_share: f64,
    out: &std::path::Path,
) -> Result<()> {
    let templates = load_templates(templates)?;
    let bodies = batches(
        &templates,
        PREPARED_BATCHES,
        foreign_share,
        now_secs(),
        SEED,
    )?;
    let (documents_per_s, failed) =
        crate::baseline::documents_per_second(&bodies, Duration::from_secs(3));
    let json = serde_json::json!({"documents_per_s": documents_per_s, "failed": failed});
    std::fs::write(out, json.to_string()).map_err(io(format!("writing {}", out.display())))
}
