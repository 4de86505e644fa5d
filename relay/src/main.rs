//! The `meshray-relay` binary: logging, configuration, bind, [`meshray_relay::run`] until
//! SIGTERM or SIGINT. Exit codes: 0 after a clean drain, 2 for bad configuration
//! (every problem listed), 1 when start-up fails.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use meshray_relay::{Cli, LogFormat, RelayError, runtime};
use tokio::net::TcpListener;
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let config = Cli::parse().into_config();
    // Logging first (in the asked format when it parsed), so start-up is logged too.
    let format = match &config {
        Ok(config) => config.log_format,
        Err(_) => LogFormat::Text,
    };
    init_logging(format);
    let config = match config {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("meshray-relay: {errors}");
            return ExitCode::from(2);
        }
    };
    let shape = runtime::shape();
    let usable_cpus = runtime::usable_cpus();
    let runtime = match runtime::build(shape) {
        Ok(runtime) => runtime,
        Err(e) => {
            error!(error = %e, "Cannot start the async runtime.");
            return ExitCode::FAILURE;
        }
    };
    info!(
        threads = shape.threads(),
        usable_cpus,
        "Async runtime sized from the CPUs the relay may use (scheduling affinity, cgroup CPU quota; TOKIO_WORKER_THREADS overrides)."
    );
    let result = runtime.block_on(async {
        let shutdown = shutdown_signal();
        let addr = config.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| RelayError::Bind { addr, source })?;
        meshray_relay::run(listener, config, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %e, "The relay could not start.");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr (with `--sink stdout`, stdout carries only documents), at the levels
/// `RUST_LOG` asks (default `info`): `text` lines with colours only when stderr is a
/// terminal (a file or `kubectl logs` gets no escape codes), or `json`, one object per
/// event with its fields at the top level.
fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

/// Completes on SIGTERM (Kubernetes) or SIGINT (Ctrl-C).
///
/// The handlers are installed when this is called, not when the future is first polled:
/// a SIGTERM arriving right after start-up must drain, not kill the process.
#[cfg(unix)]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        match (terminate, interrupt) {
            (Ok(mut terminate), Ok(mut interrupt)) => {
                tokio::select! {
                    _ = terminate.recv() => info!("SIGTERM received."),
                    _ = interrupt.recv() => info!("SIGINT received."),
                }
            }
            (Err(e), _) | (_, Err(e)) => {
                error!(error = %e, "Cannot install signal handlers; stop the relay with SIGKILL.");
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Completes on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    async {
        if tokio::signal::ctrl_c().await.is_ok() {
            info!("Ctrl-C received.");
        } else {
            std::future::pending::<()>().await;
        }
    }
}
