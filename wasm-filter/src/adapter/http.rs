//! The HTTP context: one per request. Hands request headers and the log phase
//! to the VM's [`Worker`]. It always lets the request continue.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use super::proxy_host::ProxyWasmHost;
use crate::tracer::ActiveSpan;
use crate::worker::Worker;

/// Per-request context.
pub struct MeshrayHttp {
    /// Envoy's context id, for log lines.
    context_id: u32,
    /// The VM's worker; `None` if configuration failed.
    worker: Option<Rc<Worker>>,
    /// The traced span between request headers and log.
    active: Option<ActiveSpan>,
    /// Whether the request-headers callback ran; when it did not, something
    /// before the filter answered the request, and the log phase builds the document.
    saw_request_headers: bool,
}

impl MeshrayHttp {
    /// A context for one request.
    pub fn new(context_id: u32, worker: Option<Rc<Worker>>) -> Self {
        Self {
            context_id,
            worker,
            active: None,
            saw_request_headers: false,
        }
    }
}

impl Context for MeshrayHttp {}

impl HttpContext for MeshrayHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // Headers may be changed here, before the router forwards the request.
        self.saw_request_headers = true;
        if let Some(worker) = &self.worker {
            self.active = worker.on_request_headers(&ProxyWasmHost);
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        let Some(worker) = &self.worker else { return };
        let buffered = match self.active.take() {
            Some(span) => worker.on_log(&ProxyWasmHost, span),
            None if !self.saw_request_headers => worker.on_log_unseen(&ProxyWasmHost),
            None => return,
        };
        if !buffered {
            log::debug!("#{} meshray: no document", self.context_id);
        }
    }
}
