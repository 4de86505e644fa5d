//! Who this sidecar belongs to, read once from Istio's node metadata in `on_configure`.

use crate::config::FilterConfig;
use crate::host::{Host, property_string};
use crate::links::LinkKey;
use crate::tracer::SegmentJson;

/// Istio's canonical service label.
pub const LABEL_CANONICAL_NAME: &str = "service.istio.io/canonical-name";
/// Istio's canonical revision label.
pub const LABEL_CANONICAL_REVISION: &str = "service.istio.io/canonical-revision";

/// The workload the sidecar runs beside.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workload {
    /// The segment name: `service_name`, else the canonical-name label, else
    /// `app`, else `WORKLOAD_NAME`, else `unknown` — rendered with
    /// `service_name_format` and the namespace.
    pub service: String,
    /// Canonical service (label), for the `istio_canonical_service` annotation.
    pub canonical_service: Option<String>,
    /// Canonical revision (label), for `istio_canonical_revision`.
    pub canonical_revision: Option<String>,
    /// Kubernetes namespace.
    pub namespace: Option<String>,
    /// Workload (Deployment) name.
    pub workload_name: Option<String>,
    /// Pod name.
    pub pod: Option<String>,
    /// Service account.
    pub service_account: Option<String>,
    /// EKS cluster name, from configuration.
    pub cluster_name: Option<String>,
    /// An Istio gateway (node id `router~…`): it has no app behind it, so every
    /// request is the root of its own segment, with the call inside.
    pub is_gateway: bool,
    /// The key of this pod's self-identifying segment ids (from the node id).
    pub link_key: LinkKey,
    /// The members of this workload's segments that no request changes, as
    /// JSON, written once here (built from the fields above by [`Workload::read`]).
    pub(crate) segment_json: SegmentJson,
}

impl Workload {
    /// Reads node metadata (`xds.node.metadata.*`, falling back to `node.metadata.*`).
    pub fn read(host: &impl Host, config: &FilterConfig) -> Self {
        let meta = |key: &str| {
            property_string(
                host,
                &[
                    &["xds", "node", "metadata", key],
                    &["node", "metadata", key],
                ],
            )
        };
        let label = |key: &str| {
            property_string(
                host,
                &[
                    &["xds", "node", "metadata", "LABELS", key],
                    &["node", "metadata", "LABELS", key],
                ],
            )
        };
        let canonical_service = label(LABEL_CANONICAL_NAME);
        let app = label("app");
        let workload_name = meta("WORKLOAD_NAME");
        let namespace = meta("NAMESPACE");
        let service = config
            .service_name
            .clone()
            .or_else(|| canonical_service.clone())
            .or(app)
            .or_else(|| workload_name.clone())
            .unwrap_or_else(|| meshray_core::limits::FALLBACK_NAME.to_owned());
        let node_id = property_string(host, &[&["xds", "node", "id"], &["node", "id"]]);
        let link_key = node_id
            .as_deref()
            .or(workload_name.as_deref())
            .map(LinkKey::from_node_id)
            .unwrap_or_default();
        let mut workload = Self {
            service: config
                .service_name_format
                .render(&service, namespace.as_deref()),
            canonical_service,
            canonical_revision: label(LABEL_CANONICAL_REVISION),
            pod: meta("NAME").or_else(|| node_id.as_deref().and_then(pod_from_node_id)),
            namespace,
            workload_name,
            service_account: meta("SERVICE_ACCOUNT"),
            cluster_name: config.cluster_name.clone(),
            is_gateway: node_id
                .as_deref()
                .is_some_and(|id| id.starts_with("router~")),
            link_key,
            segment_json: SegmentJson::default(),
        };
        workload.segment_json = SegmentJson::of(&workload);
        workload
    }
}

/// The pod name from an Istio node id `sidecar~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local`.
fn pod_from_node_id(id: &str) -> Option<String> {
    let pod_and_namespace = id.split('~').nth(2)?;
    let pod = pod_and_namespace.split('.').next()?;
    (!pod.is_empty()).then(|| pod.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::FakeHost;

    #[test]
    fn service_name_prefers_config_then_canonical_then_app_then_workload() {
        let base = FakeHost::at(0)
            .with_property("xds.node.metadata.WORKLOAD_NAME", "reviews-v1")
            .with_property("xds.node.metadata.NAMESPACE", "default")
            .with_property(
                "xds.node.id",
                "sidecar~10.0.0.1~reviews-v1-abc.default~default.svc.cluster.local",
            );
        let config = FilterConfig::default();
        assert_eq!(Workload::read(&base, &config).service, "reviews-v1");
        let with_app = base
            .clone()
            .with_property("xds.node.metadata.LABELS.app", "reviews");
        assert_eq!(Workload::read(&with_app, &config).service, "reviews");
        let with_canonical = with_app.with_property(
            "xds.node.metadata.LABELS.service.istio.io/canonical-name",
            "reviews-canonical",
        );
        let workload = Workload::read(&with_canonical, &config);
        assert_eq!(workload.service, "reviews-canonical");
        assert_eq!(workload.pod.as_deref(), Some("reviews-v1-abc"));
        assert_eq!(workload.namespace.as_deref(), Some("default"));
        let configured = FilterConfig {
            service_name: Some("shop".into()),
            ..FilterConfig::default()
        };
        assert_eq!(Workload::read(&with_canonical, &configured).service, "shop");
    }

    /// `service_name_format` applies to the segment name; a gateway is known by its node id.
    #[test]
    fn name_format_and_gateways() {
        let host = FakeHost::at(0)
            .with_property("xds.node.metadata.LABELS.app", "istio-ingressgateway")
            .with_property("xds.node.metadata.NAMESPACE", "istio-system")
            .with_property(
                "xds.node.id",
                "router~10.0.0.9~istio-ingressgateway-5d9.istio-system~istio-system.svc.cluster.local",
            );
        let config =
            FilterConfig::parse(br#"{"service_name_format":"{service}.{namespace}"}"#).unwrap();
        let workload = Workload::read(&host, &config);
        assert_eq!(workload.service, "istio-ingressgateway.istio-system");
        assert!(workload.is_gateway);
        assert_eq!(workload.pod.as_deref(), Some("istio-ingressgateway-5d9"));
        let sidecar = FakeHost::at(0)
            .with_property("xds.node.id", "sidecar~10.0.0.1~a.b~b.svc.cluster.local");
        assert!(!Workload::read(&sidecar, &config).is_gateway);
    }

    #[test]
    fn older_proxies_answer_bare_names() {
        let host = FakeHost::at(0).with_property("node.metadata.WORKLOAD_NAME", "ratings-v1");
        assert_eq!(
            Workload::read(&host, &FilterConfig::default()).service,
            "ratings-v1"
        );
        assert_eq!(
            Workload::read(&FakeHost::at(0), &FilterConfig::default()).service,
            "unknown"
        );
    }
}
