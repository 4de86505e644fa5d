//! An empty proxy-wasm HTTP filter: a root context and one HTTP context per request,
//! neither doing anything. `make bench` loads it into Envoy to measure what any wasm
//! HTTP filter costs per request (VM calls for each callback), the floor the meshray
//! filter's own cost is compared with (`filter_vs_floor`).
//!
//! Only compiled for `wasm32`; on the host the crate is empty so `cargo test --workspace`
//! and clippy stay cheap.
#![forbid(unsafe_code)]

#[cfg(target_arch = "wasm32")]
mod filter {
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{ContextType, LogLevel};

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Warn);
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(EmptyRoot) });
    }}

    /// The root context: hands out one [`EmptyHttp`] per request.
    struct EmptyRoot;

    impl Context for EmptyRoot {}

    impl RootContext for EmptyRoot {
        fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(EmptyHttp))
        }

        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }
    }

    /// The per-request context: every callback keeps its default (continue).
    struct EmptyHttp;

    impl Context for EmptyHttp {}

    impl HttpContext for EmptyHttp {}
}
