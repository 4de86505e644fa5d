//! The relay load generator: posts prepared batches to `POST /v1/segments` over kept-alive
//! connections — as fast as the relay answers (closed loop), as fast as it answers while
//! its backlog stays bounded (the throughput measurement: the queue never fills, so no
//! refused post costs CPU that no kept document pays back), or at a fixed rate (open
//! loop) — and reports what the relay accepted and how long each post took.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::http::Connection;

/// How a load run paces its posts.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// As fast as the relay answers: one post in flight per connection.
    Closed,
    /// At a fixed rate, documents per second over all connections (open loop).
    Rate(f64),
    /// As fast as the relay answers while it holds at most `max_documents` accepted but
    /// not yet delivered to the sink at `sink` (whose `GET /stats` counts deliveries):
    /// a post waits until the relay's backlog has room for it, so the relay's queue never
    /// fills and the relay runs at the rate it sustains. The relay must hold nothing
    /// undelivered when the run starts.
    Backlog {
        /// The X-Ray sink the relay delivers to.
        sink: SocketAddr,
        /// Most documents posted (and not refused) but not yet delivered.
        max_documents: u64,
    },
}

/// How often a [`Pace::Backlog`] run reads the sink's count of delivered documents.
const DELIVERED_POLL: Duration = Duration::from_millis(2);
/// How long a post waits before it looks at the backlog again.
const BACKLOG_WAIT: Duration = Duration::from_micros(500);

/// The backlog of a [`Pace::Backlog`] run, shared by its connections and the poller.
#[derive(Debug, Default)]
struct Backlog {
    /// Documents posted since the run began, less those refused or rejected.
    posted: AtomicU64,
    /// Documents the sink received since the run began.
    delivered: AtomicU64,
}

impl Backlog {
    /// Documents posted and not refused that the sink has not received yet.
    fn outstanding(&self) -> u64 {
        self.posted
            .load(Ordering::Relaxed)
            .saturating_sub(self.delivered.load(Ordering::Relaxed))
    }

    /// Waits until `documents` more fit under `max`, then counts them as posted.
    async fn admit(&self, documents: u64, max: u64, until: Instant) -> bool {
        while self.outstanding() + documents > max {
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(BACKLOG_WAIT).await;
        }
        self.posted.fetch_add(documents, Ordering::Relaxed);
        true
    }

    /// Takes back `documents` that were posted but not kept (refused, rejected, failed).
    fn not_kept(&self, documents: u64) {
        self.posted.fetch_sub(documents, Ordering::Relaxed);
    }
}

/// The documents the sink at `sink` has received (its `GET /stats`), over `connection`.
async fn delivered_documents(connection: &mut Connection) -> Option<u64> {
    let (status, body) = connection
        .send("GET", "/stats", "text/plain", Bytes::new())
        .await
        .ok()?;
    if status != 200 {
        return None;
    }
    serde_json::from_slice::<serde_json::Value>(&body)
        .ok()?
        .get("documents")?
        .as_u64()
}

/// Keeps `backlog.delivered` current from the sink's count until `until` (plus a little,
/// so the last posts' deliveries are seen).
async fn poll_delivered(sink: SocketAddr, backlog: Arc<Backlog>, until: Instant) {
    let Ok(mut connection) = Connection::open(sink).await else {
        return;
    };
    let Some(base) = delivered_documents(&mut connection).await else {
        return;
    };
    while Instant::now() < until {
        if let Some(now) = delivered_documents(&mut connection).await {
            backlog
                .delivered
                .store(now.saturating_sub(base), Ordering::Relaxed);
        }
        tokio::time::sleep(DELIVERED_POLL).await;
    }
}

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

/// How one connection paces its posts.
#[derive(Clone)]
enum ConnectionPace {
    /// Back to back.
    Closed,
    /// One post per interval.
    Every(Duration),
    /// When the shared backlog has room.
    Backlog(Arc<Backlog>, u64),
}

async fn connection_loop(
    target: SocketAddr,
    bodies: Arc<Vec<Bytes>>,
    offset: usize,
    until: Instant,
    pace: ConnectionPace,
    docs_per_body: u64,
) -> Tally {
    let mut tally = Tally::default();
    let Ok(mut connection) = Connection::open(target).await else {
        tally.report.failed_posts += 1;
        return tally;
    };
    let mut next = offset;
    let mut due = Instant::now();
    while Instant::now() < until {
        match &pace {
            ConnectionPace::Closed => {}
            ConnectionPace::Every(interval) => {
                tokio::time::sleep_until(due.into()).await;
                due += *interval;
            }
            ConnectionPace::Backlog(backlog, max) => {
                if !backlog.admit(docs_per_body, *max, until).await {
                    break;
                }
            }
        }
        let not_kept = |documents: u64| {
            if let ConnectionPace::Backlog(backlog, _) = &pace {
                backlog.not_kept(documents);
            }
        };
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
                match serde_json::from_slice::<Answer>(&answer) {
                    Ok(answer) => {
                        tally.report.accepted += answer.accepted;
                        tally.report.rejected += answer.rejected.len() as u64;
                        not_kept(docs_per_body.saturating_sub(answer.accepted));
                    }
                    Err(_) => not_kept(docs_per_body),
                }
            }
            Ok((429 | 503, _)) => {
                not_kept(docs_per_body);
                tally.report.posts += 1;
                tally.report.refused_posts += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok(_) => {
                not_kept(docs_per_body);
                tally.report.failed_posts += 1;
            }
            Err(_) => {
                not_kept(docs_per_body);
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

/// Posts `bodies` (each of `docs_per_body` documents) to `target` for `duration` over
/// `connections` connections, paced by `pace`.
pub async fn run(
    target: SocketAddr,
    bodies: Vec<Bytes>,
    connections: usize,
    duration: Duration,
    pace: Pace,
    docs_per_body: usize,
) -> LoadReport {
    let bodies = Arc::new(bodies);
    let started = Instant::now();
    let until = started + duration;
    let pace = match pace {
        Pace::Closed => ConnectionPace::Closed,
        Pace::Rate(rate) if rate > 0.0 => ConnectionPace::Every(Duration::from_secs_f64(
            connections as f64 * docs_per_body as f64 / rate,
        )),
        Pace::Rate(_) => ConnectionPace::Closed,
        Pace::Backlog {
            sink,
            max_documents,
        } => {
            let backlog = Arc::new(Backlog::default());
            tokio::spawn(poll_delivered(
                sink,
                Arc::clone(&backlog),
                until + Duration::from_secs(1),
            ));
            ConnectionPace::Backlog(backlog, max_documents)
        }
    };
    let tasks: Vec<_> = (0..connections)
        .map(|i| {
            let offset = i * bodies.len() / connections.max(1);
            tokio::spawn(connection_loop(
                target,
                Arc::clone(&bodies),
                offset,
                until,
                pace.clone(),
                docs_per_body as u64,
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

    /// A post waits while the backlog has no room for it; what is not kept frees room.
    #[tokio::test]
    async fn the_backlog_admits_posts_only_while_there_is_room() {
        let backlog = Backlog::default();
        let later = Instant::now() + Duration::from_secs(5);
        assert!(backlog.admit(50, 100, later).await);
        assert!(backlog.admit(50, 100, later).await);
        assert_eq!(backlog.outstanding(), 100);
        // Full: the next post gives up at its deadline.
        assert!(!backlog.admit(50, 100, Instant::now()).await);
        backlog.delivered.store(40, Ordering::Relaxed);
        assert_eq!(backlog.outstanding(), 60);
        assert!(!backlog.admit(50, 100, Instant::now()).await);
        backlog.not_kept(10);
        assert!(backlog.admit(50, 100, later).await);
        assert_eq!(backlog.outstanding(), 100);
    }
}
