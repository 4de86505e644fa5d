//! A probe filter: per request it makes the host calls its configuration lists, so
//! `make bench-hostcalls` can price each kind of host call in Envoy as the difference
//! in proxy CPU per request against the same filter configured to do nothing.
//!
//! The configuration (the plugin's `configuration` string) is one step per line:
//! `<phase> <call> <argument> <times>`, phase `request` (request headers) or `log`.
//! Calls: `property <dotted.path>`, `headers -` (the whole request header map),
//! `header <name>` (one request header), `set <name>` (replace request header
//! `<name>-<i>`), `add <name>` (add request header `<name>-<i>`), `set_map -` (write the
//! whole request header map back with one extra header), `time -`, `shared_get <key>`,
//! `shared_set <key>`, `response_header <name>`. A line that does not parse is
//! skipped and logged.
//!
//! Only compiled for `wasm32`; on the host the crate is empty.
#![forbid(unsafe_code)]

#[cfg(target_arch = "wasm32")]
mod filter {
    use std::rc::Rc;

    use proxy_wasm::hostcalls;
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Warn);
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(ProbeRoot::default()) });
    }}

    /// When a step runs.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Phase {
        Request,
        Log,
    }

    /// One configured step.
    struct Step {
        phase: Phase,
        call: String,
        argument: String,
        times: usize,
    }

    fn parse(text: &str) -> Vec<Step> {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|line| {
                let words: Vec<&str> = line.split_whitespace().collect();
                let step = match words.as_slice() {
                    [phase, call, argument, times] => Some(Step {
                        phase: match *phase {
                            "request" => Phase::Request,
                            "log" => Phase::Log,
                            _ => return None,
                        },
                        call: (*call).to_owned(),
                        argument: (*argument).to_owned(),
                        times: times.parse().ok()?,
                    }),
                    _ => None,
                };
                if step.is_none() {
                    log::warn!("probe: skipping step {line:?}");
                }
                step
            })
            .collect()
    }

    fn run(steps: &[Step], phase: Phase) {
        for step in steps.iter().filter(|s| s.phase == phase) {
            for i in 0..step.times {
                let name = format!("{}-{i}", step.argument);
                // Results are thrown away: only the cost of the call matters.
                let ok = match step.call.as_str() {
                    "property" => {
                        let path: Vec<&str> = step.argument.split('.').collect();
                        hostcalls::get_property(path).is_ok()
                    }
                    "headers" => hostcalls::get_map_bytes(MapType::HttpRequestHeaders).is_ok(),
                    "header" => {
                        hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, &step.argument)
                            .is_ok()
                    }
                    "set" => hostcalls::set_map_value(
                        MapType::HttpRequestHeaders,
                        &name,
                        Some("0123456789abcdef0123456789abcdef"),
                    )
                    .is_ok(),
                    "add" => hostcalls::add_map_value(
                        MapType::HttpRequestHeaders,
                        &name,
                        "0123456789abcdef0123456789abcdef",
                    )
                    .is_ok(),
                    "set_map" => match hostcalls::get_map(MapType::HttpRequestHeaders) {
                        Ok(mut pairs) => {
                            pairs.push((name.clone(), "0123456789abcdef".to_owned()));
                            let refs: Vec<(&str, &str)> = pairs
                                .iter()
                                .map(|(n, v)| (n.as_str(), v.as_str()))
                                .collect();
                            hostcalls::set_map(MapType::HttpRequestHeaders, refs).is_ok()
                        }
                        Err(_) => false,
                    },
                    "time" => hostcalls::get_current_time().is_ok(),
                    "shared_get" => hostcalls::get_shared_data(&step.argument).is_ok(),
                    "shared_set" => {
                        hostcalls::set_shared_data(&step.argument, Some(&[7u8; 128]), None).is_ok()
                    }
                    "response_header" => {
                        hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, &step.argument)
                            .is_ok()
                    }
                    _ => false,
                };
                if !ok {
                    log::debug!("probe: {} {} failed", step.call, step.argument);
                }
            }
        }
    }

    /// The root context: reads the steps, hands them to every request.
    #[derive(Default)]
    struct ProbeRoot {
        steps: Rc<Vec<Step>>,
    }

    impl Context for ProbeRoot {}

    impl RootContext for ProbeRoot {
        fn on_configure(&mut self, size: usize) -> bool {
            let bytes = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size)
                .ok()
                .flatten()
                .unwrap_or_default();
            self.steps = Rc::new(parse(&String::from_utf8_lossy(&bytes)));
            true
        }

        fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(ProbeHttp {
                steps: self.steps.clone(),
            }))
        }

        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }
    }

    /// The per-request context: runs the steps of each phase.
    struct ProbeHttp {
        steps: Rc<Vec<Step>>,
    }

    impl Context for ProbeHttp {}

    impl HttpContext for ProbeHttp {
        fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
            run(&self.steps, Phase::Request);
            Action::Continue
        }

        fn on_log(&mut self) {
            run(&self.steps, Phase::Log);
        }
    }
}
