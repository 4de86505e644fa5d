//! The boundary between the filter's logic and the proxy.
//!
//! Everything the filter needs from Envoy goes through [`Host`], so the logic
//! is tested natively against [`FakeHost`] and only the small proxy-wasm
//! adapter (`adapter/`) calls `proxy_wasm::hostcalls`. Every method returns a
//! `Result`: a host error makes the filter skip work, never fail a request.

use std::time::Duration;

/// A failed host call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// The value is not available in the current phase of the request.
    #[error("{0} is not available in this phase")]
    NotAvailable(String),
    /// The host could not serialise the value (e.g. `filter_state` objects).
    #[error("{0} could not be serialised by the host")]
    Serialization(String),
    /// Any other failure status.
    #[error("host call {call} failed with status {status}")]
    Failed {
        /// The call that failed.
        call: &'static str,
        /// The host's status, for the log.
        status: String,
    },
}

/// What the filter needs from the proxy.
pub trait Host {
    /// Wall-clock time in nanoseconds since the Unix epoch.
    fn now_nanos(&self) -> Result<u64, HostError>;

    /// A property by path (`["xds", "cluster_name"]`); `None` when not found.
    fn property(&self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError>;

    /// All request headers, names lowercase, values as bytes (they need not be UTF-8).
    fn request_headers(&self) -> Result<Vec<(String, Vec<u8>)>, HostError>;

    /// Sets (replaces) one request header.
    fn set_request_header(&self, name: &str, value: &str) -> Result<(), HostError>;

    /// Adds a request header the request does not carry. Cheaper than
    /// [`Host::set_request_header`]: Envoy skips looking for an entry to replace.
    fn add_request_header(&self, name: &str, value: &str) -> Result<(), HostError>;

    /// Reads a key of the VM-wide shared data (shared by all worker VMs with the same `vm_id`).
    fn shared_data(&self, key: &str) -> Result<Option<Vec<u8>>, HostError>;

    /// Writes a key of the shared data unconditionally.
    fn set_shared_data(&self, key: &str, value: &[u8]) -> Result<(), HostError>;

    /// Reads a key of the shared data with its version (CAS token).
    fn shared_data_versioned(&self, key: &str) -> Result<(Option<Vec<u8>>, u32), HostError>;

    /// Writes a key only if it is still at `version` (0: whatever it holds);
    /// `false` when another worker wrote it first.
    fn set_shared_data_if(&self, key: &str, value: &[u8], version: u32) -> Result<bool, HostError>;

    /// A response header; readable in the log phase.
    fn response_header(&self, name: &str) -> Result<Option<Vec<u8>>, HostError>;

    /// A response trailer; readable in the log phase.
    fn response_trailer(&self, name: &str) -> Result<Option<Vec<u8>>, HostError>;

    /// Starts an HTTP call to `cluster`; the answer arrives in the root context.
    fn dispatch_http_call(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout: Duration,
    ) -> Result<u32, HostError>;

    /// A header of the answer to a `dispatch_http_call` (`:status`, `retry-after`);
    /// only in the root context's `on_http_call_response`.
    fn http_call_response_header(&self, name: &str) -> Result<Option<Vec<u8>>, HostError>;

    /// The first `size` bytes of that answer's body.
    fn http_call_response_body(&self, size: usize) -> Result<Option<Vec<u8>>, HostError>;

    /// The WasmPlugin's `pluginConfig` (`size` bytes); only in `on_configure`.
    fn plugin_configuration(&self, size: usize) -> Result<Option<Vec<u8>>, HostError>;

    /// Sets how often the root context's `on_tick` runs.
    fn set_tick_period(&self, period: Duration) -> Result<(), HostError>;

    /// Defines (or finds) a counter; the id is valid for the VM's lifetime.
    fn define_counter(&self, name: &str) -> Result<u32, HostError>;

    /// Adds `by` to a counter.
    fn increment_counter(&self, id: u32, by: i64) -> Result<(), HostError>;

    /// Defines (or finds) a gauge; the id is valid for the VM's lifetime.
    fn define_gauge(&self, name: &str) -> Result<u32, HostError>;

    /// Adds `by` (possibly negative) to a gauge. Worker VMs share a gauge by
    /// name, so each adds its own changes rather than setting a value.
    fn add_to_gauge(&self, id: u32, by: i64) -> Result<(), HostError>;
}

// === property helpers ===

/// Reads the first of `paths` that the host answers, as UTF-8 text.
///
/// Envoy 1.40 answers `xds.*` paths; older Istio proxies the bare names, so
/// callers list both.
pub fn property_string(host: &impl Host, paths: &[&[&str]]) -> Option<String> {
    paths.iter().find_map(|path| match host.property(path) {
        Ok(Some(bytes)) => String::from_utf8(bytes).ok().filter(|s| !s.is_empty()),
        Ok(None) | Err(_) => None,
    })
}

/// Reads a property encoded as an 8-byte little-endian integer (ints, enums,
/// timestamps and durations in Envoy's encoding).
pub fn property_i64(host: &impl Host, paths: &[&[&str]]) -> Option<i64> {
    paths.iter().find_map(|path| match host.property(path) {
        Ok(Some(bytes)) => <[u8; 8]>::try_from(bytes.as_slice())
            .ok()
            .map(i64::from_le_bytes),
        Ok(None) | Err(_) => None,
    })
}

#[cfg(any(test, feature = "fake-host"))]
pub use fake::FakeHost;

#[cfg(any(test, feature = "fake-host"))]
mod fake {
    //! A scripted host for native tests.
    use super::{Host, HostError};
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;
    use std::rc::Rc;
    use std::time::Duration;

    /// One recorded `dispatch_http_call`.
    #[derive(Debug, Clone)]
    pub struct Dispatched {
        /// Target cluster.
        pub cluster: String,
        /// Request headers.
        pub headers: Vec<(String, String)>,
        /// Body.
        pub body: Vec<u8>,
    }

    /// A fake proxy: properties, headers and shared data are maps; writes are recorded.
    #[derive(Debug, Default, Clone)]
    pub struct FakeHost {
        /// Current time (moved on with [`FakeHost::advance`]).
        pub now_nanos: Cell<u64>,
        /// Properties by dotted path.
        pub properties: HashMap<String, Vec<u8>>,
        /// Paths whose read fails with a serialisation error.
        pub failing_properties: Vec<String>,
        /// Request headers (in order).
        pub headers: RefCell<Vec<(String, Vec<u8>)>>,
        /// Whether reading the request's header map fails (writes still apply).
        pub request_headers_fail: bool,
        /// Header writes in order.
        pub header_writes: RefCell<Vec<(String, String)>>,
        /// Shared data, shared between clones (like worker VMs share it).
        pub shared: Rc<RefCell<HashMap<String, Vec<u8>>>>,
        /// Shared data versions (CAS tokens), as Envoy keeps them.
        pub shared_versions: Rc<RefCell<HashMap<String, u32>>>,
        /// Response headers (log phase).
        pub response_headers: Vec<(String, Vec<u8>)>,
        /// Response trailers (log phase).
        pub response_trailers: Vec<(String, Vec<u8>)>,
        /// Property reads in order, to check what the logic reads.
        pub property_reads: RefCell<Vec<String>>,
        /// Dispatched calls.
        pub dispatched: RefCell<Vec<Dispatched>>,
        /// Whether dispatch fails.
        pub dispatch_fails: bool,
        /// Counters by name.
        pub counters: Rc<RefCell<HashMap<String, i64>>>,
        /// Counter names by id.
        pub counter_names: Rc<RefCell<Vec<String>>>,
        /// Headers of the answer to a dispatched call.
        pub call_response_headers: Vec<(String, Vec<u8>)>,
        /// Body of the answer to a dispatched call.
        pub call_response_body: Option<Vec<u8>>,
        /// The `pluginConfig` bytes.
        pub plugin_configuration: Vec<u8>,
        /// The tick period last set.
        pub tick_period: RefCell<Option<Duration>>,
        /// Every host call in order, by the proxy-wasm ABI name it stands for,
        /// to count what a request costs.
        pub calls: RefCell<Vec<&'static str>>,
    }

    impl FakeHost {
        /// An empty host at time `now_secs`.
        pub fn at(now_secs: u64) -> Self {
            Self {
                now_nanos: Cell::new(now_secs * 1_000_000_000),
                ..Self::default()
            }
        }

        /// Moves the clock on by `nanos`.
        pub fn advance(&self, nanos: u64) {
            self.now_nanos.set(self.now_nanos.get() + nanos);
        }

        /// Adds a string property.
        pub fn with_property(mut self, path: &str, value: &str) -> Self {
            self.properties
                .insert(path.to_owned(), value.as_bytes().to_vec());
            self
        }

        /// Adds an int64 property.
        pub fn with_int_property(mut self, path: &str, value: i64) -> Self {
            self.properties
                .insert(path.to_owned(), value.to_le_bytes().to_vec());
            self
        }

        /// Adds a request header.
        pub fn with_header(self, name: &str, value: &str) -> Self {
            self.headers
                .borrow_mut()
                .push((name.to_owned(), value.as_bytes().to_vec()));
            self
        }

        /// Adds a response header (replacing one of the same name).
        pub fn with_response_header(mut self, name: &str, value: &str) -> Self {
            self.response_headers.retain(|(n, _)| n != name);
            self.response_headers
                .push((name.to_owned(), value.as_bytes().to_vec()));
            self
        }

        /// Adds a response trailer.
        pub fn with_response_trailer(mut self, name: &str, value: &str) -> Self {
            self.response_trailers
                .push((name.to_owned(), value.as_bytes().to_vec()));
            self
        }

        /// Adds a request header with raw bytes.
        pub fn with_header_bytes(self, name: &str, value: &[u8]) -> Self {
            self.headers
                .borrow_mut()
                .push((name.to_owned(), value.to_vec()));
            self
        }

        /// Sets the answer the next `on_http_call_response` reads.
        pub fn with_call_response(
            mut self,
            headers: &[(&str, &[u8])],
            body: Option<&[u8]>,
        ) -> Self {
            self.call_response_headers = headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.to_vec()))
                .collect();
            self.call_response_body = body.map(<[u8]>::to_vec);
            self
        }

        /// Sets the `pluginConfig` JSON.
        pub fn with_plugin_configuration(mut self, json: &str) -> Self {
            self.plugin_configuration = json.as_bytes().to_vec();
            self
        }

        /// A counter's value.
        pub fn counter(&self, name: &str) -> i64 {
            self.counters
                .borrow()
                .get(name)
                .copied()
                .unwrap_or_default()
        }

        /// The value of a request header after the filter's writes.
        pub fn header(&self, name: &str) -> Option<String> {
            self.headers
                .borrow()
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        }
    }

    fn find(pairs: &[(String, Vec<u8>)], name: &str) -> Option<Vec<u8>> {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    impl Host for FakeHost {
        fn now_nanos(&self) -> Result<u64, HostError> {
            self.calls.borrow_mut().push("get_current_time");
            Ok(self.now_nanos.get())
        }

        fn property(&self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
            self.calls.borrow_mut().push("get_property");
            let key = path.join(".");
            self.property_reads.borrow_mut().push(key.clone());
            if self.failing_properties.contains(&key) {
                return Err(HostError::Serialization(key));
            }
            Ok(self.properties.get(&key).cloned())
        }

        fn request_headers(&self) -> Result<Vec<(String, Vec<u8>)>, HostError> {
            self.calls.borrow_mut().push("get_header_map_pairs");
            if self.request_headers_fail {
                return Err(HostError::NotAvailable("the request header map".to_owned()));
            }
            Ok(self.headers.borrow().clone())
        }

        fn set_request_header(&self, name: &str, value: &str) -> Result<(), HostError> {
            self.calls.borrow_mut().push("replace_header_map_value");
            self.header_writes
                .borrow_mut()
                .push((name.to_owned(), value.to_owned()));
            let mut headers = self.headers.borrow_mut();
            headers.retain(|(n, _)| n != name);
            headers.push((name.to_owned(), value.as_bytes().to_vec()));
            Ok(())
        }

        fn add_request_header(&self, name: &str, value: &str) -> Result<(), HostError> {
            self.calls.borrow_mut().push("add_header_map_value");
            self.header_writes
                .borrow_mut()
                .push((name.to_owned(), value.to_owned()));
            self.headers
                .borrow_mut()
                .push((name.to_owned(), value.as_bytes().to_vec()));
            Ok(())
        }

        fn shared_data(&self, key: &str) -> Result<Option<Vec<u8>>, HostError> {
            self.calls.borrow_mut().push("get_shared_data");
            Ok(self.shared.borrow().get(key).cloned())
        }

        fn set_shared_data(&self, key: &str, value: &[u8]) -> Result<(), HostError> {
            self.set_shared_data_if(key, value, 0).map(|_| ())
        }

        fn shared_data_versioned(&self, key: &str) -> Result<(Option<Vec<u8>>, u32), HostError> {
            self.calls.borrow_mut().push("get_shared_data");
            let version = self.shared_versions.borrow().get(key).copied().unwrap_or(0);
            Ok((self.shared.borrow().get(key).cloned(), version))
        }

        fn set_shared_data_if(
            &self,
            key: &str,
            value: &[u8],
            version: u32,
        ) -> Result<bool, HostError> {
            self.calls.borrow_mut().push("set_shared_data");
            let mut versions = self.shared_versions.borrow_mut();
            let current = versions.entry(key.to_owned()).or_insert(0);
            if version != 0 && version != *current {
                return Ok(false);
            }
            *current += 1;
            self.shared
                .borrow_mut()
                .insert(key.to_owned(), value.to_vec());
            Ok(true)
        }

        fn response_header(&self, name: &str) -> Result<Option<Vec<u8>>, HostError> {
            self.calls.borrow_mut().push("get_header_map_value");
            Ok(find(&self.response_headers, name))
        }

        fn response_trailer(&self, name: &str) -> Result<Option<Vec<u8>>, HostError> {
            self.calls.borrow_mut().push("get_header_map_value");
            Ok(find(&self.response_trailers, name))
        }

        fn dispatch_http_call(
            &self,
            cluster: &str,
            headers: &[(&str, &str)],
            body: &[u8],
            _timeout: Duration,
        ) -> Result<u32, HostError> {
            self.calls.borrow_mut().push("dispatch_http_call");
            if self.dispatch_fails {
                return Err(HostError::Failed {
                    call: "dispatch_http_call",
                    status: "BadArgument".to_owned(),
                });
            }
            let mut dispatched = self.dispatched.borrow_mut();
            dispatched.push(Dispatched {
                cluster: cluster.to_owned(),
                headers: headers
                    .iter()
                    .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                    .collect(),
                body: body.to_vec(),
            });
            Ok(dispatched.len() as u32)
        }

        fn http_call_response_header(&self, name: &str) -> Result<Option<Vec<u8>>, HostError> {
            self.calls.borrow_mut().push("get_header_map_value");
            Ok(find(&self.call_response_headers, name))
        }

        fn http_call_response_body(&self, size: usize) -> Result<Option<Vec<u8>>, HostError> {
            self.calls.borrow_mut().push("get_buffer_bytes");
            Ok(self
                .call_response_body
                .as_ref()
                .map(|body| body[..size.min(body.len())].to_vec()))
        }

        fn plugin_configuration(&self, size: usize) -> Result<Option<Vec<u8>>, HostError> {
            self.calls.borrow_mut().push("get_buffer_bytes");
            let bytes = &self.plugin_configuration;
            Ok(Some(bytes[..size.min(bytes.len())].to_vec()))
        }

        fn set_tick_period(&self, period: Duration) -> Result<(), HostError> {
            self.calls.borrow_mut().push("set_tick_period_milliseconds");
            *self.tick_period.borrow_mut() = Some(period);
            Ok(())
        }

        fn define_counter(&self, name: &str) -> Result<u32, HostError> {
            self.calls.borrow_mut().push("define_metric");
            let mut names = self.counter_names.borrow_mut();
            names.push(name.to_owned());
            Ok((names.len() - 1) as u32)
        }

        fn increment_counter(&self, id: u32, by: i64) -> Result<(), HostError> {
            self.calls.borrow_mut().push("increment_metric");
            let name = self
                .counter_names
                .borrow()
                .get(id as usize)
                .cloned()
                .unwrap_or_default();
            *self.counters.borrow_mut().entry(name).or_default() += by;
            Ok(())
        }

        fn define_gauge(&self, name: &str) -> Result<u32, HostError> {
            self.define_counter(name)
        }

        fn add_to_gauge(&self, id: u32, by: i64) -> Result<(), HostError> {
            self.increment_counter(id, by)
        }
    }
}
