//! Trace contexts callers send into the mesh, in every format the filter reads: an AWS load
//! balancer's `x-amzn-trace-id` root, a W3C `traceparent`, callers that decided not to
//! sample, and headers too broken to read.
//!
//! Each test starts its own mesh. They take turns (one mesh at a time) so that four meshes
//! of three Envoys each do not compete for the CPU at once.
//!
//! Needs the filter module, the relay binary, Envoy and moto (`make test`).

use std::time::Duration;

use hyper::http::HeaderMap;
use meshray_e2e::app::Service;
use meshray_e2e::check::{
    BOOKINFO_DOCUMENTS, bookinfo_trace_problems, bookinfo_trace_problems_with_caller,
};
use meshray_e2e::http::header_map;
use meshray_e2e::ids::{
    new_epoch_trace_hex, new_xray_trace_id, random_hex, traceparent_trace_id, xray_id_of_hex128,
    xray_root,
};
use meshray_e2e::xray::{Collected, Expectation, Trace};
use meshray_e2e::{Mesh, MeshOptions};

/// One mesh at a time in this test binary.
static ONE_MESH_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The propagation headers the filter reads or writes.
const PROPAGATION_HEADERS: [&str; 7] = [
    "x-amzn-trace-id",
    "traceparent",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-sampled",
    "x-b3-flags",
];

// The helpers return what went wrong (with diagnostics) and the tests panic with it.

async fn start_mesh(label: &str) -> Result<Mesh, String> {
    Mesh::start(MeshOptions {
        label: label.into(),
        ..MeshOptions::default()
    })
    .await
    .map_err(|e| format!("the mesh did not start: {e}"))
}

/// Sends one request to productpage with `headers`; an error unless it answers 200.
async fn request_ok(mesh: &mut Mesh, what: &str, headers: &HeaderMap) -> Result<(), String> {
    match mesh.request_productpage_with("", headers).await {
        Ok(response) if response.status == 200 => Ok(()),
        Ok(response) => Err(format!(
            "{what}: productpage answered {}: {}\n{}",
            response.status,
            response.text(),
            mesh.diagnostics().await
        )),
        Err(err) => Err(format!("{what}: {err}\n{}", mesh.diagnostics().await)),
    }
}

/// Waits for `n` complete Bookinfo traces; an error unless exactly `n` arrived.
async fn exactly_traces(mesh: &mut Mesh, n: usize) -> Result<Collected, String> {
    let expect = Expectation {
        traces: n,
        documents_per_trace: BOOKINFO_DOCUMENTS,
    };
    let collected = mesh.wait_for_traces(expect, Duration::from_secs(60)).await;
    if collected.complete && collected.traces.len() == n {
        Ok(collected)
    } else {
        Err(format!(
            "expected exactly {n} traces of {BOOKINFO_DOCUMENTS} documents\n{}\n{}",
            collected.describe(),
            mesh.diagnostics().await
        ))
    }
}

/// The trace with X-Ray id `id`.
fn trace_with_id<'a>(collected: &'a Collected, id: &str) -> Result<&'a Trace, String> {
    collected.traces.iter().find(|t| t.id == id).ok_or_else(|| {
        format!(
            "no trace with id {id}; found {:?}\n{}",
            collected.traces.iter().map(|t| &t.id).collect::<Vec<_>>(),
            collected.describe()
        )
    })
}

fn assert_linked(trace: &Trace, caller: Option<&str>) {
    let problems = bookinfo_trace_problems_with_caller(trace, caller);
    assert!(
        problems.is_empty(),
        "trace {} is not fully linked (client span {caller:?}):\n  - {}\n{}",
        trace.id,
        problems.join("\n  - "),
        trace.render()
    );
}

/// The X-Ray trace id the filter told productpage's app (in `x-amzn-trace-id`).
fn trace_id_told_to_productpage(mesh: &Mesh) -> Result<String, String> {
    let app = mesh.pod(Service::Productpage).app.stats();
    let header = app.last_header("x-amzn-trace-id");
    header
        .as_deref()
        .and_then(xray_root)
        .map(str::to_owned)
        .ok_or_else(|| {
            format!(
                "productpage's app received no x-amzn-trace-id Root=; headers {:?}",
                app.last_headers()
            )
        })
}

/// An AWS load balancer's `x-amzn-trace-id: Self=…;Root=…` (no `Parent`) makes the load
/// balancer's `Root` the trace's X-Ray id: one fully linked trace with that id, whose
/// productpage segment has no parent, although the app forwards only B3/W3C headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_balancer_root_becomes_the_trace_id() {
    let _turn = ONE_MESH_AT_A_TIME.lock().await;
    let mut mesh = start_mesh("propagation-alb")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let root = new_xray_trace_id();
    let header = format!("Self={};Root={root}", new_xray_trace_id());
    request_ok(
        &mut mesh,
        "request with a load balancer root",
        &header_map(&[("x-amzn-trace-id", &header)]).unwrap(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        trace_id_told_to_productpage(&mesh).unwrap_or_else(|e| panic!("{e}")),
        root,
        "productpage's app should be told the load balancer's root"
    );

    let collected = exactly_traces(&mut mesh, 1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let trace = &collected.traces[0];
    assert_eq!(
        trace.id,
        root,
        "the trace id should be the load balancer's Root\n{}",
        trace.render()
    );
    assert_linked(trace, None);
}

/// A W3C caller's `traceparent` (trace id with the current epoch, sampled) gives one fully
/// linked trace with X-Ray id `1-{first 8}-{last 24}`, the productpage segment's
/// `parent_id` is the traceparent's parent id, and ratings receives a `traceparent` of the
/// same trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_w3c_callers_trace_and_parent_are_kept() {
    let _turn = ONE_MESH_AT_A_TIME.lock().await;
    let mut mesh = start_mesh("propagation-w3c")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let trace_hex = new_epoch_trace_hex();
    let parent = random_hex(16);
    let traceparent = format!("00-{trace_hex}-{parent}-01");
    request_ok(
        &mut mesh,
        "request with a traceparent",
        &header_map(&[("traceparent", &traceparent)]).unwrap(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let at_ratings = mesh
        .pod(Service::Ratings)
        .app
        .stats()
        .last_header("traceparent");
    assert_eq!(
        at_ratings.as_deref().and_then(traceparent_trace_id),
        Some(trace_hex.as_str()),
        "ratings should receive a traceparent of trace {trace_hex}, got {at_ratings:?}"
    );

    let collected = exactly_traces(&mut mesh, 1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let trace =
        trace_with_id(&collected, &xray_id_of_hex128(&trace_hex)).unwrap_or_else(|e| panic!("{e}"));
    assert_linked(trace, Some(&parent));
}

/// Callers that decided not to sample are honoured in every format: three requests each
/// with `x-b3-*` and `x-b3-sampled: 0`, with `b3: 0`, with a `traceparent` whose flags are
/// `00`, and with `x-amzn-trace-id: Root=…;Sampled=0` (a new trace id each) emit no
/// document on any sidecar and reach productpage's app untouched (no `x-amzn-trace-id`
/// added, the caller's headers unchanged) — except that a "no" sent only in
/// `x-amzn-trace-id`, which the app does not forward, is carried on as `x-b3-sampled: 0`,
/// so reviews and ratings do not start traces of their own. Then one ordinary request,
/// the control, is traced: the X-Ray API holds exactly one trace since the mesh started,
/// the control's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsampled_callers_are_forwarded_untouched_and_not_traced() {
    let _turn = ONE_MESH_AT_A_TIME.lock().await;
    let mut mesh = start_mesh("propagation-unsampled")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    const EACH: usize = 3;
    type Case = fn() -> Vec<(&'static str, String)>;
    let cases: [(&str, Case); 4] = [
        ("x-b3-sampled: 0", || {
            vec![
                ("x-b3-traceid", new_epoch_trace_hex()),
                ("x-b3-spanid", random_hex(16)),
                ("x-b3-sampled", "0".to_owned()),
            ]
        }),
        ("b3: 0", || vec![("b3", "0".to_owned())]),
        ("traceparent flags 00", || {
            let value = format!("00-{}-{}-00", new_epoch_trace_hex(), random_hex(16));
            vec![("traceparent", value)]
        }),
        ("x-amzn-trace-id Sampled=0", || {
            let value = format!("Root={};Sampled=0", new_xray_trace_id());
            vec![("x-amzn-trace-id", value)]
        }),
    ];
    // Everything that goes wrong, by format, reported together at the end.
    let mut wrong: Vec<String> = Vec::new();
    let mut emitted_before = 0;
    for (format, make_headers) in cases {
        for round in 0..EACH {
            let sent = make_headers();
            let pairs: Vec<(&str, &str)> = sent.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let what = format!("{format} (request {round})");
            request_ok(&mut mesh, &what, &header_map(&pairs).unwrap())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let received = mesh.pod(Service::Productpage).app.stats().last_headers();
            let only_xray = pairs.iter().all(|(k, _)| *k == "x-amzn-trace-id");
            for name in PROPAGATION_HEADERS {
                let expected = match pairs.iter().find(|(k, _)| *k == name) {
                    Some((_, v)) => Some(*v),
                    None if only_xray && name == "x-b3-sampled" => Some("0"),
                    None => None,
                };
                let got = received
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str());
                if got != expected {
                    wrong.push(format!(
                        "{what}: productpage's app received {name} {got:?}, expected {expected:?}"
                    ));
                }
            }
        }
        // Documents are emitted at log time, just after the response: give them a moment.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let stats = mesh.meshray_stats().await.unwrap();
        let per_sidecar: Vec<(Service, u64)> = stats
            .iter()
            .map(|(service, s)| {
                (
                    *service,
                    s.get("meshray_segments_emitted_total").unwrap_or(0),
                )
            })
            .collect();
        let emitted: u64 = per_sidecar.iter().map(|(_, n)| n).sum();
        if emitted != emitted_before {
            wrong.push(format!(
                "{format}: {} documents emitted for {EACH} unsampled requests (emitted so far \
                 per sidecar: {per_sidecar:?})",
                emitted - emitted_before
            ));
        }
        emitted_before = emitted;
    }

    request_ok(&mut mesh, "control request", &HeaderMap::new())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let control = trace_id_told_to_productpage(&mesh).unwrap_or_else(|e| panic!("{e}"));
    let expect = Expectation {
        traces: 1,
        documents_per_trace: BOOKINFO_DOCUMENTS,
    };
    let collected = mesh.wait_for_traces(expect, Duration::from_secs(60)).await;
    let ids: Vec<&str> = collected.traces.iter().map(|t| t.id.as_str()).collect();
    if !collected.complete || ids != [control.as_str()] {
        wrong.push(format!(
            "expected exactly one trace since the mesh started, the control's {control}; \
             found {ids:?}"
        ));
    }
    if !wrong.is_empty() {
        panic!(
            "unsampled requests:\n  - {}\n{}\n{}",
            wrong.join("\n  - "),
            collected.describe(),
            mesh.diagnostics().await
        );
    }
    let problems = bookinfo_trace_problems(&collected.traces[0]);
    assert!(
        problems.is_empty(),
        "{problems:?}\n{}",
        collected.traces[0].render()
    );
}

/// Malformed propagation headers never fail a request. All three of
/// `traceparent: 00-zz-garbage-01`, `x-amzn-trace-id: Root=nope` and `b3: not-b3` are sent
/// on two requests: (A) alone, so productpage starts a new trace; (B) next to a valid 128-bit
/// `x-b3-traceid`/`x-b3-spanid` pair, which then decides trace and parent. Both answer 200
/// and arrive as fully linked traces (B with the B3 trace id and the B3 span as the
/// productpage segment's parent); the malformed `b3` (and on B the malformed `traceparent`)
/// is replaced by a valid one of the request's trace (both are in the default `propagate`);
/// and productpage's sidecar counts at least 3
/// malformed headers per request in `meshray_headers_malformed_total`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_headers_never_fail_a_request_and_are_counted() {
    let _turn = ONE_MESH_AT_A_TIME.lock().await;
    let mut mesh = start_mesh("propagation-malformed")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    const MALFORMED: [(&str, &str); 3] = [
        ("traceparent", "00-zz-garbage-01"),
        ("x-amzn-trace-id", "Root=nope"),
        ("b3", "not-b3"),
    ];
    let malformed_count = async |mesh: &Mesh| {
        mesh.pod(Service::Productpage)
            .sidecar
            .meshray_stats()
            .await
            .unwrap()
            .get("meshray_headers_malformed_total")
            .unwrap_or(0)
    };
    let header_at_productpage =
        |mesh: &Mesh, name: &str| mesh.pod(Service::Productpage).app.stats().last_header(name);

    // (A) Only the malformed headers: a new trace.
    request_ok(
        &mut mesh,
        "request A (malformed only)",
        &header_map(&MALFORMED).unwrap(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let trace_a = trace_id_told_to_productpage(&mesh).unwrap_or_else(|e| panic!("{e}"));
    // b3 is in the default `propagate`: the malformed value is replaced by the new trace's.
    let trace_a_hex = format!("{}{}", &trace_a[2..10], &trace_a[11..]);
    let b3_a = header_at_productpage(&mesh, "b3").unwrap_or_default();
    assert!(
        b3_a.starts_with(&format!("{trace_a_hex}-")),
        "request A: a malformed b3 should be replaced by one of trace {trace_a}, got {b3_a:?}"
    );
    let after_a = malformed_count(&mesh).await;
    assert!(
        after_a >= 3,
        "request A: meshray_headers_malformed_total is {after_a} on productpage's sidecar, \
         expected at least 3\n{}",
        mesh.diagnostics().await
    );

    // (B) The malformed headers and a valid B3 pair: B3 decides.
    let b3_trace = new_epoch_trace_hex();
    let b3_span = random_hex(16);
    let mut headers = MALFORMED.to_vec();
    headers.push(("x-b3-traceid", &b3_trace));
    headers.push(("x-b3-spanid", &b3_span));
    request_ok(
        &mut mesh,
        "request B (malformed + valid x-b3-*)",
        &header_map(&headers).unwrap(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let trace_b = xray_id_of_hex128(&b3_trace);
    assert_eq!(
        trace_id_told_to_productpage(&mesh).unwrap_or_else(|e| panic!("{e}")),
        trace_b,
        "request B: the valid x-b3-traceid should decide the trace"
    );
    // Both are in the default `propagate`: replaced by valid ones of the B3 trace.
    for name in ["b3", "traceparent"] {
        let value = header_at_productpage(&mesh, name).unwrap_or_default();
        assert!(
            value.contains(&b3_trace),
            "request B: a malformed {name} should be replaced by one of trace {b3_trace}, got {value:?}"
        );
    }
    let after_b = malformed_count(&mesh).await;
    assert!(
        after_b >= after_a + 3,
        "request B: meshray_headers_malformed_total went from {after_a} to {after_b} on \
         productpage's sidecar, expected at least 3 more\n{}",
        mesh.diagnostics().await
    );
    eprintln!(
        "meshray_headers_malformed_total on productpage's sidecar: {after_a} after A, {after_b} after B"
    );

    let collected = exactly_traces(&mut mesh, 2)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_linked(
        trace_with_id(&collected, &trace_a).unwrap_or_else(|e| panic!("{e}")),
        None,
    );
    assert_linked(
        trace_with_id(&collected, &trace_b).unwrap_or_else(|e| panic!("{e}")),
        Some(&b3_span),
    );
}
