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
}

impl MeshrayHttp {
    /// A context for one request.
    pub fn new(context_id: u32, worker: Option<Rc<Worker>>) -> Self {
        Self {
            context_id,
            worker,
            active: None,
        }
    }
}

impl Context for MeshrayHttp {}

impl HttpContext for MeshrayHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // Headers may be changed here, before the router forwards the request.
        if let Some(worker) = &self.worker {
            self.active = worker.on_request_headers(&ProxyWasmHost);
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        let (Some(worker), Some(span)) = (&self.worker, self.active.take()) else {
            return;
        };
        if !worker.on_log(&ProxyWasmHost, span) {
            log::debug!("#{} meshray: document dropped", self.context_id);
        }
    }
}
