//! One worker VM's state and the root context's work: the configure step, the
//! timer, the relay's answers, and handing each request to [`crate::tracer`].
//!
//! The proxy-wasm contexts (`adapter/`, wasm32 only) call these methods and do
//! nothing else, so everything here is tested natively with [`crate::host::FakeHost`].
//! Envoy runs one VM per worker thread (and one on the main thread): each has
//! its own [`Worker`], buffer and timer; they share only the host's shared data.

use std::cell::RefCell;
use std::time::Duration;

use crate::config::{ConfigErrors, FilterConfig};
use crate::host::Host;
use crate::metrics::Metrics;
use crate::shipper::{RelayReply, Shipper};
use crate::tracer::{self, ActiveSpan, Random};
use crate::workload::Workload;

/// How often the root checks whether a batch is full (or the flush interval, if
/// shorter). The configured flush interval bounds how long a document waits; this
/// bounds how late a full batch leaves.
pub const TICK: Duration = Duration::from_millis(100);

/// What every request context of one VM shares with its root context.
#[derive(Debug)]
pub struct Worker<R = fastrand::Rng> {
    /// Validated configuration.
    pub config: FilterConfig,
    /// Workload identity.
    pub workload: Workload,
    /// Counter ids.
    pub metrics: Metrics,
    /// Buffer and posts in flight (borrowed for one callback at a time).
    shipper: RefCell<Shipper>,
    /// Ids and sampling.
    random: RefCell<R>,
}

impl Worker {
    /// `on_configure`: reads the `pluginConfig` (`size` bytes), validates it, reads
    /// the workload's identity and defines the counters, then starts the timer.
    ///
    /// # Errors
    /// [`ConfigErrors`] listing every problem (also logged); the plugin must not start.
    pub fn configure(host: &impl Host, size: usize) -> Result<Self, ConfigErrors> {
        let bytes = if size == 0 {
            Vec::new()
        } else {
            host.plugin_configuration(size)
                .ok()
                .flatten()
                .unwrap_or_default()
        };
        let config = FilterConfig::parse(&bytes).inspect_err(|errors| {
            log::error!("meshray: {errors}");
        })?;
        let worker = Self::new(host, config, seeded_random(host));
        log::info!(
            "meshray: configured for service {:?} (namespace {:?}), relay cluster {:?}, sampling {}",
            worker.workload.service,
            worker.workload.namespace,
            worker.config.relay_cluster,
            worker.config.sampling_rate
        );
        if let Err(e) = host.set_tick_period(TICK.min(worker.config.flush_interval)) {
            log::error!("meshray: cannot start the flush timer: {e}");
        }
        Ok(worker)
    }
}

/// This VM's id generator, seeded from the host's entropy: WASI `random_get`, which
/// Envoy answers from its CSPRNG.
///
/// `fastrand::Rng::new()` is not enough here: inside a wasm VM its seed is only a hash of
/// the monotonic clock and the thread id (the same in every VM), and once two worker VMs
/// of one Envoy drew the same sequence: their first requests got the same trace and
/// segment ids and merged into one trace. Should the host refuse entropy, the clock is
/// mixed into that seed.
fn seeded_random(host: &impl Host) -> fastrand::Rng {
    let mut seed = [0_u8; 8];
    match getrandom::fill(&mut seed) {
        Ok(()) => fastrand::Rng::with_seed(u64::from_le_bytes(seed)),
        Err(e) => {
            log::warn!("meshray: the host gave no entropy ({e}); ids are seeded from the clock");
            let clock = host.now_nanos().unwrap_or_default();
            fastrand::Rng::with_seed(fastrand::Rng::new().u64(..) ^ clock)
        }
    }
}

impl<R: Random> Worker<R> {
    /// A worker for a validated configuration: reads the workload and defines the counters.
    pub fn new(host: &impl Host, config: FilterConfig, random: R) -> Self {
        Self {
            workload: Workload::read(host, &config),
            metrics: Metrics::define(host),
            config,
            shipper: RefCell::new(Shipper::default()),
            random: RefCell::new(random),
        }
    }

    /// A request's headers: see [`tracer::on_request_headers`].
    pub fn on_request_headers(&self, host: &impl Host) -> Option<ActiveSpan> {
        let mut random = self.random.borrow_mut();
        tracer::on_request_headers(
            host,
            &self.config,
            &self.workload,
            &self.metrics,
            &mut *random,
        )
    }

    /// The log phase of a request whose headers the filter never saw (answered
    /// before it: RBAC denial, local rate limit): see [`tracer::on_log_unseen`].
    /// Returns whether a document was buffered.
    pub fn on_log_unseen(&self, host: &impl Host) -> bool {
        let mut random = self.random.borrow_mut();
        let document = tracer::on_log_unseen(
            host,
            &self.config,
            &self.workload,
            &self.metrics,
            &mut *random,
        );
        match document {
            Some(document) => {
                self.shipper.borrow_mut().push(&self.config, document);
                true
            }
            None => false,
        }
    }

    /// A traced request's log phase: builds its document and buffers it.
    /// Returns whether a document was buffered (or counted as dropped for a full buffer).
    pub fn on_log(&self, host: &impl Host, span: ActiveSpan) -> bool {
        match tracer::on_log(host, span, &self.workload, &self.metrics) {
            Some(document) => {
                self.shipper.borrow_mut().push(&self.config, document);
                true
            }
            None => false,
        }
    }

    /// The timer: reports counts and sends what is due.
    pub fn on_tick(&self, host: &impl Host) {
        self.shipper
            .borrow_mut()
            .on_tick(host, &self.config, &self.metrics);
    }

    /// The answer to post `token` (`body_size` bytes of body), in `on_http_call_response`.
    pub fn on_relay_response(&self, host: &impl Host, token: u32, body_size: usize) {
        let body = if body_size == 0 {
            None
        } else {
            host.http_call_response_body(body_size).ok().flatten()
        };
        let reply = RelayReply::read(host, body.as_deref());
        self.shipper
            .borrow_mut()
            .on_response(host, &self.config, &self.metrics, token, reply);
    }

    /// Documents waiting in this worker's buffer.
    pub fn queued(&self) -> usize {
        self.shipper.borrow().queued()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::FakeHost;

    const NOW: u64 = 1_764_000_000;

    /// A worker of a pod named `reviews`, set up as `on_configure` does.
    fn configured(json: &str) -> (FakeHost, Result<Worker, ConfigErrors>) {
        let host = FakeHost::at(NOW)
            .with_property("xds.node.metadata.WORKLOAD_NAME", "reviews-v1")
            .with_property("xds.node.metadata.NAMESPACE", "default")
            .with_plugin_configuration(json);
        let worker = Worker::configure(&host, json.len());
        (host, worker)
    }

    /// A valid config starts the timer at the tick, or the flush interval when shorter.
    #[test]
    fn configure_reads_config_and_workload_and_starts_the_timer() {
        let (host, worker) = configured(r#"{"flush_interval_ms": 40, "cluster_name": "prod"}"#);
        let worker = worker.unwrap();
        assert_eq!(worker.config.flush_interval, Duration::from_millis(40));
        assert_eq!(worker.workload.service, "reviews-v1");
        assert_eq!(worker.workload.cluster_name.as_deref(), Some("prod"));
        assert_eq!(*host.tick_period.borrow(), Some(Duration::from_millis(40)));

        let (host, worker) = configured("");
        assert_eq!(worker.unwrap().config, FilterConfig::default());
        assert_eq!(*host.tick_period.borrow(), Some(TICK));
    }

    /// A bad config is refused with every problem, and nothing starts.
    #[test]
    fn configure_refuses_a_bad_config_with_every_problem() {
        let (host, worker) = configured(r#"{"max_batch": 0, "sampling": 1}"#);
        let errors = worker.unwrap_err();
        let keys: Vec<&str> = errors.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys.len(), 2, "{errors}");
        assert!(
            keys.contains(&"max_batch") && keys.contains(&"sampling"),
            "{errors}"
        );
        assert_eq!(*host.tick_period.borrow(), None);
        assert!(
            host.counter_names.borrow().is_empty(),
            "no counters defined"
        );
    }

    /// Headers and body of a relay answer, and the counter it must move.
    type Answer = (
        &'static [(&'static str, &'static [u8])],
        Option<&'static [u8]>,
        &'static str,
    );

    /// The relay's answer is decoded from the call's headers and body.
    #[test]
    fn relay_answers_are_decoded_from_the_host() {
        let cases: [Answer; 4] = [
            (
                &[(":status", b"200")],
                Some(br#"{"accepted":1,"rejected":[]}"#),
                "meshray_segments_sent_total",
            ),
            (
                &[(":status", b"503"), ("retry-after", b"1")],
                None,
                "meshray_segments_dropped_relay_busy_total",
            ),
            (
                &[(":status", b"503")],
                Some(b"no healthy upstream"),
                "meshray_segments_dropped_relay_unavailable_total",
            ),
            (
                &[(":status", &[0xff])],
                None,
                "meshray_segments_dropped_relay_unavailable_total",
            ),
        ];
        // One document per post and per buffer: a post to retry cannot come back
        // (the buffer refilled meanwhile), so its document is dropped under the
        // reason the answer gives.
        let config = FilterConfig {
            max_batch: 1,
            max_buffered: 1,
            ..FilterConfig::default()
        };
        for (headers, body, counter) in cases {
            let host = FakeHost::at(NOW).with_call_response(headers, body);
            let worker = Worker::new(&host, config.clone(), fastrand::Rng::with_seed(1));
            let push = || {
                worker
                    .shipper
                    .borrow_mut()
                    .push(&worker.config, b"{}".to_vec())
            };
            push();
            worker.on_tick(&host);
            assert_eq!(host.dispatched.borrow().len(), 1);
            push();
            worker.on_relay_response(&host, 1, body.map_or(0, <[u8]>::len));
            assert_eq!(host.counter(counter), 1, "{headers:?}");
        }
    }
}
