//! `meshray-demo`: a local mesh end to end, on this machine.
//!
//! Starts moto (the X-Ray API), the relay and three Istio-shaped Envoy sidecars with the
//! meshray filter around the sample app (productpage → reviews → ratings), sends requests
//! through productpage, waits for the traces in X-Ray, prints one trace as a tree and the
//! service graph derived from all of them, then stops everything.
//!
//! Usage: `meshray-demo [--requests N] [--zipkin] [--keep]`
//! (`--zipkin` also turns on Envoy's Zipkin tracer; `--keep` keeps configs and logs).
//! Exits 1 with a message when a step fails, 64 on bad arguments.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use meshray_cli::collect::{Progress, collect};
use meshray_cli::view;

use meshray_e2e::check::{BOOKINFO_DOCUMENTS, bookinfo_trace_problems};
use meshray_e2e::http::HttpClient;
use meshray_e2e::xray::{Expectation, render_graph, service_graph};
use meshray_e2e::{HarnessError, Mesh, MeshOptions};

/// How often the relay's counters are shown while waiting.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// Requests between two progress lines while sending.
const SEND_STEP: usize = 5;

/// Command-line options.
struct Args {
    requests: usize,
    zipkin: bool,
    keep: bool,
    out: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        requests: 20,
        zipkin: false,
        keep: false,
        out: PathBuf::from("target/meshray-demo/meshray-view.html"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--requests" => {
                let value = it.next().ok_or("--requests needs a number")?;
                args.requests = value
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(format!("--requests {value:?}: not a positive number"))?;
            }
            "--zipkin" => args.zipkin = true,
            "--keep" => args.keep = true,
            "--out" => args.out = PathBuf::from(it.next().ok_or("--out needs a file name")?),
            "-h" | "--help" => {
                return Err(
                    "usage: meshray-demo [--requests N] [--zipkin] [--keep] [--out FILE]"
                        .to_owned(),
                );
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

fn step(started: Instant, message: &str) {
    println!("[{:>5.1}s] {message}", started.elapsed().as_secs_f64());
}

async fn run(args: Args) -> Result<(), String> {
    let started = Instant::now();
    step(
        started,
        "Starting moto (X-Ray API), meshray-relay, 3 Envoy sidecars with the meshray filter and the sample app…",
    );
    let mut mesh = Mesh::start(MeshOptions {
        zipkin_tracer: args.zipkin,
        label: "demo".into(),
        ..MeshOptions::default()
    })
    .await
    .map_err(|e: HarnessError| format!("the mesh did not start: {e}"))?;
    if args.keep {
        mesh.keep_run_dir();
    }
    step(
        started,
        &format!("Mesh up; configs and logs in {}", mesh.dir().display()),
    );
    for pod in mesh.pods() {
        println!(
            "          {:<12} app {}  sidecar inbound {}  outbound {}",
            pod.app.service().name(),
            pod.app.addr(),
            pod.sidecar.inbound_addr(),
            pod.sidecar.outbound_addr()
        );
    }
    println!(
        "          relay {}  X-Ray API {}",
        mesh.relay().addr(),
        mesh.moto().endpoint()
    );

    step(
        started,
        &format!(
            "Sending {} requests to {}",
            args.requests,
            mesh.productpage_url()
        ),
    );
    let mut sent = 0;
    while sent < args.requests {
        let batch = SEND_STEP.min(args.requests - sent);
        if let Err(err) = mesh.send_requests(batch, "").await {
            return Err(format!("{err}\n{}", mesh.diagnostics().await));
        }
        sent += batch;
        step(
            started,
            &format!("  {sent}/{} requests answered 200", args.requests),
        );
    }

    step(
        started,
        "Waiting for the traces in X-Ray (sidecars post to the relay every second)…",
    );
    let expect = Expectation {
        traces: args.requests,
        documents_per_trace: BOOKINFO_DOCUMENTS,
    };
    let relay_progress = tokio::spawn(show_relay_progress(started, mesh.relay().url()));
    let collected = mesh.wait_for_traces(expect, Duration::from_secs(60)).await;
    relay_progress.abort();
    if !collected.complete {
        return Err(format!(
            "traces incomplete:\n{}\n{}",
            collected.describe(),
            mesh.diagnostics().await
        ));
    }
    step(
        started,
        &format!(
            "{} traces in X-Ray after {:.1?}",
            collected.traces.len(),
            collected.waited
        ),
    );
    let Some(first) = collected.traces.first() else {
        return Err("no traces".to_owned());
    };
    println!("\n{}", first.render());
    println!("Service graph (derived from the segment documents):");
    print!("{}", render_graph(&service_graph(&collected.traces)));

    let broken: Vec<String> = collected
        .traces
        .iter()
        .filter_map(|t| {
            let problems = bookinfo_trace_problems(t);
            (!problems.is_empty()).then(|| format!("{}: {}", t.id, problems.join("; ")))
        })
        .collect();
    if let Some(zipkin) = mesh.zipkin() {
        let spans = zipkin.wait_for_spans(1, Duration::from_secs(6)).await;
        println!("Zipkin tracer: {spans} spans received by the in-test collector");
    }
    if !broken.is_empty() {
        return Err(format!(
            "{} of {} traces are not fully linked:\n{}",
            broken.len(),
            collected.traces.len(),
            broken.join("\n")
        ));
    }
    if collected.traces.len() != args.requests {
        return Err(format!(
            "expected {} traces, found {}",
            args.requests,
            collected.traces.len()
        ));
    }
    let page = write_view(&mesh, &args.out).await?;
    step(
        started,
        &format!(
            "All {} traces fully linked. Service map and waterfalls: {}",
            collected.traces.len(),
            page.display()
        ),
    );
    step(started, "Stopping.");
    Ok(())
}

/// Prints the relay's document counters (received from the sidecars, sent to X-Ray) when
/// they change, until aborted.
async fn show_relay_progress(started: Instant, relay_url: String) {
    let http = HttpClient::new();
    let url = format!("{relay_url}/metrics");
    let mut shown = (0, 0);
    loop {
        tokio::time::sleep(PROGRESS_EVERY).await;
        let Ok(response) = http.get(&url).await else {
            continue;
        };
        let text = response.text();
        let counter = |name: &str| -> u64 {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
                .unwrap_or(0)
        };
        let now = (
            counter("meshray_relay_documents_received_total "),
            counter("meshray_relay_documents_sent_total "),
        );
        if now != shown {
            shown = now;
            step(
                started,
                &format!(
                    "  relay: {} documents received from the sidecars, {} sent to X-Ray",
                    now.0, now.1
                ),
            );
        }
    }
}

/// Reads the run back as `meshray view` does (GetTraceSummaries, BatchGetTraces,
/// GetServiceGraph) and writes its page to `out`; returns the page's absolute path.
async fn write_view(mesh: &Mesh, out: &std::path::Path) -> Result<PathBuf, String> {
    let from = mesh
        .started_at()
        .checked_sub(Duration::from_secs(60))
        .unwrap_or(UNIX_EPOCH);
    let to = SystemTime::now() + Duration::from_secs(60);
    let mut map_note = String::new();
    let collected = collect(mesh.xray().reader(), from, to, 1000, |p| {
        if let Progress::ServiceGraph(0) = p {
            map_note =
                "GetServiceGraph answered no services (moto); map derived from the documents"
                    .to_owned();
        }
    })
    .await
    .map_err(|e| format!("reading the traces back for the page: {e}"))?;
    if !map_note.is_empty() {
        println!("          {map_note}");
    }
    let secs = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    };
    let source = format!(
        "the demo's local X-Ray API (moto) at {}",
        mesh.xray().endpoint()
    );
    let html = view::render(&view::Page {
        source: &source,
        from: secs(from),
        to: secs(to),
        traces: &collected.traces,
        map: &collected.map,
        map_source: collected.map_source,
        listed: collected.listed,
    });
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(out, html).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(std::path::absolute(out).unwrap_or_else(|_| out.to_owned()))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(64);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("meshray-demo failed: {message}");
            ExitCode::FAILURE
        }
    }
}
