//! The local mesh: moto + relay + three pods (app + sidecar each), wired on ephemeral ports.
//!
//! Start order follows the call chain backwards, because a caller's outbound cluster
//! needs the callee sidecar's inbound port and an app needs its own sidecar's outbound
//! port: ratings (app, sidecar), then reviews, then productpage. Clients call the mesh
//! like an ingress would, at productpage's sidecar INBOUND listener
//! ([`Mesh::productpage_url`]), or, with [`MeshOptions::gateway`], at an Istio-shaped
//! `istio-ingressgateway` Envoy in front of productpage. Everything stops on drop
//! (gateway and sidecars first, then relay, then moto); the run directory with every
//! config and log is kept if a test panics.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use hyper::http::{HeaderMap, Method};

use crate::app::{AppServer, Service};
use crate::check::{BOOKINFO_DOCUMENTS, first_unlinked};
use crate::envoy::{RelayTracer, Sidecar, SidecarSpec, Stats, Upstream, WasmFilter, Workload};
use crate::error::{HarnessError, Result};
use crate::http::{DEFAULT_TIMEOUT, HttpClient, HttpResponse};
use crate::moto::Moto;
use crate::paths;
use crate::process::log_tail;
use crate::relay::{Relay, RelayOptions};
use crate::run_dir::RunDir;
use crate::xray::{self, Collected, Expectation, Trace, XrayApi};
use crate::zipkin::ZipkinSink;

/// The plugin config the tests use by default: flush often so traces arrive quickly.
pub const DEFAULT_PLUGIN_CONFIG: &str = r#"{"flush_interval_ms": 200}"#;

/// How to build the mesh.
#[derive(Debug, Clone)]
pub struct MeshOptions {
    /// The filter's plugin config JSON (the WasmPlugin's `pluginConfig`).
    pub plugin_config_json: String,
    /// Turn on Envoy's Zipkin tracer on every listener, reporting to an in-test sink.
    pub zipkin_tracer: bool,
    /// Turn on one of Envoy's own tracers on every listener, reporting to the relay (the
    /// filter-less pipeline: Envoy tracer → relay → X-Ray).
    pub tracer_to_relay: Option<RelayTracer>,
    /// Load the meshray filter (false: untraced sidecars, e.g. for baselines).
    pub with_filter: bool,
    /// Envoy worker threads per sidecar (Istio's sidecar default is 2: two wasm VMs per
    /// sidecar that share the trace links through shared data).
    pub concurrency: u32,
    /// How to run the relay.
    pub relay: RelayOptions,
    /// Relay replicas (each its own process and port, all endpoints of the one relay
    /// cluster of every sidecar), at least 1.
    pub relay_replicas: usize,
    /// Health-check every relay replica's `/readyz` at this interval (see
    /// [`SidecarSpec::relay_health_check`]); `None`: no check.
    pub relay_health_check: Option<Duration>,
    /// Where the sidecars send instead of the relay replicas (e.g. a
    /// [`crate::delay_proxy::DelayProxy`] in front of them); `None`: to the replicas.
    pub relay_endpoints: Option<Vec<std::net::SocketAddr>>,
    /// Names the run directory.
    pub label: String,
    /// HTTP filters before meshray on a pod's inbound listener (RBAC, local rate limit).
    pub inbound_filters: BTreeMap<Service, Vec<serde_json::Value>>,
    /// Services declared with a gRPC port: HTTP/2 on their inbound cluster and on their
    /// callers' outbound clusters, as Istio configures a port of protocol `grpc`.
    pub grpc_services: BTreeSet<Service>,
    /// Put an `istio-ingressgateway` (with the filter) in front of productpage; clients
    /// then call the gateway.
    pub gateway: bool,
}

impl Default for MeshOptions {
    fn default() -> Self {
        Self {
            plugin_config_json: DEFAULT_PLUGIN_CONFIG.to_owned(),
            zipkin_tracer: false,
            tracer_to_relay: None,
            with_filter: true,
            concurrency: 2,
            relay: RelayOptions::default(),
            relay_replicas: 1,
            relay_health_check: None,
            relay_endpoints: None,
            label: "mesh".to_owned(),
            inbound_filters: BTreeMap::new(),
            grpc_services: BTreeSet::new(),
            gateway: false,
        }
    }
}

/// One pod: the app and its sidecar.
#[derive(Debug)]
pub struct Pod {
    /// The sidecar (declared first: stops before the app).
    pub sidecar: Sidecar,
    /// The app.
    pub app: AppServer,
}

/// A running local mesh.
#[derive(Debug)]
pub struct Mesh {
    // Fields drop in declaration order: traffic first, the run directory last.
    /// The ingress gateway in front of productpage, if asked for.
    gateway: Option<Sidecar>,
    /// Productpage, reviews, ratings (in [`Service::ALL`] order).
    pods: Vec<Pod>,
    zipkin: Option<ZipkinSink>,
    /// The relay replicas, at least one.
    relays: Vec<Relay>,
    moto: Moto,
    xray: XrayApi,
    client: HttpClient,
    started_at: SystemTime,
    dir: RunDir,
}

impl Mesh {
    /// Starts moto, the relay, the Zipkin sink (if asked) and the three pods.
    ///
    /// # Errors
    /// [`HarnessError::Missing`] (naming what to build) when Envoy, moto, the relay or the
    /// filter is missing; any start-up failure of a component, with its log tail.
    pub async fn start(options: MeshOptions) -> Result<Self> {
        let filter_module = check_prerequisites(options.with_filter)?;
        let started_at = SystemTime::now();
        let mut dir = RunDir::new(&options.label)?;
        match start_components(&dir, &options, filter_module).await {
            Ok((gateway, pods, zipkin, relays, moto)) => Ok(Self {
                gateway,
                pods,
                zipkin,
                relays,
                xray: moto.api(),
                moto,
                client: HttpClient::new(),
                started_at,
                dir,
            }),
            Err(err) => {
                // The error names log files in the run directory: keep them.
                dir.keep();
                Err(err)
            }
        }
    }

    /// `http://<entry>/productpage`: where a client calls — the gateway when there is one,
    /// else productpage's sidecar inbound listener (as an ingress would).
    pub fn productpage_url(&self) -> String {
        let entry = self
            .gateway
            .as_ref()
            .unwrap_or(&self.pod(Service::Productpage).sidecar);
        format!(
            "http://{}{}",
            entry.inbound_addr(),
            Service::Productpage.request_path()
        )
    }

    /// The ingress gateway, with [`MeshOptions::gateway`].
    pub fn gateway(&self) -> Option<&Sidecar> {
        self.gateway.as_ref()
    }

    /// `GET /productpage[?query]` through the mesh.
    ///
    /// # Errors
    /// [`HarnessError::Http`] when no response arrives.
    pub async fn request_productpage(&self, query: &str) -> Result<HttpResponse> {
        self.request_productpage_with(query, &HeaderMap::new())
            .await
    }

    /// `GET /productpage[?query]` through the mesh with extra request headers (e.g. an
    /// incoming trace context).
    ///
    /// # Errors
    /// [`HarnessError::Http`] when no response arrives.
    pub async fn request_productpage_with(
        &self,
        query: &str,
        headers: &HeaderMap,
    ) -> Result<HttpResponse> {
        let mut url = self.productpage_url();
        if !query.is_empty() {
            url = format!("{url}?{query}");
        }
        self.client
            .send(
                Method::GET,
                &url,
                headers,
                bytes::Bytes::new(),
                DEFAULT_TIMEOUT,
            )
            .await
    }

    /// Sends `n` requests one after another; fails on the first non-200 answer.
    ///
    /// # Errors
    /// [`HarnessError::Http`] or [`HarnessError::Unexpected`] (with status and body).
    pub async fn send_requests(&self, n: usize, query: &str) -> Result<()> {
        for i in 0..n {
            let response = self.request_productpage(query).await?;
            if response.status != 200 {
                return Err(HarnessError::unexpected(
                    format!("status of request {i} to {}", self.productpage_url()),
                    format!("{}: {}", response.status, response.text()),
                ));
            }
        }
        Ok(())
    }

    /// Polls the X-Ray API for traces that started after the mesh did (see
    /// [`xray::wait_for_traces`]); settles 1.5 s after the expectation is met.
    pub async fn wait_for_traces(&self, expect: Expectation, timeout: Duration) -> Collected {
        xray::wait_for_traces(
            &self.xray,
            self.started_at,
            expect,
            timeout,
            Duration::from_millis(1500),
        )
        .await
    }

    /// Waits (up to 60 s) for exactly `n` traces of one Bookinfo request each
    /// ([`BOOKINFO_DOCUMENTS`] documents) since the mesh started, each fully linked.
    ///
    /// # Errors
    /// A failure message: what arrived instead and the mesh's diagnostics, or the first
    /// trace that is not fully linked.
    pub async fn linked_bookinfo_traces(
        &mut self,
        n: usize,
    ) -> std::result::Result<Vec<Trace>, String> {
        let expect = Expectation {
            traces: n,
            documents_per_trace: BOOKINFO_DOCUMENTS,
        };
        let collected = self.wait_for_traces(expect, Duration::from_secs(60)).await;
        if collected.complete && collected.traces.len() == n {
            return match first_unlinked(&collected.traces) {
                Some(unlinked) => Err(unlinked),
                None => Ok(collected.traces),
            };
        }
        Err(format!(
            "expected exactly {n} traces of {BOOKINFO_DOCUMENTS} documents\n{}\n{}",
            collected.describe(),
            self.diagnostics().await
        ))
    }

    /// The pod of `service`.
    pub fn pod(&self, service: Service) -> &Pod {
        let at = Service::ALL.iter().position(|s| *s == service).unwrap_or(0);
        &self.pods[at]
    }

    /// Stops the app of `service` (its sidecar keeps running), so the sidecar's inbound
    /// cluster gets "connection refused" from then on, as when the app container crashed.
    pub async fn stop_app(&mut self, service: Service) {
        if let Some(pod) = self.pods.iter_mut().find(|p| p.app.service() == service) {
            pod.app.stop().await;
        }
    }

    /// Every pod, productpage first.
    pub fn pods(&self) -> &[Pod] {
        &self.pods
    }

    /// The relay (stop, restart, address); the first replica when there are several.
    pub fn relay(&mut self) -> &mut Relay {
        &mut self.relays[0]
    }

    /// Every relay replica ([`MeshOptions::relay_replicas`]), in start order.
    pub fn relays(&mut self) -> &mut [Relay] {
        &mut self.relays
    }

    /// The local X-Ray API server.
    pub fn moto(&self) -> &Moto {
        &self.moto
    }

    /// The X-Ray API (moto) the relay sends to.
    pub fn xray(&self) -> &XrayApi {
        &self.xray
    }

    /// The Zipkin sink, when the tracer is on.
    pub fn zipkin(&self) -> Option<&ZipkinSink> {
        self.zipkin.as_ref()
    }

    /// When the mesh started (traces are looked for from then on).
    pub fn started_at(&self) -> SystemTime {
        self.started_at
    }

    /// The run directory (configs and logs).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Keeps the run directory after drop.
    pub fn keep_run_dir(&mut self) {
        self.dir.keep();
    }

    /// The filter's metrics of every sidecar, by service.
    ///
    /// # Errors
    /// The first failed admin call.
    pub async fn meshray_stats(&self) -> Result<BTreeMap<Service, Stats>> {
        let mut all = BTreeMap::new();
        for pod in &self.pods {
            all.insert(pod.app.service(), pod.sidecar.meshray_stats().await?);
        }
        Ok(all)
    }

    /// Fails with the log tail of the first component that has exited.
    ///
    /// # Errors
    /// [`HarnessError::Exited`].
    pub fn check_running(&mut self) -> Result<()> {
        self.moto.check_running()?;
        for relay in &mut self.relays {
            relay.check_running()?;
        }
        if let Some(gateway) = &mut self.gateway {
            gateway.check_running()?;
        }
        for pod in &mut self.pods {
            pod.sidecar.check_running()?;
        }
        Ok(())
    }

    /// What to print when a test fails: component liveness, the filter's metrics per
    /// sidecar, app request counts, and the tails of the relay and sidecar logs.
    pub async fn diagnostics(&mut self) -> String {
        let mut out = format!("run dir: {}\n", self.dir.path().display());
        if let Err(err) = self.check_running() {
            out.push_str(&format!("NOT RUNNING: {err}\n"));
        }
        for pod in &self.pods {
            let service = pod.app.service();
            let stats = match pod.sidecar.meshray_stats().await {
                Ok(stats) => summarize_stats(&stats),
                Err(err) => format!("unavailable: {err}"),
            };
            out.push_str(&format!(
                "{service}: app requests {}, meshray stats {stats}\n",
                pod.app.stats().requests()
            ));
        }
        if let Some(gateway) = &self.gateway {
            let stats = match gateway.meshray_stats().await {
                Ok(stats) => summarize_stats(&stats),
                Err(err) => format!("unavailable: {err}"),
            };
            out.push_str(&format!("gateway: meshray stats {stats}\n"));
        }
        if let Some(zipkin) = &self.zipkin {
            out.push_str(&format!("zipkin sink: {} spans\n", zipkin.span_count()));
        }
        for relay in &self.relays {
            out.push_str(&format!(
                "--- relay {} log ({}):\n{}\n",
                relay.addr(),
                relay.log_path().display(),
                log_tail(&relay.log_path(), 20)
            ));
        }
        let proxies = self
            .gateway
            .iter()
            .map(|g| (g.workload().service.clone(), g))
            .chain(
                self.pods
                    .iter()
                    .map(|p| (p.app.service().to_string(), &p.sidecar)),
            );
        for (name, proxy) in proxies {
            out.push_str(&format!(
                "--- {name} proxy log, wasm and error lines ({}):\n{}\n",
                proxy.log_path().display(),
                interesting_envoy_lines(proxy.log_path(), 15)
            ));
        }
        out
    }
}

/// What [`start_components`] starts.
type Components = (
    Option<Sidecar>,
    Vec<Pod>,
    Option<ZipkinSink>,
    Vec<Relay>,
    Moto,
);

/// Starts moto, the relay, the Zipkin sink (if asked), the pods, callees first, and the
/// gateway (if asked); returns the pods in [`Service::ALL`] order.
async fn start_components(
    dir: &RunDir,
    options: &MeshOptions,
    filter_module: Option<std::path::PathBuf>,
) -> Result<Components> {
    let moto = Moto::start(&dir.subdir("moto")?).await?;
    let mut relays = Vec::new();
    for replica in 0..options.relay_replicas.max(1) {
        let name = match replica {
            0 => "relay".to_owned(),
            n => format!("relay-{}", n + 1),
        };
        relays.push(
            Relay::start(&dir.subdir(&name)?, &moto.endpoint(), options.relay.clone()).await?,
        );
    }
    let zipkin = if options.zipkin_tracer {
        Some(ZipkinSink::start().await?)
    } else {
        None
    };

    let spec_of = |workload: Workload, app: Option<&AppServer>, callee: Option<&Pod>| {
        let upstreams = callee
            .map(|callee| Upstream {
                service: callee.app.service().name().to_owned(),
                namespace: callee.sidecar.workload().namespace.clone(),
                addr: callee.sidecar.inbound_addr(),
                http2: options.grpc_services.contains(&callee.app.service()),
            })
            .into_iter()
            .collect();
        let service = app.map(AppServer::service);
        SidecarSpec {
            app_addr: app.map(AppServer::addr),
            app_http2: service.is_some_and(|s| options.grpc_services.contains(&s)),
            upstreams,
            relay_addrs: options
                .relay_endpoints
                .clone()
                .unwrap_or_else(|| relays.iter().map(Relay::addr).collect()),
            relay_health_check: options.relay_health_check,
            filter: filter_module.as_ref().map(|module| WasmFilter {
                module: module.clone(),
                plugin_config_json: options.plugin_config_json.clone(),
            }),
            zipkin_collector: zipkin.as_ref().map(ZipkinSink::addr),
            tracer_to_relay: options.tracer_to_relay,
            concurrency: options.concurrency,
            inbound_filters: service
                .and_then(|s| options.inbound_filters.get(&s))
                .cloned()
                .unwrap_or_default(),
            workload,
        }
    };
    let mut pods: Vec<Pod> = Vec::new();
    for service in Service::ALL.into_iter().rev() {
        let app = AppServer::start(service).await?;
        let workload = Workload::new(service.name(), service.version());
        let callee = service
            .callee()
            .and_then(|callee| pods.iter().find(|p| p.app.service() == callee));
        let spec = spec_of(workload, Some(&app), callee);
        let sidecar = Sidecar::start(&dir.subdir(&spec.workload.workload_name())?, &spec).await?;
        app.set_upstream(sidecar.outbound_addr())?;
        pods.push(Pod { sidecar, app });
    }
    pods.reverse();
    let gateway = if options.gateway {
        let spec = spec_of(Workload::ingress_gateway(), None, pods.first());
        Some(Sidecar::start(&dir.subdir(&spec.workload.workload_name())?, &spec).await?)
    } else {
        None
    };
    Ok((gateway, pods, zipkin, relays, moto))
}

/// The filter's own metrics and the relay cluster's outcome counters, non-zero only.
fn summarize_stats(stats: &Stats) -> String {
    let shown: Vec<String> = stats
        .0
        .iter()
        .filter(|(name, value)| {
            **value != 0
                && (name.starts_with("wasmcustom.")
                    || name.ends_with(".upstream_rq_completed")
                    || name.contains(".upstream_rq_5")
                    || name.contains(".upstream_rq_4")
                    || name.ends_with(".upstream_cx_connect_fail"))
        })
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    shown.join(" ")
}

/// The last `n` lines of an Envoy log that come from the wasm filter or report errors.
fn interesting_envoy_lines(path: &std::path::Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("][wasm]") || l.contains("][error]") || l.contains("][critical]"))
        .collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Checks every external artifact at once; returns the filter module when it is used.
fn check_prerequisites(with_filter: bool) -> Result<Option<std::path::PathBuf>> {
    let envoy = paths::envoy().err();
    let moto = paths::moto_server().err();
    let relay = paths::relay_bin().err();
    let (filter, filter_err) = if with_filter {
        match paths::filter_wasm() {
            Ok(path) => (Some(path), None),
            Err(err) => (None, Some(err)),
        }
    } else {
        (None, None)
    };
    let mut missing: Vec<HarnessError> = [envoy, moto, relay, filter_err]
        .into_iter()
        .flatten()
        .collect();
    match missing.len() {
        0 => Ok(filter),
        1 => Err(missing.remove(0)),
        _ => Err(HarnessError::Prerequisites {
            list: missing.iter().map(|e| format!("\n  - {e}")).collect(),
        }),
    }
}
