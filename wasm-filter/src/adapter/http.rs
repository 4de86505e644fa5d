//! The HTTP context: one per request. Hands request headers and the log phase
//! to [`crate::tracer`] and the finished document to the shipper. It always
//! lets the request continue.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use super::proxy_host::ProxyWasmHost;
use super::root::Shared;
use crate::tracer::{self, ActiveSpan};

/// Per-request context.
pub struct MeshrayHttp {
    /// Envoy's context id, for log lines.
    context_id: u32,
    /// The VM's shared state; `None` if configuration failed.
    shared: Option<Rc<Shared>>,
    /// The traced span between request headers and log.
    active: Option<ActiveSpan>,
}

impl MeshrayHttp {
    /// A context for one request.
    pub fn new(context_id: u32, shared: Option<Rc<Shared>>) -> Self {
        Self {
            context_id,
            shared,
            active: None,
        }
    }
}

impl Context for MeshrayHttp {}

impl HttpContext for MeshrayHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // Headers may be changed here, before the router forwards the request.
        if let Some(shared) = &self.shared {
            let mut random = shared.random.borrow_mut();
            self.active = tracer::on_request_headers(
                &ProxyWasmHost,
                &shared.config,
                &shared.metrics,
                &mut *random,
            );
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        let (Some(shared), Some(span)) = (&self.shared, self.active.take()) else {
            return;
        };
        match tracer::on_log(&ProxyWasmHost, span, &shared.workload, &shared.metrics) {
            Some(document) => {
                shared.shipper.borrow_mut().push(&shared.config, document);
            }
            None => log::debug!("#{} meshray: document dropped", self.context_id),
        }
    }
}
