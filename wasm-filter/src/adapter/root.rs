//! The root context: one per worker VM. Holds the configuration, the workload
//! identity, the counters and the shipper; its tick sends batches to the relay.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, MapType};

use super::http::MeshrayHttp;
use super::proxy_host::ProxyWasmHost;
use crate::config::FilterConfig;
use crate::metrics::Metrics;
use crate::shipper::{RelayReply, Shipper};
use crate::workload::Workload;

/// How often the root checks whether a batch is full (or the flush interval, if
/// shorter). The configured flush interval bounds how long a document waits; this
/// bounds how late a full batch leaves.
const TICK: Duration = Duration::from_millis(100);

/// What every request context of this VM shares with the root.
#[derive(Debug)]
pub struct Shared {
    /// Validated configuration.
    pub config: FilterConfig,
    /// Workload identity.
    pub workload: Workload,
    /// Counter ids.
    pub metrics: Metrics,
    /// Buffer and posts in flight.
    pub shipper: RefCell<Shipper>,
    /// Ids and sampling.
    pub random: RefCell<fastrand::Rng>,
}

/// Root context.
#[derive(Default)]
pub struct MeshrayRoot {
    /// Set by a successful `on_configure`; requests are untouched before that.
    shared: Option<Rc<Shared>>,
}

impl Context for MeshrayRoot {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let Some(shared) = &self.shared else { return };
        let header = |name: &str| {
            hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, name)
                .ok()
                .flatten()
        };
        let status =
            header(":status").and_then(|s| std::str::from_utf8(&s).ok()?.parse::<u16>().ok());
        let retry_after = header("retry-after").is_some();
        let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten();
        let reply = RelayReply {
            status,
            retry_after,
            body: body.as_deref(),
        };
        shared.shipper.borrow_mut().on_response(
            &ProxyWasmHost,
            &shared.config,
            &shared.metrics,
            token_id,
            reply,
        );
    }
}

impl RootContext for MeshrayRoot {
    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let bytes = if plugin_configuration_size == 0 {
            Vec::new()
        } else {
            hostcalls::get_buffer(
                BufferType::PluginConfiguration,
                0,
                plugin_configuration_size,
            )
            .ok()
            .flatten()
            .unwrap_or_default()
        };
        let config = match FilterConfig::parse(&bytes) {
            Ok(config) => config,
            Err(errors) => {
                log::error!("meshray: {errors}");
                return false;
            }
        };
        let host = ProxyWasmHost;
        let workload = Workload::read(&host, &config);
        log::info!(
            "meshray: configured for service {:?} (namespace {:?}), relay cluster {:?}, sampling {}",
            workload.service,
            workload.namespace,
            config.relay_cluster,
            config.sampling_rate
        );
        let metrics = Metrics::define(&host);
        self.shared = Some(Rc::new(Shared {
            config,
            workload,
            metrics,
            shipper: RefCell::new(Shipper::default()),
            random: RefCell::new(fastrand::Rng::new()),
        }));
        let tick = self
            .shared
            .as_ref()
            .map_or(TICK, |shared| TICK.min(shared.config.flush_interval));
        if let Err(e) = hostcalls::set_tick_period(tick) {
            log::error!("meshray: cannot start the flush timer: {e:?}");
        }
        true
    }

    fn on_tick(&mut self) {
        if let Some(shared) = &self.shared {
            shared
                .shipper
                .borrow_mut()
                .on_tick(&ProxyWasmHost, &shared.config, &shared.metrics);
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(MeshrayHttp::new(context_id, self.shared.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
