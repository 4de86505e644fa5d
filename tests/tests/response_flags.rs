//! Envoy's response flags on the documents: an app that is down behind its sidecar.
//!
//! Ratings' app is stopped (its port refuses connections) while its sidecar keeps running,
//! as when the app container crashed: the ratings sidecar's inbound cluster fails to
//! connect and Envoy answers 503 itself with the response flag `UF`. The sample app's
//! reviews degrades like Bookinfo's (a 200 page without ratings).
//!
//! Needs the filter module, the relay binary, Envoy and moto (`make test`).

mod common;

use common::{linked_traces, only, start_mesh};
use meshray_e2e::MeshOptions;
use meshray_e2e::app::Service;
use meshray_e2e::xray::Document;

const REQUESTS: usize = 3;

fn annotation<'a>(doc: &'a Document, key: &str) -> Option<&'a str> {
    doc.raw.pointer(&format!("/annotations/{key}"))?.as_str()
}

/// With ratings' app down, each request to productpage still answers 200 (reviews
/// degrades) and gives one fully linked trace in which the ratings segment (the ratings
/// sidecar's inbound side) has `fault`, HTTP status 503 and annotation `response_flags`
/// containing `UF` (upstream connection failure), and reviews' `ratings` subsegment has
/// `fault` and status 503, while productpage and reviews stay 200 without fault.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_app_is_an_upstream_connection_failure_on_its_segment() {
    let mut mesh = start_mesh("response-flags", MeshOptions::default()).await;

    let ratings_app = mesh.pod(Service::Ratings).app.addr();
    mesh.stop_app(Service::Ratings).await;
    let refused = tokio::net::TcpStream::connect(ratings_app).await;
    assert!(
        refused.is_err(),
        "ratings' app at {ratings_app} still accepts connections after it was stopped"
    );

    for i in 0..REQUESTS {
        let response = match mesh.request_productpage("").await {
            Ok(response) => response,
            Err(err) => panic!("request {i}: {err}\n{}", mesh.diagnostics().await),
        };
        let body = response.text();
        if response.status != 200 || !body.contains("ratings unavailable") {
            panic!(
                "request {i}: expected a degraded 200 page (\"ratings unavailable\"), got {}: \
                 {body}\n{}",
                response.status,
                mesh.diagnostics().await
            );
        }
    }
    let traces = linked_traces(&mut mesh, REQUESTS).await;
    for trace in &traces {
        let ratings = only(trace, "ratings", false);
        assert_eq!(
            ratings.http_status,
            Some(503),
            "ratings segment status\n{}",
            trace.render()
        );
        assert!(
            ratings.fault && !ratings.error,
            "ratings segment should be a fault\n{}",
            trace.render()
        );
        let flags = annotation(ratings, "response_flags");
        assert!(
            flags.is_some_and(|f| f.split(',').any(|flag| flag.trim() == "UF")),
            "ratings segment's response_flags annotation is {flags:?}, expected one with UF; \
             annotations {:?}\n{}",
            ratings.raw.get("annotations"),
            trace.render()
        );

        let call = only(trace, "ratings", true);
        assert_eq!(
            call.http_status,
            Some(503),
            "reviews' ratings subsegment status\n{}",
            trace.render()
        );
        assert!(
            call.fault && !call.error,
            "reviews' ratings subsegment should be a fault\n{}",
            trace.render()
        );

        for (name, remote) in [
            ("productpage", false),
            ("reviews", true),
            ("reviews", false),
        ] {
            let doc = only(trace, name, remote);
            assert_eq!(doc.http_status, Some(200), "{name}\n{}", trace.render());
            assert!(!doc.fault && !doc.error, "{name}\n{}", trace.render());
        }
    }
}
