//! The async runtime the binary runs the relay on, sized from the CPUs the process may
//! use: its scheduling affinity (`taskset`, a cpuset) and its cgroup CPU quota (a
//! Kubernetes CPU limit), as `std::thread::available_parallelism` reads them.
//!
//! On one CPU the runtime is single-threaded: the accept loop, the connections, the
//! batcher and the uploads share the one thread that can run, instead of a worker
//! thread plus the main thread handing wake-ups to each other on the same core. On more,
//! tokio's multi-threaded runtime with one worker per CPU (or `TOKIO_WORKER_THREADS`).

use std::num::NonZeroUsize;

use tokio::runtime::{Builder, Runtime};

/// The variable tokio reads for its number of worker threads.
const TOKIO_WORKER_THREADS: &str = "TOKIO_WORKER_THREADS";

/// The kind of runtime, and its worker threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeShape {
    /// Everything on the thread that starts the relay.
    SingleThread,
    /// Tokio's work-stealing runtime with this many worker threads.
    Workers(usize),
}

impl RuntimeShape {
    /// The shape for `cpus` usable CPUs, or the worker threads `TOKIO_WORKER_THREADS`
    /// asks for (`workers_asked`, which tokio reads itself; a value tokio refuses makes
    /// it say so at start).
    pub fn for_cpus(cpus: usize, workers_asked: Option<&str>) -> RuntimeShape {
        match workers_asked {
            Some(asked) => RuntimeShape::Workers(asked.trim().parse().unwrap_or(0)),
            None if cpus <= 1 => RuntimeShape::SingleThread,
            None => RuntimeShape::Workers(cpus),
        }
    }

    /// Threads that run tasks.
    pub fn threads(self) -> usize {
        match self {
            RuntimeShape::SingleThread => 1,
            RuntimeShape::Workers(n) => n,
        }
    }
}

/// The CPUs this process may run on (affinity and cgroup quota; 1 when unknown).
pub fn usable_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// The shape for this process: its usable CPUs and `TOKIO_WORKER_THREADS`.
pub fn shape() -> RuntimeShape {
    let asked = std::env::var(TOKIO_WORKER_THREADS).ok();
    RuntimeShape::for_cpus(usable_cpus(), asked.as_deref())
}

/// Builds a runtime of `shape`, timers and I/O enabled.
///
/// # Errors
/// When the operating system refuses the runtime's threads or its I/O driver.
pub fn build(shape: RuntimeShape) -> std::io::Result<Runtime> {
    match shape {
        RuntimeShape::SingleThread => Builder::new_current_thread().enable_all().build(),
        // Tokio sizes its workers itself, from the same CPUs or TOKIO_WORKER_THREADS.
        RuntimeShape::Workers(_) => Builder::new_multi_thread().enable_all().build(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One usable CPU: one thread; more: a worker each; `TOKIO_WORKER_THREADS` decides
    /// when set.
    #[test]
    fn the_runtime_follows_the_usable_cpus() {
        assert_eq!(RuntimeShape::for_cpus(1, None), RuntimeShape::SingleThread);
        assert_eq!(RuntimeShape::for_cpus(0, None), RuntimeShape::SingleThread);
        assert_eq!(RuntimeShape::for_cpus(2, None), RuntimeShape::Workers(2));
        assert_eq!(RuntimeShape::for_cpus(16, None), RuntimeShape::Workers(16));
        assert_eq!(
            RuntimeShape::for_cpus(1, Some("4")),
            RuntimeShape::Workers(4)
        );
        assert_eq!(RuntimeShape::for_cpus(8, Some("2")).threads(), 2);
        assert_eq!(RuntimeShape::SingleThread.threads(), 1);
    }

    /// Both shapes run the relay's kind of work: spawned tasks, timers, sockets.
    #[test]
    fn both_shapes_run_tasks_timers_and_sockets() {
        for shape in [RuntimeShape::SingleThread, RuntimeShape::Workers(2)] {
            let runtime = build(shape).unwrap();
            let answer = runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let accepted = tokio::spawn(async move { listener.accept().await.is_ok() });
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                let connected = tokio::net::TcpStream::connect(addr).await.is_ok();
                connected && accepted.await.unwrap()
            });
            assert!(answer, "{shape:?}");
        }
    }
}
