//! Helpers shared by the end-to-end test files (each file is its own crate, and each uses
//! a different subset). They fail the test, with the mesh's diagnostics, where the
//! harness returns an error.
#![allow(dead_code, clippy::panic)]

use hyper::http::HeaderMap;
use meshray_e2e::http::HttpResponse;
use meshray_e2e::xray::{Document, Trace};
use meshray_e2e::{Mesh, MeshOptions};

/// The one document named `name` that is (`remote`) or is not a remote subsegment.
/// A missing or repeated document is a failed test, reported with the trace.
pub fn only<'a>(trace: &'a Trace, name: &str, remote: bool) -> &'a Document {
    trace.single(name, remote).unwrap_or_else(|| {
        panic!(
            "expected exactly one {name} (remote {remote}) in\n{}",
            trace.render()
        )
    })
}

/// Starts the mesh labelled `label` with `options` (its label replaced); a mesh that does
/// not start fails the test.
pub async fn start_mesh(label: &str, options: MeshOptions) -> Mesh {
    Mesh::start(MeshOptions {
        label: label.to_owned(),
        ..options
    })
    .await
    .unwrap_or_else(|e| panic!("the mesh did not start: {e}"))
}

/// Sends `n` requests to productpage with `query`, one after another, and returns the `n`
/// fully linked Bookinfo traces they gave ([`Mesh::linked_bookinfo_traces`]); a failed
/// request or a missing or unlinked trace fails the test.
pub async fn linked_traces_of_requests(mesh: &mut Mesh, n: usize, query: &str) -> Vec<Trace> {
    if let Err(err) = mesh.send_requests(n, query).await {
        panic!("{err}\n{}", mesh.diagnostics().await);
    }
    linked_traces(mesh, n).await
}

/// The `n` fully linked Bookinfo traces since the mesh started; anything else fails the test.
pub async fn linked_traces(mesh: &mut Mesh, n: usize) -> Vec<Trace> {
    mesh.linked_bookinfo_traces(n)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Sends `GET /productpage?{query}` with `headers` through the mesh; an answer other than
/// `status` (or none) fails the test with the mesh's diagnostics.
pub async fn request_expecting(
    mesh: &mut Mesh,
    query: &str,
    headers: &HeaderMap,
    status: u16,
) -> HttpResponse {
    match mesh.request_productpage_with(query, headers).await {
        Ok(response) if response.status == status => response,
        Ok(response) => panic!(
            "?{query}: expected {status}, got {}: {}\n{}",
            response.status,
            response.text(),
            mesh.diagnostics().await
        ),
        Err(err) => panic!("?{query}: {err}\n{}", mesh.diagnostics().await),
    }
}
