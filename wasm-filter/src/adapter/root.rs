//! The root context: one per worker VM. Holds the VM's [`Worker`] once
//! configured and hands it every root callback.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

use super::http::MeshrayHttp;
use super::proxy_host::ProxyWasmHost;
use crate::worker::Worker;

/// Root context.
#[derive(Default)]
pub struct MeshrayRoot {
    /// Set by a successful `on_configure`; requests are untouched before that.
    worker: Option<Rc<Worker>>,
}

impl Context for MeshrayRoot {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        if let Some(worker) = &self.worker {
            worker.on_relay_response(&ProxyWasmHost, token_id, body_size);
        }
    }
}

impl RootContext for MeshrayRoot {
    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        match Worker::configure(&ProxyWasmHost, plugin_configuration_size) {
            Ok(worker) => {
                self.worker = Some(Rc::new(worker));
                true
            }
            // Worker::configure logged every problem.
            Err(_) => false,
        }
    }

    fn on_tick(&mut self) {
        if let Some(worker) = &self.worker {
            worker.on_tick(&ProxyWasmHost);
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(MeshrayHttp::new(context_id, self.worker.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
