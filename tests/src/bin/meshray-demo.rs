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

use std::process::ExitCode;
use std::time::{Duration, Instant};

use meshray_e2e::check::{BOOKINFO_DOCUMENTS, bookinfo_trace_problems};
use meshray_e2e::xray::{Expectation, render_graph, service_graph};
use meshray_e2e::{HarnessError, Mesh, MeshOptions};

/// Command-line options.
struct Args {
    requests: usize,
    zipkin: bool,
    keep: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        requests: 20,
        zipkin: false,
        keep: false,
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
            "-h" | "--help" => {
                return Err("usage: meshray-demo [--requests N] [--zipkin] [--keep]".to_owned());
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
    if let Err(err) = mesh.send_requests(args.requests, "").await {
        return Err(format!("{err}\n{}", mesh.diagnostics().await));
    }

    step(started, "Waiting for the traces in X-Ray…");
    let expect = Expectation {
        traces: args.requests,
        documents_per_trace: BOOKINFO_DOCUMENTS,
    };
    let collected = mesh.wait_for_traces(expect, Duration::from_secs(60)).await;
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
    step(
        started,
        &format!(
            "All {} traces fully linked. Stopping.",
            collected.traces.len()
        ),
    );
    Ok(())
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
