//! What the API server checks beyond the JSON schema, written as code:
//! - the WasmPlugin CRD's CEL rules (`x-kubernetes-validations`), one function
//!   each, with the CRD's own path and message ([`WASMPLUGIN_CEL`]);
//! - list-map keys (`x-kubernetes-list-map-keys`) of every vendored Istio kind:
//!   no two items of such a list share a key ("Duplicate value");
//! - Kubernetes object names and label syntax, which the Kubernetes schemas
//!   leave to the API server.
//!
//! CEL rules of the other Istio kinds (PeerAuthentication, AuthorizationPolicy,
//! Telemetry, Sidecar, ServiceEntry) are not implemented; `x-kubernetes-rules.json`
//! lists them.

use serde_json::Value;

use crate::go_url;
use crate::schemas::Schemas;
use crate::select::select;

/// One CEL rule: where it applies, the message the API server gives, and the
/// rule itself (true when the value at the path keeps it).
pub struct CelRule {
    /// Path in `x-kubernetes-rules.json` notation.
    pub path: &'static str,
    /// The CRD's message.
    pub message: &'static str,
    /// The rule.
    pub holds: fn(&Value) -> bool,
}

/// Schemes the WasmPlugin `url` rule accepts.
const URL_SCHEMES: [&str; 5] = ["", "http", "https", "oci", "file"];

/// The WasmPlugin CRD's CEL rules (extensions.istio.io/v1alpha1).
pub const WASMPLUGIN_CEL: [CelRule; 8] = [
    CelRule {
        path: ".spec.selector.matchLabels{*}",
        message: "wildcard not allowed in label value match",
        holds: |value| value.as_str().is_none_or(|v| !v.contains('*')),
    },
    CelRule {
        path: ".spec.selector.matchLabels",
        message: "wildcard not allowed in label key match",
        holds: |labels| keys(labels).all(|key| !key.contains('*')),
    },
    CelRule {
        path: ".spec.selector.matchLabels",
        message: "key must not be empty",
        holds: |labels| keys(labels).all(|key| !key.is_empty()),
    },
    CelRule {
        path: ".spec.targetRef.namespace",
        message: "cross namespace referencing is not currently supported",
        holds: |namespace| namespace.as_str().is_none_or(str::is_empty),
    },
    CelRule {
        path: ".spec.targetRefs[*].namespace",
        message: "cross namespace referencing is not currently supported",
        holds: |namespace| namespace.as_str().is_none_or(str::is_empty),
    },
    CelRule {
        path: ".spec.url",
        message: "url must have schema one of [http, https, file, oci]",
        holds: |url| url.as_str().is_none_or(url_has_allowed_scheme),
    },
    CelRule {
        path: ".spec.vmConfig.env[*]",
        message: "value may only be set when valueFrom is INLINE",
        holds: |env| env["valueFrom"].as_str() != Some("HOST") || is_absent(&env["value"]),
    },
    CelRule {
        path: ".spec",
        message: "only one of targetRefs or selector can be set",
        holds: |spec| {
            ["selector", "targetRef", "targetRefs"]
                .iter()
                .filter(|field| !is_absent(&spec[**field]))
                .count()
                <= 1
        },
    },
];

/// The CEL `url` rule: `isURL(u) ? scheme(u) ok : isURL("http://" + u) && scheme ok`.
pub fn url_has_allowed_scheme(url: &str) -> bool {
    let scheme = go_url::request_uri_scheme(url)
        .or_else(|| go_url::request_uri_scheme(&format!("http://{url}")));
    scheme.is_some_and(|scheme| URL_SCHEMES.contains(&scheme.as_str()))
}

/// Rule violations of an Istio document, as (JSON pointer, message).
pub fn check(schemas: &Schemas, document: &Value) -> Vec<(String, String)> {
    let (Some(api_version), Some(kind)) =
        (document["apiVersion"].as_str(), document["kind"].as_str())
    else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    if api_version == "extensions.istio.io/v1alpha1" && kind == "WasmPlugin" {
        for rule in &WASMPLUGIN_CEL {
            for (pointer, value) in select(document, rule.path) {
                if !(rule.holds)(value) {
                    problems.push((pointer, rule.message.to_owned()));
                }
            }
        }
    }
    if let Some(rules) = schemas.istio_rules(api_version, kind) {
        for list_map in rules["x-kubernetes-list-map-keys"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let (Some(path), Some(keys)) = (list_map["path"].as_str(), list_map["keys"].as_array())
            else {
                continue;
            };
            let keys: Vec<&str> = keys.iter().filter_map(Value::as_str).collect();
            for (pointer, list) in select(document, path) {
                problems.extend(duplicates(&pointer, list, &keys));
            }
        }
    }
    problems
}

/// Items of a list-map that repeat an earlier item's key.
fn duplicates(pointer: &str, list: &Value, keys: &[&str]) -> Vec<(String, String)> {
    let mut seen: Vec<Vec<&Value>> = Vec::new();
    let mut problems = Vec::new();
    for (index, item) in list.as_array().into_iter().flatten().enumerate() {
        let key: Vec<&Value> = keys.iter().map(|k| &item[*k]).collect();
        if seen.contains(&key) {
            let shown: Vec<String> = keys
                .iter()
                .zip(&key)
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            problems.push((
                format!("{pointer}/{index}"),
                format!("Duplicate value: {}", shown.join(", ")),
            ));
        } else {
            seen.push(key);
        }
    }
    problems
}

/// Names and labels of Kubernetes objects, as the API server checks them.
pub fn kubernetes_metadata(document: &Value) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let kind = document["kind"].as_str().unwrap_or_default();
    match document["metadata"]["name"].as_str() {
        None => problems.push(("/metadata".to_owned(), "`name` is required".to_owned())),
        // Namespaces and Services are DNS labels (they become DNS names); the rest DNS subdomains.
        Some(name) if matches!(kind, "Namespace" | "Service") && !is_dns_label(name) => problems.push((
            "/metadata/name".to_owned(),
            format!("{name:?} must be a DNS-1123 label (lowercase alphanumerics and '-', at most 63)"),
        )),
        Some(name) if !is_dns_subdomain(name) => problems.push((
            "/metadata/name".to_owned(),
            format!("{name:?} must be a DNS-1123 subdomain (lowercase alphanumerics, '-', '.', at most 253)"),
        )),
        Some(_) => {}
    }
    for path in [
        ".metadata.labels",
        ".spec.template.metadata.labels",
        ".spec.selector.matchLabels",
    ] {
        for (pointer, labels) in select(document, path) {
            for (key, value) in labels.as_object().into_iter().flatten() {
                if !is_qualified_name(key) {
                    problems.push((
                        pointer.clone(),
                        format!("label key {key:?} is not a valid qualified name"),
                    ));
                }
                if !value.as_str().is_some_and(is_label_value) {
                    problems.push((
                        format!("{pointer}/{key}"),
                        format!("label value {value} is not a valid label value"),
                    ));
                }
            }
        }
    }
    problems
}

fn keys(map: &Value) -> impl Iterator<Item = &String> {
    map.as_object().into_iter().flat_map(|m| m.keys())
}

fn is_absent(value: &Value) -> bool {
    value.is_null()
}

fn is_dns_label(text: &str) -> bool {
    (1..=63).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

fn is_dns_subdomain(text: &str) -> bool {
    text.len() <= 253 && text.split('.').all(is_dns_label)
}

/// `[prefix/]name`: prefix a DNS subdomain, name ≤ 63 of alphanumerics and `-_.`
/// starting and ending alphanumeric.
fn is_qualified_name(text: &str) -> bool {
    let (prefix, name) = text
        .rsplit_once('/')
        .map_or((None, text), |(p, n)| (Some(p), n));
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && is_label_value(name)
}

/// Empty, or ≤ 63 of alphanumerics and `-_.`, starting and ending alphanumeric.
fn is_label_value(text: &str) -> bool {
    text.is_empty()
        || (text.len() <= 63
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && text
                .as_bytes()
                .first()
                .is_some_and(u8::is_ascii_alphanumeric)
            && text
                .as_bytes()
                .last()
                .is_some_and(u8::is_ascii_alphanumeric))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn url_rule_matches_the_crd_examples() {
        for ok in [
            "oci://ghcr.io/meshray/filter:1",
            "https://x/y.wasm",
            "file:///a.wasm",
            "/a.wasm",
            "test",
        ] {
            assert!(url_has_allowed_scheme(ok), "{ok}");
        }
        for bad in ["fake://example.com", "#%blah$#@", "localhost:5000/img"] {
            assert!(!url_has_allowed_scheme(bad), "{bad}");
        }
    }

    #[test]
    fn names_and_labels_follow_kubernetes_syntax() {
        assert!(is_dns_label("meshray-relay") && !is_dns_label("Meshray") && !is_dns_label("a.b"));
        assert!(is_dns_subdomain("meshray.relay") && !is_dns_subdomain("a_b"));
        assert!(is_qualified_name("app.kubernetes.io/name") && is_qualified_name("app"));
        assert!(
            !is_qualified_name("a/b/c") && !is_qualified_name("-x") && !is_qualified_name("Bad_/x")
        );
        assert!(
            is_label_value("")
                && is_label_value("v1.2_x")
                && !is_label_value("x-")
                && !is_label_value("a b")
        );
    }

    #[test]
    fn bad_metadata_is_reported() {
        let problems = kubernetes_metadata(&json!({
            "kind": "Service",
            "metadata": {"name": "relay.v1", "labels": {"ok": "yes", "bad key!": "x", "v": "-x"}}
        }));
        let text: String = problems
            .iter()
            .map(|(p, m)| format!("{p}: {m}\n"))
            .collect();
        assert_eq!(problems.len(), 3, "{text}");
        assert!(
            text.contains("DNS-1123 label") && text.contains("bad key!") && text.contains("\"-x\""),
            "{text}"
        );
    }

    #[test]
    fn duplicate_list_map_keys_are_reported_once_per_repeat() {
        let list = json!([{"name": "a"}, {"name": "b"}, {"name": "a"}, {"name": "a"}]);
        let problems = duplicates("/spec/vmConfig/env", &list, &["name"]);
        assert_eq!(
            problems.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
            ["/spec/vmConfig/env/2", "/spec/vmConfig/env/3"]
        );
        assert!(problems[0].1.contains("Duplicate value: name=\"a\""));
    }
}
