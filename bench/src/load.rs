//! The relay load generator: posts prepared batches to `POST /v1/segments` over kept-alive
//! connections, either as fast as the relay answers (closed loop) or at a fixed rate (open
//! loop), and reports what the relay accepted and how long each post took.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::http::Connection;

/// What one load run measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LoadReport {
    /// Seconds the load ran.
    pub elapsed_s: f64,
    /// Posts answered.
    pub posts: u64,
    /// Documents the relay accepted.
    pub accepted: u64,
    /// Documents the relay rejected one by one (invalid).
    pub rejected: u64,
    /// Posts refused whole (429/503: queue full).
    pub refused_posts: u64,
    /// Posts that failed (connection errors, other statuses).
    pub failed_posts: u64,
    /// Median post latency, µs.
    pub p50_us: f64,
    /// 99th percentile post latency, µs.
    pub p99_us: f64,
}

/// The relay's answer to a post.
#[derive(Deserialize)]
struct Answer {
    accepted: u64,
    #[serde(default)]
    rejected: Vec<serde::de::IgnoredAny>,
}

/// Per-connection tallies.
#[derive(Default)]
struct Tally {
    report: LoadReport,
    latencies_us: Vec<u32>,
}

/// `p` (0–1) percentile of sorted `values`.
pub fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[rank.min(sorted.len() - 1)])
}

async fn connection_loop(
    target: SocketAddr,
    bodies: Arc<Vec<Bytes>>,
    offset: usize,
    until: Instant,
    interval: Option<Duration>,
) -> Tally {
    let mut tally = Tally::default();
    let Ok(mut connection) = Connection::open(target).await else {
        tally.report.failed_posts += 1;
        return tally;
    };
    let mut next = offset;
    let mut due = Instant::now();
    while Instant::now() < until {
        if let Some(interval) = interval {
            tokio::time::sleep_until(due.into()).await;
            due += interval;
        }
        let body = bodies[next % bodies.len()].clone();
        next += 1;
        let started = Instant::now();
        match connection
            .send("POST", "/v1/segments", "application/json", body)
            .await
        {
            Ok((200, answer)) => {
                tally
                    .latencies_us
                    .push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
                tally.report.posts += 1;
                if let Ok(answer) = serde_json::from_slice::<Answer>(&answer) {
                    tally.report.accepted += answer.accepted;
                    tally.report.rejected += answer.rejected.len() as u64;
                }
            }
            Ok((429 | 503, _)) => {
                tally.report.posts += 1;
                tally.report.refused_posts += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok(_) => tally.report.failed_posts += 1,
            Err(_) => {
                tally.report.failed_posts += 1;
                match Connection::open(target).await {
                    Ok(fresh) => connection = fresh,
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }
    }
    tally
}

/// Posts `bodies` to `target` for `duration` over `connections` connections; at
/// `rate_docs_per_s` documents per second in all when given, else as fast as answered.
pub async fn run(
    target: SocketAddr,
    bodies: Vec<Bytes>,
    connections: usize,
    duration: Duration,
    rate_docs_per_s: Option<f64>,
    docs_per_body: usize,
) -> LoadReport {
    let bodies = Arc::new(bodies);
    let started = Instant::now();
    let until = started + duration;
    let interval = rate_docs_per_s
        .filter(|rate| *rate > 0.0)
        .map(|rate| Duration::from_secs_f64(connections as f64 * docs_per_body as f64 / rate));
    let tasks: Vec<_> = (0..connections)
        .map(|i| {
            let offset = i * bodies.len() / connections.max(1);
            tokio::spawn(connection_loop(
                target,
                Arc::clone(&bodies),
                offset,
                until,
                interval,
            ))
        })
        .collect();
    let mut total = Tally::default();
    for task in tasks {
        if let Ok(tally) = task.await {
            total.report.posts += tally.report.posts;
            total.report.accepted += tally.report.accepted;
            total.report.rejected += tally.report.rejected;
            total.report.refused_posts += tally.report.refused_posts;
            total.report.failed_posts += tally.report.failed_posts;
            total.latencies_us.extend(tally.latencies_us);
        }
    }
    total.latencies_us.sort_unstable();
    total.report.elapsed_s = started.elapsed().as_secs_f64();
    total.report.p50_us = percentile(&total.latencies_us, 0.50);
    total.report.p99_us = percentile(&total.latencies_us, 0.99);
    total.report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_sorted_list() {
        let values: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&values, 0.5), 51.0);
        assert_eq!(percentile(&values, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.99), 0.0);
    }
}
