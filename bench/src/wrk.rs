//! Runs `wrk` (apt) and reads its report.

use std::process::Command;

use crate::error::{BenchError, Result, io};

/// What one `wrk` run reports.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct WrkReport {
    /// Requests completed.
    pub requests: u64,
    /// Requests per second.
    pub requests_per_s: f64,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 99th percentile latency, µs.
    pub p99_us: f64,
    /// Answers that were not 2xx/3xx plus socket errors.
    pub errors: u64,
}

/// Runs `taskset -c core wrk -t1 -c connections -d seconds --latency url` with `headers`.
///
/// # Errors
/// When wrk cannot be started or its report cannot be read.
pub fn run(
    core: usize,
    connections: u32,
    seconds: u32,
    url: &str,
    headers: &[(&str, String)],
) -> Result<WrkReport> {
    let mut command = Command::new("taskset");
    command.args(["-c", &core.to_string(), "wrk", "-t1"]);
    command
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"))
        .arg("--latency");
    for (name, value) in headers {
        command.arg("-H").arg(format!("{name}: {value}"));
    }
    command.arg(url);
    let output = command
        .output()
        .map_err(io("running wrk (install it with `make bench-tools`)"))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    match parse(&text) {
        Some(report) => Ok(report),
        None => Err(BenchError::Output {
            tool: "wrk",
            detail: text,
        }),
    }
}

/// A latency as wrk prints it (`812.00us`, `1.23ms`, `2.00s`) in µs.
fn latency_us(text: &str) -> Option<f64> {
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1_000.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1_000_000.0)
    } else {
        (text, 1.0)
    };
    number.parse::<f64>().ok().map(|n| n * factor)
}

/// Reads a wrk `--latency` report.
pub fn parse(text: &str) -> Option<WrkReport> {
    let mut report = WrkReport::default();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", rate, ..] => report.requests_per_s = rate.parse().ok()?,
            [n, "requests", "in", ..] => report.requests = n.parse().ok()?,
            ["50.000%" | "50%", value, ..] => report.p50_us = latency_us(value)?,
            ["99.000%" | "99%", value, ..] => report.p99_us = latency_us(value)?,
            ["Non-2xx", "or", "3xx", "responses:", n, ..] => {
                report.errors += n.parse::<u64>().ok()?
            }
            ["Socket", "errors:", rest @ ..] => {
                report.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    (report.requests > 0).then_some(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_wrk_report() {
        let text = "Running 5s test @ http://127.0.0.1:10000/reviews/1
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.52ms  310.00us   9.01ms   90.12%
    Req/Sec    21.10k     1.02k   22.30k    80.00%
  Latency Distribution
     50%    1.48ms
     75%    1.60ms
     90%    1.76ms
     99%    2.51ms
  105012 requests in 5.00s, 25.04MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  21002.40
Transfer/sec:      5.01MB
";
        let report = parse(text).unwrap();
        assert_eq!(report.requests, 105_012);
        assert!((report.requests_per_s - 21_002.40).abs() < 1e-6);
        assert!((report.p50_us - 1_480.0).abs() < 1e-6);
        assert!((report.p99_us - 2_510.0).abs() < 1e-6);
        assert_eq!(report.errors, 7);
    }

    #[test]
    fn a_report_without_requests_is_not_a_report() {
        assert_eq!(
            parse("unable to connect to 127.0.0.1:1 Connection refused"),
            None
        );
    }

    #[test]
    fn reads_every_latency_unit() {
        assert_eq!(latency_us("812.00us"), Some(812.0));
        assert_eq!(latency_us("2.00s"), Some(2_000_000.0));
    }
}
