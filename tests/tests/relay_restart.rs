//! A relay restart on the same port under steady load loses nothing: the sidecars'
//! filters put failed posts back into their buffers and send them again once the relay
//! answers (issue 8, item 9).
//!
//! Needs the filter module, the relay binary, Envoy and moto (`make test`).

use std::time::Duration;

use bytes::Bytes;
use hyper::http::{HeaderMap, Method};
use meshray_e2e::http::{DEFAULT_TIMEOUT, HttpClient};
use meshray_e2e::{Mesh, MeshOptions};

/// Requests of the steady load.
const REQUESTS: usize = 60;
/// Pause between two requests (≈ 20 requests/s).
const INTERVAL: Duration = Duration::from_millis(50);
/// Load before the relay stops.
const BEFORE_STOP: Duration = Duration::from_millis(800);
/// How long the relay stays down: far shorter than the buffers (1000 documents per worker).
const OUTAGE: Duration = Duration::from_millis(1500);

/// The relay stops (SIGTERM, drained) and starts again on the same port while a client
/// keeps calling productpage. Every request is answered 200, every request arrives as
/// one fully linked trace (0 documents lost), at least one sidecar counts documents it
/// retried, and none counts a dropped document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_restart_under_load_loses_no_document() {
    let mut mesh = Mesh::start(MeshOptions {
        label: "relay-restart".into(),
        ..MeshOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("the mesh did not start: {e}"));

    let url = mesh.productpage_url();
    let load = tokio::spawn(async move {
        let client = HttpClient::new();
        let mut failures = Vec::new();
        for i in 0..REQUESTS {
            match client
                .send(
                    Method::GET,
                    &url,
                    &HeaderMap::new(),
                    Bytes::new(),
                    DEFAULT_TIMEOUT,
                )
                .await
            {
                Ok(response) if response.status == 200 => {}
                Ok(response) => failures.push(format!("request {i}: status {}", response.status)),
                Err(err) => failures.push(format!("request {i}: {err}")),
            }
            tokio::time::sleep(INTERVAL).await;
        }
        failures
    });

    tokio::time::sleep(BEFORE_STOP).await;
    let stopped = mesh.relay().stop().await.unwrap_or_else(|e| panic!("{e}"));
    eprintln!("relay stopped: {stopped}");
    tokio::time::sleep(OUTAGE).await;
    mesh.relay()
        .restart()
        .await
        .unwrap_or_else(|e| panic!("the relay did not come back on its port: {e}"));

    let failures = load.await.unwrap_or_else(|e| panic!("load task: {e}"));
    assert!(failures.is_empty(), "traffic was harmed: {failures:?}");

    let traces = mesh.linked_bookinfo_traces(REQUESTS).await;
    let stats = mesh
        .meshray_stats()
        .await
        .unwrap_or_else(|e| panic!("reading the sidecars' stats: {e}"));
    let mut retried_total = 0;
    let mut report = Vec::new();
    for (service, s) in &stats {
        let retried = s.get("meshray_segments_retried_total").unwrap_or(0);
        let dropped = s.get("meshray_segments_dropped_total").unwrap_or(0);
        retried_total += retried;
        report.push(format!("{service}: retried {retried}, dropped {dropped}"));
        assert_eq!(
            dropped,
            0,
            "{service} dropped documents: {}",
            report.join("; ")
        );
    }
    eprintln!("{}", report.join("; "));
    if let Err(err) = traces {
        panic!("{err}\n{}", report.join("; "));
    }
    assert!(
        retried_total > 0,
        "no sidecar retried a post across the outage: {}",
        report.join("; ")
    );
}
