//! `meshray-bench`, run by `make bench`: what the meshray filter costs per request next to
//! untraced Envoy, Envoy's native X-Ray and Zipkin tracers and an empty wasm filter, and
//! how many documents per second one core of the relay takes. Writes
//! `target/bench/results.json` and the generated part of `docs/BENCHMARKS.md`.
//!
//! Loopback only. The machine's two cores are split: CPU 1 runs what is measured (the
//! proxy under test, the relay, the serde baseline), CPU 0 everything that loads it.
//!
//! # Layout
//! - [`envoy`]: the compared Envoy configurations.
//! - [`filter_bench`]: rounds of wrk against each configuration.
//! - [`relay_bench`], [`load`], [`documents`], [`baseline`]: the relay's throughput and its raw limit.
//! - [`servers`]: the receiver and the X-Ray sink (separate processes on CPU 0).
//! - [`report`]: results.json and BENCHMARKS.md.
//! - [`process`], [`procstat`], [`http`], [`wrk`]: plumbing.
#![forbid(unsafe_code)]

mod baseline;
mod documents;
mod envoy;
mod error;
mod filter_bench;
mod http;
mod load;
mod process;
mod procstat;
mod relay_bench;
mod report;
mod servers;
mod wrk;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::envoy::Variant;
use crate::error::Result;
use crate::filter_bench::FilterSettings;
use crate::relay_bench::RelaySettings;

/// The core everything measured runs on.
pub const TEST_CORE: usize = 1;
/// The core the load, the upstream and the receivers run on.
pub const LOAD_CORE: usize = 0;

/// `meshray-bench`: the filter's and the relay's costs, as ratios against baselines
/// measured in the same run.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Paths of what is measured.
#[derive(Debug, clap::Args)]
struct Paths {
    /// Envoy binary.
    #[arg(long, default_value = ".venv/bin/envoy")]
    envoy: PathBuf,
    /// The shipped meshray filter.
    #[arg(long, default_value = "target/filter/meshray_filter.wasm")]
    meshray_wasm: PathBuf,
    /// The empty filter (the floor).
    #[arg(
        long,
        default_value = "target/wasm32-wasip1/wasm/meshray_empty_filter.wasm"
    )]
    empty_wasm: PathBuf,
    /// The release relay.
    #[arg(long, default_value = "target/release/meshray-relay")]
    relay: PathBuf,
    /// Output directory.
    #[arg(long, default_value = "target/bench")]
    out_dir: PathBuf,
    /// The Markdown report to update.
    #[arg(long, default_value = "docs/BENCHMARKS.md")]
    doc: PathBuf,
}

/// Knobs of the runs.
#[derive(Debug, clap::Args)]
struct Knobs {
    /// Rounds of the filter benchmark (each runs every configuration and shape once).
    #[arg(long, default_value_t = 5)]
    rounds: u32,
    /// Seconds of each filter measurement.
    #[arg(long, default_value_t = 4)]
    seconds: u32,
    /// wrk connections.
    #[arg(long, default_value_t = 32)]
    connections: u32,
    /// Seconds of the relay's full-load measurement.
    #[arg(long, default_value_t = 6)]
    relay_seconds: u32,
    /// Connections of the relay load generator.
    #[arg(long, default_value_t = 8)]
    relay_connections: usize,
    /// Share of traces with foreign ids in the relay load.
    #[arg(long, default_value_t = 0.2)]
    foreign_share: f64,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Both benchmarks, then results.json and BENCHMARKS.md (what `make bench` runs).
    All {
        #[command(flatten)]
        paths: Paths,
        #[command(flatten)]
        knobs: Knobs,
    },
    /// Only the filter benchmark, for the configurations listed (all by default): prints
    /// every measurement, the medians and the ratios; results.json and BENCHMARKS.md are
    /// left as they are. For profiling iterations; `all` is the recorded run.
    Filter {
        #[command(flatten)]
        paths: Paths,
        #[command(flatten)]
        knobs: Knobs,
        /// Configurations to run (comma-separated).
        #[arg(long, value_delimiter = ',', value_enum, default_values_t = Variant::ALL)]
        variants: Vec<Variant>,
    },
    /// Only the relay benchmark, from the documents a previous filter benchmark captured
    /// (prints its figures; results.json and BENCHMARKS.md are left as they are).
    Relay {
        #[command(flatten)]
        paths: Paths,
        #[command(flatten)]
        knobs: Knobs,
    },
    /// Internal: the receiver of the filter benchmark.
    Receiver {
        /// HTTP address.
        #[arg(long)]
        http: SocketAddr,
        /// UDP address.
        #[arg(long)]
        udp: SocketAddr,
        /// Where to write the first filter documents received.
        #[arg(long)]
        capture: Option<PathBuf>,
    },
    /// Internal: the X-Ray sink of the relay benchmark.
    XraySink {
        /// HTTP address.
        #[arg(long)]
        listen: SocketAddr,
        /// Never answer (fills the relay's queue).
        #[arg(long)]
        stall: bool,
    },
    /// Internal: the serde baseline (run pinned to the measured core).
    SerdeBaseline {
        /// Captured filter documents.
        #[arg(long)]
        templates: PathBuf,
        /// Share of traces with foreign ids.
        #[arg(long)]
        foreign_share: f64,
        /// Where to write the result.
        #[arg(long)]
        out: PathBuf,
    },
}

async fn run_all(paths: Paths, knobs: Knobs) -> Result<()> {
    let self_exe = std::env::current_exe().map_err(error::io("finding this binary"))?;
    let filter_settings = FilterSettings {
        envoy: paths.envoy.clone(),
        self_exe: self_exe.clone(),
        meshray_wasm: paths.meshray_wasm.clone(),
        empty_wasm: paths.empty_wasm,
        rounds: knobs.rounds,
        seconds: knobs.seconds,
        connections: knobs.connections,
        variants: Variant::ALL.to_vec(),
        out_dir: paths.out_dir.clone(),
    };
    let filter = filter_bench::run(&filter_settings).await?;
    let relay_settings = RelaySettings {
        relay: paths.relay,
        self_exe,
        templates: filter.captured.clone(),
        seconds: knobs.relay_seconds,
        connections: knobs.relay_connections,
        foreign_share: knobs.foreign_share,
        out_dir: paths.out_dir.clone(),
    };
    let relay = relay_bench::run(&relay_settings).await?;
    let wasm_bytes = filter_bench::file_bytes(&paths.meshray_wasm);
    let results = report::results_json(&filter, &relay, wasm_bytes, &report::machine(&paths.envoy));
    let markdown = report::markdown(&results, &filter, &relay, knobs.rounds, knobs.seconds);
    let results_path = paths.out_dir.join("results.json");
    report::write(&results, &markdown, &results_path, &paths.doc)?;
    println!("\n{markdown}");
    println!(
        "wrote {} and {}",
        results_path.display(),
        paths.doc.display()
    );
    Ok(())
}

async fn run_filter_only(paths: Paths, knobs: Knobs, variants: Vec<Variant>) -> Result<()> {
    let settings = FilterSettings {
        envoy: paths.envoy,
        self_exe: std::env::current_exe().map_err(error::io("finding this binary"))?,
        meshray_wasm: paths.meshray_wasm,
        empty_wasm: paths.empty_wasm,
        rounds: knobs.rounds,
        seconds: knobs.seconds,
        connections: knobs.connections,
        variants,
        out_dir: paths.out_dir,
    };
    let filter = filter_bench::run(&settings).await?;
    println!("{}", report::filter_summary(&filter));
    Ok(())
}

async fn run_relay_only(paths: Paths, knobs: Knobs) -> Result<()> {
    let settings = RelaySettings {
        relay: paths.relay,
        self_exe: std::env::current_exe().map_err(error::io("finding this binary"))?,
        templates: paths.out_dir.join("captured-documents.json"),
        seconds: knobs.relay_seconds,
        connections: knobs.relay_connections,
        foreign_share: knobs.foreign_share,
        out_dir: paths.out_dir,
    };
    let relay = relay_bench::run(&settings).await?;
    println!("{}", serde_json::to_string_pretty(&relay)?);
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("meshray-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::All { paths, knobs } => run_all(paths, knobs).await,
            Command::Filter {
                paths,
                knobs,
                variants,
            } => run_filter_only(paths, knobs, variants).await,
            Command::Relay { paths, knobs } => run_relay_only(paths, knobs).await,
            Command::Receiver { http, udp, capture } => {
                servers::run_receiver(http, udp, capture).await
            }
            Command::XraySink { listen, stall } => servers::run_xray_sink(listen, stall).await,
            Command::SerdeBaseline {
                templates,
                foreign_share,
                out,
            } => relay_bench::run_baseline(&templates, foreign_share, &out),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meshray-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
