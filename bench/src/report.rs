//! The bench's outputs: `target/bench/results.json` (every figure, machine-readable) and
//! the generated part of `docs/BENCHMARKS.md` (method, machine, tables of the last run),
//! written between two marker lines so hand-written sections around it are kept.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::envoy::Variant;
use crate::error::{Result, io};
use crate::filter_bench::{FilterResults, Median, Shape};
use crate::relay_bench::RelayResults;

/// The first line of the generated part of BENCHMARKS.md.
pub const BEGIN: &str = "<!-- make bench: generated from here -->";
/// The last line of the generated part.
pub const END: &str = "<!-- make bench: generated up to here -->";

/// A goal: a key of results.json, the bound, and whether a larger value is better.
struct Goal {
    key: &'static str,
    bound: f64,
    at_least: bool,
}

const GOALS: [Goal; 12] = [
    Goal {
        key: "filter_vs_floor",
        bound: 2.0,
        at_least: false,
    },
    Goal {
        key: "filter_vs_untraced",
        bound: 0.75,
        at_least: true,
    },
    Goal {
        key: "filter_vs_native_xray",
        bound: 1.25,
        at_least: true,
    },
    Goal {
        key: "filter_vs_zipkin",
        bound: 1.5,
        at_least: true,
    },
    Goal {
        key: "filter_vs_floor_inbound",
        bound: 2.0,
        at_least: false,
    },
    Goal {
        key: "filter_vs_untraced_inbound",
        bound: 0.75,
        at_least: true,
    },
    Goal {
        key: "filter_vs_native_xray_inbound",
        bound: 1.25,
        at_least: true,
    },
    Goal {
        key: "filter_vs_zipkin_inbound",
        bound: 1.5,
        at_least: true,
    },
    Goal {
        key: "wasm_bytes",
        bound: 300_000.0,
        at_least: false,
    },
    Goal {
        key: "relay_vs_serde",
        bound: 0.5,
        at_least: true,
    },
    Goal {
        key: "relay_segments_per_s",
        bound: 100_000.0,
        at_least: true,
    },
    Goal {
        key: "relay_rss_full_queue_mib",
        bound: 128.0,
        at_least: false,
    },
];

/// The figures of one shape: ratios and added CPU against untraced Envoy.
fn shape_figures(medians: &BTreeMap<Variant, Median>) -> BTreeMap<&'static str, f64> {
    let get = |v: Variant| medians.get(&v).cloned().unwrap_or_default();
    let (a, b, c, d, e) = (
        get(Variant::Untraced),
        get(Variant::Meshray),
        get(Variant::NativeXray),
        get(Variant::EmptyWasm),
        get(Variant::Zipkin),
    );
    let ratio = |x: f64, y: f64| if y > 0.0 { x / y } else { 0.0 };
    let added = |m: &Median| m.cpu_us_per_request - a.cpu_us_per_request;
    BTreeMap::from([
        (
            "filter_vs_untraced",
            ratio(b.requests_per_s, a.requests_per_s),
        ),
        (
            "filter_vs_native_xray",
            ratio(b.requests_per_s, c.requests_per_s),
        ),
        (
            "filter_vs_zipkin",
            ratio(b.requests_per_s, e.requests_per_s),
        ),
        ("filter_vs_floor", ratio(added(&b), added(&d))),
        ("filter_added_cpu_us", added(&b)),
        ("floor_added_cpu_us", added(&d)),
        ("native_added_cpu_us", added(&c)),
        ("zipkin_added_cpu_us", added(&e)),
        ("untraced_cpu_us", a.cpu_us_per_request),
        ("filter_p50_us", b.p50_us),
        ("filter_p99_us", b.p99_us),
        ("untraced_p99_us", a.p99_us),
        ("filter_memory_per_worker_mib", b.rss_mib - a.rss_mib),
        ("filter_memory_above_floor_mib", b.rss_mib - d.rss_mib),
        ("untraced_proxy_cpu_share", a.proxy_cpu_share),
    ])
}

/// Everything as one JSON object; the headline keys are those of the outbound root shape.
pub fn results_json(
    filter: &FilterResults,
    relay: &RelayResults,
    wasm_bytes: u64,
    machine: &Value,
) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(outbound) = filter.medians.get(&Shape::OutboundRoot) {
        for (key, value) in shape_figures(outbound) {
            out.insert(key.to_owned(), json!(value));
        }
    }
    if let Some(inbound) = filter.medians.get(&Shape::InboundB3) {
        for (key, value) in shape_figures(inbound) {
            out.insert(format!("{key}_inbound"), json!(value));
        }
    }
    out.insert("wasm_bytes".to_owned(), json!(wasm_bytes));
    out.insert(
        "relay_segments_per_s".to_owned(),
        json!(relay.documents_per_cpu_s),
    );
    out.insert(
        "relay_observed_segments_per_s".to_owned(),
        json!(relay.documents_per_s),
    );
    out.insert(
        "relay_cpu_us_per_segment".to_owned(),
        json!(relay.cpu_us_per_document),
    );
    out.insert(
        "relay_vs_serde".to_owned(),
        json!(relay.documents_per_cpu_s / relay.serde_documents_per_s.max(1e-9)),
    );
    out.insert(
        "relay_serde_segments_per_s".to_owned(),
        json!(relay.serde_documents_per_s),
    );
    out.insert(
        "relay_half_load_p99_us".to_owned(),
        json!(relay.half_load.p99_us),
    );
    out.insert(
        "relay_refused_posts".to_owned(),
        json!(relay.full_load.refused_posts),
    );
    out.insert("relay_busy".to_owned(), json!(relay.relay_busy));
    out.insert("relay_rss_mib".to_owned(), json!(relay.rss_mib));
    out.insert(
        "relay_rss_full_queue_mib".to_owned(),
        json!(relay.rss_full_queue_mib),
    );
    let goals: serde_json::Map<String, Value> = GOALS
        .iter()
        .map(|g| {
            let value = out.get(g.key).and_then(Value::as_f64).unwrap_or(f64::NAN);
            let met = if g.at_least {
                value >= g.bound
            } else {
                value <= g.bound
            };
            (
                g.key.to_owned(),
                json!({"bound": g.bound, "at_least": g.at_least, "value": value, "met": met}),
            )
        })
        .collect();
    out.insert("goals".to_owned(), Value::Object(goals));
    out.insert("machine".to_owned(), machine.clone());
    out.insert(
        "filter".to_owned(),
        serde_json::to_value(filter).unwrap_or(Value::Null),
    );
    out.insert(
        "relay".to_owned(),
        serde_json::to_value(relay).unwrap_or(Value::Null),
    );
    Value::Object(out)
}

/// What the machine is: CPU model, cores, kernel, Envoy version, date.
pub fn machine(envoy: &Path) -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_default();
    let run = |program: &Path, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let envoy_version = run(envoy, &["--version"]);
    json!({
        "cpu": model,
        // The machine's CPUs, not this process's: `make bench` runs pinned to one.
        "cores": cpuinfo.lines().filter(|l| l.starts_with("processor")).count(),
        "kernel": run(Path::new("uname"), &["-r"]),
        "envoy": envoy_version.rsplit_once("version: ").map_or(envoy_version.as_str(), |(_, v)| v),
        "date": run(Path::new("date"), &["-u", "+%Y-%m-%d %H:%M UTC"]),
    })
}

fn f(value: &Value, key: &str) -> f64 {
    value.get(key).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

/// Appends `text` and a newline.
fn line(md: &mut String, text: String) {
    md.push_str(&text);
    md.push('\n');
}

/// The generated Markdown: method, machine, tables, goals.
pub fn markdown(
    results: &Value,
    filter: &FilterResults,
    relay: &RelayResults,
    rounds: u32,
    seconds: u32,
) -> String {
    let mut md = String::new();
    let machine = &results["machine"];
    line(&mut md, BEGIN.to_owned());
    line(
        &mut md,
        format!("## Last run: {}\n", machine["date"].as_str().unwrap_or("")),
    );
    line(
        &mut md,
        format!(
            "Machine: {} ({} cores), Linux {}, Envoy {}. Proxy under test on CPU 1 (`taskset`, `--concurrency 1`), wrk \
         (`-t1 -c32`), the upstream Envoy (`direct_response`) and the receiver on CPU 0; {rounds} rounds × {seconds} s per \
         configuration and request shape, configurations alternated within each round, medians shown. Compare rows only \
         within this run.\n",
            machine["cpu"].as_str().unwrap_or("?"),
            machine["cores"],
            machine["kernel"].as_str().unwrap_or("?"),
            machine["envoy"].as_str().unwrap_or("?")
        ),
    );
    line(
        &mut md,
        "### Goals\n\n| figure | goal | this run | met |\n|---|---|---|---|".to_owned(),
    );
    if let Some(goals) = results["goals"].as_object() {
        for goal in GOALS {
            let g = &goals[goal.key];
            line(
                &mut md,
                format!(
                    "| `{}` | {} {} | {:.3} | {} |",
                    goal.key,
                    if goal.at_least { "≥" } else { "≤" },
                    goal.bound,
                    f(g, "value"),
                    if g["met"].as_bool() == Some(true) {
                        "yes"
                    } else {
                        "**no**"
                    }
                ),
            );
        }
    }
    for shape in Shape::ALL {
        let Some(medians) = filter.medians.get(&shape) else {
            continue;
        };
        let untraced = medians.get(&Variant::Untraced).cloned().unwrap_or_default();
        line(
            &mut md,
            format!(
                "\n### Filter cost: {}\n\n| configuration | req/s | × untraced | CPU µs/req | + µs vs untraced | p50 µs | p99 µs | RSS MiB | proxy busy |\n|---|---|---|---|---|---|---|---|---|",
                shape.label()
            ),
        );
        for (variant, m) in medians {
            line(
                &mut md,
                format!(
                    "| {} | {:.0} | {:.2} | {:.1} | {:+.1} | {:.0} | {:.0} | {:.1} | {:.0} % |",
                    variant.describe(),
                    m.requests_per_s,
                    m.requests_per_s / untraced.requests_per_s.max(1e-9),
                    m.cpu_us_per_request,
                    m.cpu_us_per_request - untraced.cpu_us_per_request,
                    m.p50_us,
                    m.p99_us,
                    m.rss_mib,
                    m.proxy_cpu_share * 100.0
                ),
            );
        }
        let figures = shape_figures(medians);
        line(
            &mut md,
            format!(
                "\n`filter_vs_untraced` {:.2} · `filter_vs_native_xray` {:.2} · `filter_vs_zipkin` {:.2} · `filter_vs_floor` {:.2} \
             (filter +{:.1} µs, floor +{:.1} µs, native X-Ray +{:.1} µs, Zipkin +{:.1} µs CPU per request) · filter memory (1 worker; \
             Envoy also runs a VM on its main thread) {:+.1} MiB over untraced, {:+.1} MiB over the empty filter · untraced proxy busy {:.0} % of its core",
                figures["filter_vs_untraced"],
                figures["filter_vs_native_xray"],
                figures["filter_vs_zipkin"],
                figures["filter_vs_floor"],
                figures["filter_added_cpu_us"],
                figures["floor_added_cpu_us"],
                figures["native_added_cpu_us"],
                figures["zipkin_added_cpu_us"],
                figures["filter_memory_per_worker_mib"],
                figures["filter_memory_above_floor_mib"],
                figures["untraced_proxy_cpu_share"] * 100.0
            ),
        );
    }
    let counters: Vec<String> = filter
        .meshray_counters
        .iter()
        .map(|(k, v)| format!("`{k}` {v}"))
        .collect();
    line(
        &mut md,
        format!(
            "\nThe filter's counters over its runs: {}; the receiver got {} documents. Shipped `.wasm`: {} bytes.",
            if counters.is_empty() {
                "none read".to_owned()
            } else {
                counters.join(", ")
            },
            filter.received_documents,
            results["wasm_bytes"]
        ),
    );
    line(
        &mut md,
        format!(
            "\n### Relay throughput\n\nRelease relay on CPU 1, load generator and `PutTraceSegments` sink on CPU 0; batches of 50 of the \
         filter's own documents (captured above), fresh ids, 20 % of traces with foreign ids; the throughput run posts as fast as the relay \
         answers while it holds at most {} documents accepted but undelivered (its queue never fills), and counts documents delivered to the sink \
         against the relay's CPU until it has delivered all it accepted.\n\n| figure | value |\n|---|---|",
            relay.backlog_documents
        ),
    );
    let rows = [
        (
            "documents per relay CPU-second (`relay_segments_per_s`)",
            format!("{:.0}", relay.documents_per_cpu_s),
        ),
        (
            "relay CPU µs per delivered document",
            format!("{:.2}", relay.cpu_us_per_document),
        ),
        (
            "documents delivered to the sink per second (observed, load core shared)",
            format!("{:.0}", relay.delivered_per_s),
        ),
        (
            "relay busy (its CPU-seconds per second)",
            format!("{:.0} %", 100.0 * relay.relay_busy),
        ),
        (
            "posts refused (429/503) during the throughput run",
            format!("{}", relay.full_load.refused_posts),
        ),
        (
            "typed serde parse + checks + serialise, documents/s on one core",
            format!("{:.0}", relay.serde_documents_per_s),
        ),
        (
            "`relay_vs_serde`",
            format!("{:.3}", f(results, "relay_vs_serde")),
        ),
        (
            "ingest p50 / p99 at half load, µs",
            format!(
                "{:.0} / {:.0}",
                relay.half_load.p50_us, relay.half_load.p99_us
            ),
        ),
        ("RSS after the runs, MiB", format!("{:.1}", relay.rss_mib)),
        (
            "RSS with a full queue, MiB",
            format!(
                "{:.1} ({} posts refused)",
                relay.rss_full_queue_mib, relay.full_queue_refused_posts
            ),
        ),
    ];
    for (name, value) in rows {
        line(&mut md, format!("| {name} | {value} |"));
    }
    let micro = criterion_means(Path::new("target/criterion"));
    if !micro.is_empty() {
        line(
            &mut md,
            "\n### Hot paths (criterion, `make bench-micro`, CPU 1)\n\n| function | mean |\n|---|---|".to_owned(),
        );
        for (title, ns) in micro {
            line(&mut md, format!("| {title} | {:.2} µs |", ns / 1_000.0));
        }
    }
    line(
        &mut md,
        format!("\nEvery figure is also in `target/bench/results.json`.\n{END}"),
    );
    md
}

/// The medians and ratios of a filter-only run, as plain text (`meshray-bench filter`).
pub fn filter_summary(filter: &FilterResults) -> String {
    let mut out = String::new();
    for (shape, medians) in &filter.medians {
        line(&mut out, format!("{}:", shape.label()));
        for (variant, m) in medians {
            line(
                &mut out,
                format!(
                    "  {:<12} {:>9.0} req/s {:>7.1} µs CPU/req p50 {:>6.0} p99 {:>7.0} µs RSS {:>6.1} MiB proxy CPU {:>4.0} %",
                    variant.label(),
                    m.requests_per_s,
                    m.cpu_us_per_request,
                    m.p50_us,
                    m.p99_us,
                    m.rss_mib,
                    m.proxy_cpu_share * 100.0
                ),
            );
        }
        let figures = shape_figures(medians);
        let ratios: Vec<String> = figures
            .iter()
            .map(|(key, value)| format!("{key} {value:.2}"))
            .collect();
        line(&mut out, format!("  {}", ratios.join(" · ")));
    }
    out
}

/// Criterion's results under `dir` (`<id>/new/{benchmark,estimates}.json`): title and
/// mean time in ns, sorted by title. Empty when `make bench-micro` has not run.
pub fn criterion_means(dir: &Path) -> Vec<(String, f64)> {
    let read = |path: std::path::PathBuf| -> Option<Value> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    };
    let mut out: Vec<(String, f64)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let new = entry.path().join("new");
            let title = read(new.join("benchmark.json"))?["title"]
                .as_str()?
                .to_owned();
            let mean = read(new.join("estimates.json"))?["mean"]["point_estimate"].as_f64()?;
            Some((title, mean))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Replaces the generated part of `doc` (or appends it), keeping everything else.
pub fn splice(existing: &str, generated: &str) -> String {
    match (existing.find(BEGIN), existing.find(END)) {
        (Some(begin), Some(end)) if end > begin => {
            let after = &existing[end + END.len()..];
            format!("{}{}{}", &existing[..begin], generated.trim_end(), after)
        }
        _ => format!("{}\n{}", existing.trim_end(), generated),
    }
}

/// Writes results.json and the generated part of the Markdown.
///
/// # Errors
/// When a file cannot be written.
pub fn write(results: &Value, markdown: &str, results_path: &Path, doc_path: &Path) -> Result<()> {
    std::fs::write(results_path, serde_json::to_vec_pretty(results)?)
        .map_err(io(format!("writing {}", results_path.display())))?;
    let existing =
        std::fs::read_to_string(doc_path).unwrap_or_else(|_| "# Benchmarks\n".to_owned());
    if let Some(parent) = doc_path.parent() {
        std::fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
    }
    std::fs::write(doc_path, splice(&existing, markdown))
        .map_err(io(format!("writing {}", doc_path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_replaces_only_the_generated_part() {
        let doc = format!("# B\nintro\n{BEGIN}\nold\n{END}\n## Hand-written\nkept\n");
        let new = format!("{BEGIN}\nnew\n{END}\n");
        let out = splice(&doc, &new);
        assert!(
            out.contains("intro") && out.contains("new") && out.contains("## Hand-written\nkept")
        );
        assert!(!out.contains("old"));
        let appended = splice("# B\n", &new);
        assert!(appended.starts_with("# B\n") && appended.contains("new"));
    }

    #[test]
    fn ratios_come_from_the_medians() {
        let m = |rps: f64, cpu: f64| Median {
            requests_per_s: rps,
            cpu_us_per_request: cpu,
            ..Median::default()
        };
        let medians = BTreeMap::from([
            (Variant::Untraced, m(10_000.0, 100.0)),
            (Variant::Meshray, m(8_000.0, 130.0)),
            (Variant::NativeXray, m(5_000.0, 200.0)),
            (Variant::EmptyWasm, m(9_000.0, 120.0)),
            (Variant::Zipkin, m(4_000.0, 240.0)),
        ]);
        let f = shape_figures(&medians);
        assert!((f["filter_vs_untraced"] - 0.8).abs() < 1e-9);
        assert!((f["filter_vs_native_xray"] - 1.6).abs() < 1e-9);
        assert!((f["filter_vs_zipkin"] - 2.0).abs() < 1e-9);
        assert!((f["filter_vs_floor"] - 1.5).abs() < 1e-9);
        assert!((f["native_added_cpu_us"] - 100.0).abs() < 1e-9);
    }
}
