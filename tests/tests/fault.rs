//! Faults in the chain show up on the right documents, and the trace stays linked.
//!
//! Needs the filter module, the relay binary, Envoy and moto (`make test`).

mod common;

use common::only;
use meshray_e2e::{Mesh, MeshOptions};

const REQUESTS: usize = 3;

/// When ratings answers 503 (`?fail=1`), reviews degrades to a 200 like Bookinfo: the
/// ratings segment and reviews' `ratings` subsegment carry status 503 and `fault`, the
/// reviews and productpage documents stay 200 without fault, and the trace is still one
/// fully linked trace per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_callee_is_a_fault_on_its_segment_and_the_callers_subsegment() {
    let mut mesh = Mesh::start(MeshOptions {
        label: "fault".into(),
        ..MeshOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("the mesh did not start: {e}"));

    if let Err(err) = mesh.send_requests(REQUESTS, "fail=1").await {
        panic!("{err}\n{}", mesh.diagnostics().await);
    }
    let traces = mesh
        .linked_bookinfo_traces(REQUESTS)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for trace in &traces {
        for (name, remote) in [("ratings", false), ("ratings", true)] {
            let doc = only(trace, name, remote);
            assert_eq!(doc.http_status, Some(503), "{}", trace.render());
            assert!(doc.fault && !doc.error, "{}", trace.render());
        }
        for (name, remote) in [
            ("productpage", false),
            ("reviews", true),
            ("reviews", false),
        ] {
            let doc = only(trace, name, remote);
            assert_eq!(doc.http_status, Some(200), "{}", trace.render());
            assert!(!doc.fault && !doc.error, "{}", trace.render());
        }
    }
}
