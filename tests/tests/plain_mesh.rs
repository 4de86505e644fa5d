//! The harness's plumbing without the filter: a control for the traced tests.
//!
//! Needs the relay binary, Envoy and moto (`make test`).

mod common;

use common::start_mesh;
use meshray_e2e::MeshOptions;
use meshray_e2e::app::Service;

/// Without the meshray filter the same mesh still routes productpage → reviews → ratings
/// through each caller's outbound listener by `Host` (so a failure of the traced tests is
/// the filter's, not the harness's), the app forwards the Bookinfo headers, the admin
/// and `/proc` helpers work, and nothing is traced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untraced_mesh_routes_the_sample_app() {
    let options = MeshOptions {
        with_filter: false,
        ..MeshOptions::default()
    };
    let mut mesh = start_mesh("plain", options).await;

    let page = mesh.request_productpage("").await.unwrap();
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains("Reviewer1"), "{}", page.text());
    assert_eq!(page.header("server"), Some("istio-envoy"));

    let ratings = mesh.pod(Service::Ratings);
    assert_eq!(ratings.app.stats().requests(), 1);
    let seen = ratings.app.stats().last_headers();
    let get = |name: &str| seen.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(get("host").as_deref(), Some("ratings:9080"));
    assert!(get("x-request-id").is_some(), "{seen:?}");
    assert_eq!(get("x-amzn-trace-id"), None, "{seen:?}");

    // A host no virtual host knows goes to BlackHoleCluster (REGISTRY_ONLY).
    let outbound = mesh.pod(Service::Productpage).sidecar.outbound_addr();
    let headers = meshray_e2e::http::header_map(&[("host", "unknown.example.com")]).unwrap();
    let blocked = meshray_e2e::http::HttpClient::new()
        .send(
            hyper::http::Method::GET,
            &format!("http://{outbound}/"),
            &headers,
            bytes::Bytes::new(),
            std::time::Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(blocked.status, 503, "{}", blocked.text());

    let sidecar = &mesh.pod(Service::Reviews).sidecar;
    assert!(sidecar.rss_bytes().unwrap() > 1 << 20);
    let stats = sidecar.stats("outbound_0.0.0.0_9080").await.unwrap();
    assert_eq!(
        stats.get("http.outbound_0.0.0.0_9080.downstream_rq_completed"),
        Some(1)
    );
    assert!(
        mesh.meshray_stats().await.unwrap()[&Service::Ratings]
            .get("meshray_segments_emitted_total")
            .is_none()
    );
    mesh.check_running().unwrap();
}
