//! Faults in the chain show up on the right documents, and the trace stays linked.
//!
//! Needs the filter module, the relay binary, Envoy and moto (`make test`).

mod common;

use common::{linked_traces_of_requests, only, start_mesh};
use meshray_e2e::MeshOptions;

const REQUESTS: usize = 3;

/// When ratings answers 503 (`?fail=1`), reviews degrades to a 200 like Bookinfo: the
/// ratings segment and reviews' `ratings` subsegment carry status 503 and `fault`, the
/// reviews and productpage documents stay 200 without fault, and the trace is still one
/// fully linked trace per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_callee_is_a_fault_on_its_segment_and_the_callers_subsegment() {
    let mut mesh = start_mesh("fault", MeshOptions::default()).await;
    let traces = linked_traces_of_requests(&mut mesh, REQUESTS, "fail=1").await;
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
