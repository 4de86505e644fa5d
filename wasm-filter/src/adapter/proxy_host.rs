//! [`Host`] over `proxy_wasm::hostcalls`. Statuses become [`HostError`]s; the
//! SDK's `Context::get_property` is never used because it panics on
//! `SerializationFailure`.

use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType, MetricType, Status};

use crate::host::{Host, HostError};

/// The host of the current callback.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProxyWasmHost;

fn failed(call: &'static str, status: Status) -> HostError {
    HostError::Failed {
        call,
        status: format!("{status:?}"),
    }
}

impl Host for ProxyWasmHost {
    fn now_nanos(&self) -> Result<u64, HostError> {
        let now = hostcalls::get_current_time().map_err(|s| failed("get_current_time", s))?;
        let since = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| failed("get_current_time", Status::InternalFailure))?;
        Ok(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
    }

    fn property(&self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
        hostcalls::get_property(path.to_vec()).map_err(|status| match status {
            Status::SerializationFailure => HostError::Serialization(path.join(".")),
            Status::BadArgument => HostError::NotAvailable(path.join(".")),
            other => failed("get_property", other),
        })
    }

    fn request_headers(&self) -> Result<Vec<(String, Vec<u8>)>, HostError> {
        // get_map_bytes, not get_map: the latter panics on non-UTF-8 values.
        hostcalls::get_map_bytes(MapType::HttpRequestHeaders)
            .map_err(|s| failed("get_map_bytes", s))
    }

    fn set_request_header(&self, name: &str, value: &str) -> Result<(), HostError> {
        hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value))
            .map_err(|s| failed("set_map_value", s))
    }

    fn add_request_header(&self, name: &str, value: &str) -> Result<(), HostError> {
        hostcalls::add_map_value(MapType::HttpRequestHeaders, name, value)
            .map_err(|s| failed("add_map_value", s))
    }

    fn shared_data(&self, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        hostcalls::get_shared_data(key)
            .map(|(value, _cas)| value)
            .map_err(|s| failed("get_shared_data", s))
    }

    fn set_shared_data(&self, key: &str, value: &[u8]) -> Result<(), HostError> {
        hostcalls::set_shared_data(key, Some(value), None).map_err(|s| failed("set_shared_data", s))
    }

    fn shared_data_versioned(&self, key: &str) -> Result<(Option<Vec<u8>>, u32), HostError> {
        hostcalls::get_shared_data(key)
            .map(|(value, cas)| (value, cas.unwrap_or(0)))
            .map_err(|s| failed("get_shared_data", s))
    }

    fn set_shared_data_if(&self, key: &str, value: &[u8], version: u32) -> Result<bool, HostError> {
        let cas = (version != 0).then_some(version);
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(true),
            Err(Status::CasMismatch) => Ok(false),
            Err(s) => Err(failed("set_shared_data", s)),
        }
    }

    fn response_header(&self, name: &str) -> Result<Option<Vec<u8>>, HostError> {
        hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, name)
            .map_err(|s| failed("get_map_value_bytes", s))
    }

    fn response_trailer(&self, name: &str) -> Result<Option<Vec<u8>>, HostError> {
        hostcalls::get_map_value_bytes(MapType::HttpResponseTrailers, name)
            .map_err(|s| failed("get_map_value_bytes", s))
    }

    fn dispatch_http_call(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout: Duration,
    ) -> Result<u32, HostError> {
        hostcalls::dispatch_http_call(cluster, headers.to_vec(), Some(body), Vec::new(), timeout)
            .map_err(|s| failed("dispatch_http_call", s))
    }

    fn http_call_response_header(&self, name: &str) -> Result<Option<Vec<u8>>, HostError> {
        hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, name)
            .map_err(|s| failed("get_map_value_bytes", s))
    }

    fn http_call_response_body(&self, size: usize) -> Result<Option<Vec<u8>>, HostError> {
        hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, size)
            .map_err(|s| failed("get_buffer", s))
    }

    fn plugin_configuration(&self, size: usize) -> Result<Option<Vec<u8>>, HostError> {
        hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size)
            .map_err(|s| failed("get_buffer", s))
    }

    fn set_tick_period(&self, period: Duration) -> Result<(), HostError> {
        hostcalls::set_tick_period(period).map_err(|s| failed("set_tick_period", s))
    }

    fn define_counter(&self, name: &str) -> Result<u32, HostError> {
        hostcalls::define_metric(MetricType::Counter, name).map_err(|s| failed("define_metric", s))
    }

    fn increment_counter(&self, id: u32, by: i64) -> Result<(), HostError> {
        hostcalls::increment_metric(id, by).map_err(|s| failed("increment_metric", s))
    }

    fn define_gauge(&self, name: &str) -> Result<u32, HostError> {
        hostcalls::define_metric(MetricType::Gauge, name).map_err(|s| failed("define_metric", s))
    }

    fn add_to_gauge(&self, id: u32, by: i64) -> Result<(), HostError> {
        hostcalls::increment_metric(id, by).map_err(|s| failed("increment_metric", s))
    }
}
