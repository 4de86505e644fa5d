//! Steady application load for the drills: a few clients calling one URL in a loop, each
//! pausing between requests, until stopped; every answer's status and latency is kept.
//!
//! The drills compare what they measure only within one run (a phase with a healthy relay
//! against a phase with a broken one), never against fixed times.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::http::HttpClient;

/// What one steady load saw.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Requests answered 200.
    pub ok: usize,
    /// Requests answered otherwise or not at all, described.
    pub failures: Vec<String>,
    /// Latency of every request answered 200, sorted.
    pub latencies: Vec<Duration>,
    /// How long the load ran.
    pub elapsed: Duration,
}

impl LoadReport {
    /// Requests sent.
    pub fn requests(&self) -> usize {
        self.ok + self.failures.len()
    }

    /// The `p`-th percentile latency (0–100, nearest rank) of the answered requests.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1]
    }

    /// One line: requests, failures, p50 / p99 / max.
    pub fn summary(&self) -> String {
        format!(
            "{} requests in {:.1?} ({} failed), p50 {:.1?}, p99 {:.1?}, max {:.1?}",
            self.requests(),
            self.elapsed,
            self.failures.len(),
            self.percentile(50.0),
            self.percentile(99.0),
            self.latencies.last().copied().unwrap_or_default()
        )
    }
}

/// A running steady load; [`SteadyLoad::stop`] ends it and reports.
#[derive(Debug)]
pub struct SteadyLoad {
    stop: Arc<AtomicBool>,
    clients: JoinSet<LoadReport>,
    started: Instant,
}

impl SteadyLoad {
    /// Starts `clients` tasks, each sending `GET url` and pausing `pause` after every answer.
    pub fn start(url: &str, clients: usize, pause: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let client = HttpClient::new();
        let mut tasks = JoinSet::new();
        for _ in 0..clients.max(1) {
            let (url, client, stop) = (url.to_owned(), client.clone(), Arc::clone(&stop));
            tasks.spawn(async move {
                let mut report = LoadReport::default();
                while !stop.load(Ordering::SeqCst) {
                    let sent = Instant::now();
                    match client.get(&url).await {
                        Ok(r) if r.status == 200 => {
                            report.ok += 1;
                            report.latencies.push(sent.elapsed());
                        }
                        Ok(r) => report
                            .failures
                            .push(format!("status {}: {}", r.status, r.text())),
                        Err(e) => report.failures.push(e.to_string()),
                    }
                    tokio::time::sleep(pause).await;
                }
                report
            });
        }
        Self {
            stop,
            clients: tasks,
            started: Instant::now(),
        }
    }

    /// Stops the clients after their current request and merges what they saw.
    pub async fn stop(mut self) -> LoadReport {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = LoadReport::default();
        while let Some(done) = self.clients.join_next().await {
            match done {
                Ok(report) => {
                    all.ok += report.ok;
                    all.failures.extend(report.failures);
                    all.latencies.extend(report.latencies);
                }
                Err(e) => all.failures.push(format!("client task: {e}")),
            }
        }
        all.latencies.sort_unstable();
        all.elapsed = self.started.elapsed();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let report = LoadReport {
            ok: 100,
            latencies: (1..=100).map(Duration::from_millis).collect(),
            ..LoadReport::default()
        };
        assert_eq!(report.percentile(50.0), Duration::from_millis(50));
        assert_eq!(report.percentile(99.0), Duration::from_millis(99));
        assert_eq!(report.percentile(100.0), Duration::from_millis(100));
        assert_eq!(report.percentile(0.0), Duration::from_millis(1));
        assert_eq!(LoadReport::default().percentile(99.0), Duration::ZERO);
    }
}
