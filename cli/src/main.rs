//! `meshray`: see what a mesh sent to X-Ray.
//!
//! - `meshray view --since 5m [--out FILE]`: one self-contained HTML page (service map,
//!   trace list, a waterfall per trace) for the last 5 minutes.
//! - `meshray traces --since 5m`: each trace as a text tree, and the service graph.
//!
//! AWS settings come from the default chain (`AWS_REGION`, `AWS_PROFILE`, credentials from
//! the environment, profiles, SSO, IMDS); `AWS_ENDPOINT_URL_XRAY` points it at a local
//! X-Ray API. Progress goes to stderr, results to stdout. Exit status 1 when reading
//! fails, 2 on bad arguments (clap).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand};
use meshray_cli::collect::{Collected, Progress, collect};
use meshray_cli::service_graph::MapSource;
use meshray_cli::since::parse_since;
use meshray_cli::{aws, view};
use meshray_core::trace::{render_graph, service_graph};

/// See what an Istio mesh sent to AWS X-Ray (or a local X-Ray API).
#[derive(Debug, Parser)]
#[command(name = "meshray", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write one self-contained HTML page: service map, trace list, a waterfall per trace.
    View {
        #[command(flatten)]
        window: Window,
        /// Where to write the page.
        #[arg(long, short, default_value = "meshray-view.html")]
        out: PathBuf,
    },
    /// Print each trace as a text tree, then the service graph.
    Traces {
        #[command(flatten)]
        window: Window,
    },
}

#[derive(Debug, Args)]
struct Window {
    /// How far back to look: 90s, 5m, 1h30m, 2d.
    #[arg(long, default_value = "5m", value_parser = parse_since)]
    since: Duration,
    /// Read at most this many traces (the most recent).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    limit: u32,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("meshray: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), String> {
    let (Command::View { window, .. } | Command::Traces { window }) = &command;
    let sdk = aws::load_default_config().await;
    let source = aws::describe_source(&sdk);
    let reader = aws::reader(&sdk).await.map_err(|e| e.to_string())?;
    let to = SystemTime::now();
    let from = to.checked_sub(window.since).unwrap_or(UNIX_EPOCH);
    eprintln!(
        "reading the last {} from {source}…",
        view::format::span(window.since.as_secs_f64())
    );
    let limit = usize::try_from(window.limit).unwrap_or(usize::MAX);
    let collected = collect(&reader, from, to, limit, report)
        .await
        .map_err(|e| e.to_string())?;
    match command {
        Command::View { out, .. } => {
            let html = view::render(&view::Page {
                source: &source,
                from: secs(from),
                to: secs(to),
                traces: &collected.traces,
                map: &collected.map,
                map_source: collected.map_source,
                listed: collected.listed,
            });
            std::fs::write(&out, &html)
                .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
            let shown = std::path::absolute(&out).unwrap_or(out);
            println!(
                "{} ({} traces, {} services, {} kB)",
                shown.display(),
                collected.traces.len(),
                collected.map.nodes.len(),
                html.len() / 1024
            );
        }
        Command::Traces { .. } => print_traces(&collected),
    }
    Ok(())
}

fn print_traces(collected: &Collected) {
    if collected.traces.is_empty() {
        println!("no traces in the window");
        return;
    }
    for trace in &collected.traces {
        println!("{}", trace.render());
    }
    println!("Service graph (derived from the segment documents):");
    print!("{}", render_graph(&service_graph(&collected.traces)));
    if collected.map_source == MapSource::ServiceGraph {
        println!(
            "(GetServiceGraph also answered {} services)",
            collected.map.nodes.len()
        );
    }
}

fn report(progress: Progress) {
    match progress {
        Progress::Listed { listed, reading } if reading < listed => {
            eprintln!("GetTraceSummaries: {listed} traces; reading the {reading} most recent");
        }
        Progress::Listed { listed, .. } => eprintln!("GetTraceSummaries: {listed} traces"),
        Progress::Read(n) if n % 100 == 0 && n > 0 => eprintln!("BatchGetTraces: {n} traces read"),
        Progress::Read(_) => {}
        Progress::ServiceGraph(0) => {
            eprintln!("GetServiceGraph: no services; deriving the map from the documents");
        }
        Progress::ServiceGraph(n) => eprintln!("GetServiceGraph: {n} services"),
        Progress::ServiceGraphFailed(err) => {
            eprintln!("{err}; deriving the map from the documents");
        }
    }
}

fn secs(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
