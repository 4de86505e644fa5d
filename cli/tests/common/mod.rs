//! What the page tests share: the fixed Bookinfo documents, generated documents of a big
//! mesh, the page built from documents, and headless Chromium.

// Helpers of tests (each test file uses some of them); as in the tests themselves
// (clippy.toml), a failed unwrap here is a failed test with a clear location.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use meshray_cli::saved::traces_from_json;
use meshray_cli::service_graph::MapSource;
use meshray_cli::view::{Page, render};
use meshray_core::trace::{ServiceMap, Trace};
use serde_json::{Value, json};

/// The fixed documents: four gateway → productpage → reviews → ratings traces.
pub fn bookinfo() -> Vec<Trace> {
    traces_from_json(include_str!("../fixtures/bookinfo.json")).unwrap()
}

/// The page of `traces` with the map derived from them.
pub fn page(traces: &[Trace]) -> String {
    let map = ServiceMap::from_traces(traces);
    let from = traces.first().map_or(0.0, Trace::start_time) - 30.0;
    render(&Page {
        source: "fixed documents",
        from,
        to: from + 300.0,
        traces,
        map: &map,
        map_source: MapSource::Documents,
        listed: traces.len(),
    })
}

/// Where the tests write pages and screenshots: `target/meshray-view/`.
pub fn out_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("meshray-view");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The services of the generated mesh, by layer: a gateway, a frontend, then wider layers.
const LAYERS: [&[&str]; 6] = [
    &["istio-ingressgateway"],
    &["frontend"],
    &["checkout", "cart", "catalog", "search", "accounts"],
    &[
        "payments",
        "shipping",
        "inventory",
        "pricing",
        "recommendations",
        "reviews",
        "auth",
        "orders",
    ],
    &[
        "ratings",
        "fraud",
        "ledger",
        "currency",
        "tax",
        "promotions",
        "warehouse",
        "users",
        "images",
    ],
    &[
        "notifications",
        "email",
        "sms",
        "carrier-api",
        "audit",
        "sessions",
    ],
];

/// A small deterministic generator (xorshift64*), so the big page is the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

/// The services a service of layer `layer`, position `at`, may call (2–3 of the next layer).
fn callees(layer: usize, at: usize) -> Vec<&'static str> {
    let Some(next) = LAYERS.get(layer + 1) else {
        return Vec::new();
    };
    match layer {
        0 => return vec![next[0]],
        1 => return next.to_vec(),
        _ => {}
    }
    let n = next.len();
    let mut out = vec![next[(at * 2) % n], next[(at * 2 + 1) % n]];
    if at.is_multiple_of(2) {
        out.push(next[(at * 2 + 3) % n]);
    }
    out.dedup();
    out
}

/// `traces` generated traces over the 30 services (each 4–20 documents), starting at
/// `start` (epoch seconds), 250 ms apart.
pub fn generated(traces: usize, start: f64) -> Vec<Trace> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::with_capacity(traces);
    for t in 0..traces {
        let trace_id = format!("1-{:08x}-{:024x}", start as u64 + t as u64 / 4, t);
        let mut docs = Vec::new();
        let mut ids = 0u64;
        let mut t0 = start + t as f64 * 0.25;
        call(
            &mut rng, &mut docs, &mut ids, &trace_id, t, None, 0, 0, &mut t0,
        );
        let documents = docs
            .into_iter()
            .map(|d| meshray_core::trace::Document::from_value(d).unwrap())
            .collect();
        out.push(Trace::from_documents(&trace_id, documents));
    }
    out
}

/// Emits the segment of `LAYERS[layer][at]` (under `parent`, a remote subsegment id) and
/// its calls; returns (fault, error, throttle) and advances `clock` to its end.
#[allow(clippy::too_many_arguments)]
fn call(
    rng: &mut Rng,
    docs: &mut Vec<Value>,
    ids: &mut u64,
    trace_id: &str,
    trace: usize,
    parent: Option<String>,
    layer: usize,
    at: usize,
    clock: &mut f64,
) -> (bool, bool, bool) {
    let name = LAYERS[layer][at];
    let id = next_id(ids, trace);
    let start = *clock;
    *clock += 0.0005 + rng.below(3000) as f64 / 1e6;
    let mut fault = false;
    let leaf = layer + 1 >= LAYERS.len();
    let mut own = (
        leaf && rng.chance(25),
        leaf && rng.chance(30),
        leaf && rng.chance(10),
    );
    for callee in callees(layer, at) {
        if layer > 0 && !rng.chance(if layer >= 3 { 300 } else { 450 }) {
            continue;
        }
        let next_at = LAYERS[layer + 1].iter().position(|n| *n == callee).unwrap();
        let sub_id = next_id(ids, trace);
        let sub_start = *clock;
        *clock += 0.0002;
        let (f, e, th) = call(
            rng,
            docs,
            ids,
            trace_id,
            trace,
            Some(sub_id.clone()),
            layer + 1,
            next_at,
            clock,
        );
        *clock += 0.0002;
        let status = if f {
            503
        } else if th {
            429
        } else if e {
            404
        } else {
            200
        };
        docs.push(json!({
            "type": "subsegment", "namespace": "remote", "name": callee, "id": sub_id,
            "trace_id": trace_id, "parent_id": id, "start_time": sub_start, "end_time": *clock,
            "fault": f, "error": e || th, "throttle": th,
            "http": {"request": {"method": "GET", "url": format!("http://{callee}:8080/")},
                     "response": {"status": status}},
        }));
        fault |= f;
        *clock += rng.below(1500) as f64 / 1e6;
    }
    own.0 |= fault;
    *clock += 0.0003 + rng.below(2000) as f64 / 1e6;
    let (f, e, th) = own;
    let status = if f {
        503
    } else if th {
        429
    } else if e {
        404
    } else {
        200
    };
    let mut doc = json!({
        "name": name, "id": id, "trace_id": trace_id, "start_time": start, "end_time": *clock,
        "origin": "AWS::EKS::Container", "fault": f, "error": e || th, "throttle": th,
        "http": {"request": {"method": "GET", "url": format!("http://{name}:8080/api/{trace}")},
                 "response": {"status": status}},
        "annotations": {"istio_canonical_service": name, "istio_canonical_revision": "v1",
            "istio_namespace": if layer == 0 { "istio-system" } else { "shop" }},
    });
    if let Some(parent) = parent {
        doc["parent_id"] = json!(parent);
    }
    docs.push(doc);
    (f, e && !f, th && !f)
}

/// A fresh segment id (16 hex digits) within trace number `trace`.
fn next_id(ids: &mut u64, trace: usize) -> String {
    *ids += 1;
    format!("{:04x}{:012x}", trace % 0xffff, *ids)
}

/// A Chromium run's result.
pub struct Run {
    /// stdout (the DOM for `--dump-dom`).
    pub stdout: String,
    /// How long the run took (browser start included).
    pub took: Duration,
}

/// The Chromium binary: `$MESHRAY_CHROMIUM`, else `/usr/bin/chromium`.
pub fn chromium_binary() -> PathBuf {
    let path = std::env::var_os("MESHRAY_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        path.exists(),
        "chromium not found at {} (override with $MESHRAY_CHROMIUM); `make tools` installs \
         the Debian package chromium",
        path.display()
    );
    path
}

/// Runs headless Chromium on `page` with `args` (e.g. `--dump-dom`), in a fresh profile,
/// killed after 120 s.
pub fn chromium(page: &Path, args: &[&str]) -> Run {
    let profile = std::env::temp_dir().join(format!(
        "meshray-chromium-{}-{}",
        std::process::id(),
        page.file_stem().unwrap().to_string_lossy()
    ));
    let started = Instant::now();
    let mut child = Command::new(chromium_binary())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            &format!("--user-data-dir={}", profile.display()),
        ])
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let stderr = child.stderr.take().unwrap();
    let err_reader =
        std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("chromium did not finish within 120 s on {}", page.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = started.elapsed();
    let stdout = reader.join().unwrap();
    let stderr = err_reader.join().unwrap();
    std::fs::remove_dir_all(&profile).ok();
    assert!(
        status.success(),
        "chromium failed ({status}) on {}:\n{stderr}",
        page.display()
    );
    Run { stdout, took }
}

/// The value of attribute `name` on the root `<html>` element of a dumped DOM.
pub fn root_attribute<'a>(dom: &'a str, name: &str) -> Option<&'a str> {
    let start = dom.find("<html")?;
    let tag = &dom[start..start + dom[start..].find('>')?];
    let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let rest = &tag[at..];
    Some(&rest[..rest.find('"')?])
}

/// Whether `path` is a PNG of more than `min_bytes`.
pub fn is_png(path: &Path, min_bytes: usize) -> bool {
    std::fs::read(path)
        .map(|bytes| bytes.len() > min_bytes && bytes.starts_with(b"\x89PNG\r\n\x1a\n"))
        .unwrap_or(false)
}
