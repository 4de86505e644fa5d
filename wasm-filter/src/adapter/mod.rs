//! The proxy-wasm adapter: contexts that hand each callback to the logic, and
//! [`ProxyWasmHost`], the only code that calls `proxy_wasm::hostcalls`.

mod http;
mod proxy_host;
mod root;

use proxy_wasm::traits::RootContext;
use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    // Last resort: the filter never panics by design, but if it did the VM
    // would die; make sure the reason reaches Envoy's log.
    std::panic::set_hook(Box::new(|info| {
        if proxy_wasm::hostcalls::log(LogLevel::Critical, &format!("meshray: panic: {info}")).is_err() {
            // Nothing left to report to.
        }
    }));
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(root::MeshrayRoot::default()) });
}}
