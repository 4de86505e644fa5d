//! Every manifest a user applies (`istio/`, `deploy/`) is valid for the API
//! server without a cluster: each kustomization renders with `kubectl
//! kustomize`, each document passes its strict schema (Istio 1.30.3, Kubernetes
//! 1.33 and 1.37) and the rules beyond it; and the negative cases prove each of
//! these checks rejects what a cluster would.
//!
//! Needs kubectl and the debug relay binary (`make test` provides both).

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::process::Command;
use std::time::Duration;

use meshray_deploy_check::rules::WASMPLUGIN_CEL;
use meshray_deploy_check::{check_document, check_stream, kustomize, repo_root, yaml};
use meshray_filter::config::{
    DEFAULT_RELAY_AUTHORITY, DEFAULT_RELAY_CLUSTER, DEFAULT_RELAY_PATH, FilterConfig,
};
use serde_json::{Value, json};
use support::{find, rendered, schemas, shipped_kustomizations, shown};

/// Every kustomization under istio/ and deploy/ renders, and every document it renders is valid.
#[test]
fn every_shipped_kustomization_renders_and_validates() {
    let schemas = schemas();
    let dirs = shipped_kustomizations();
    let names: BTreeSet<String> = dirs.iter().map(|d| shown(d)).collect();
    for expected in [
        "deploy/base",
        "deploy/overlays/single",
        "deploy/overlays/ha",
        "istio/relay",
        "istio/wasmplugin/base",
        "istio/wasmplugin/workload",
        "istio/wasmplugin/namespace",
        "istio/wasmplugin/mesh",
        "istio/wasmplugin/waypoint",
    ] {
        assert!(
            names.contains(expected),
            "{expected} not found among {names:?}"
        );
    }
    let mut problems = Vec::new();
    let mut documents = 0;
    for dir in &dirs {
        let text = kustomize::render(dir).unwrap_or_else(|e| panic!("{e}"));
        documents += yaml::parse_stream(&text).map(|d| d.len()).unwrap_or(0);
        problems.extend(check_stream(&schemas, &shown(dir), &text));
    }
    assert!(problems.is_empty(), "{}", lines(&problems));
    eprintln!("{} kustomizations, {documents} documents valid", dirs.len());
}

/// The standalone Istio examples (Telemetry, Sidecar) are valid.
#[test]
fn plain_istio_examples_validate() {
    let schemas = schemas();
    let mut problems = Vec::new();
    let mut files = 0;
    for dir in ["istio/telemetry", "istio/sidecar"] {
        for entry in fs::read_dir(repo_root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let text = fs::read_to_string(&path).unwrap();
            // Helm values for istiod are not a Kubernetes object (checked below).
            if path.extension().is_some_and(|e| e == "yaml") && !is_helm_values(&text) {
                files += 1;
                problems.extend(check_stream(&schemas, &shown(&path), &text));
            }
        }
    }
    assert!(files >= 5, "only {files} example files found");
    assert!(problems.is_empty(), "{}", lines(&problems));
}

/// The istiod tracing providers reach the relay's Zipkin and OTLP endpoints, and the Telemetry examples use them.
#[test]
fn istiod_providers_point_at_the_relay_endpoints() {
    let path = repo_root().join("istio/telemetry/istiod-values-relay-providers.yaml");
    let values = &yaml::parse_stream(&fs::read_to_string(path).unwrap()).unwrap()[0];
    let providers = values["meshConfig"]["extensionProviders"]
        .as_array()
        .unwrap();
    let zipkin = providers
        .iter()
        .find(|p| p["name"] == "meshray-zipkin")
        .unwrap();
    let otel = providers
        .iter()
        .find(|p| p["name"] == "meshray-otel")
        .unwrap();
    for provider in [&zipkin["zipkin"], &otel["opentelemetry"]] {
        assert_eq!(
            provider["service"],
            "meshray-relay.meshray.svc.cluster.local"
        );
        assert_eq!(provider["port"], 8080);
    }
    assert_eq!(zipkin["zipkin"]["path"], "/api/v2/spans");
    assert_eq!(otel["opentelemetry"]["http"]["path"], "/v1/traces");
    // Every Telemetry example names a provider that exists (here or Istio's usual `zipkin`).
    for (file, provider) in [
        ("zipkin-to-relay.yaml", "meshray-zipkin"),
        ("opentelemetry-to-relay.yaml", "meshray-otel"),
    ] {
        let text = fs::read_to_string(repo_root().join("istio/telemetry").join(file)).unwrap();
        let telemetry = &yaml::parse_stream(&text).unwrap()[0];
        assert_eq!(
            telemetry["spec"]["tracing"][0]["providers"][0]["name"], provider,
            "{file}"
        );
    }
}

/// The rendered relay matches the filter's default relay address, the relay's settings, shutdown timing, hardening and mesh policy.
#[test]
fn relay_manifests_agree_with_the_relay_and_the_filter() {
    let docs = rendered("deploy/overlays/single");
    let service = find(&docs, "Service", "meshray-relay");
    let namespace = service["metadata"]["namespace"].as_str().unwrap();
    let http = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "http")
        .unwrap();
    // The filter's defaults reach this Service with no pluginConfig at all.
    let host = format!("meshray-relay.{namespace}.svc.cluster.local");
    assert_eq!(
        DEFAULT_RELAY_CLUSTER,
        format!("outbound|{}||{host}", http["port"])
    );
    assert_eq!(DEFAULT_RELAY_AUTHORITY, format!("{host}:{}", http["port"]));
    assert_eq!(DEFAULT_RELAY_PATH, "/v1/segments");

    let deployment = find(&docs, "Deployment", "meshray-relay");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let config_map = find(&docs, "ConfigMap", "meshray-relay");
    // envFrom names the generated (hash-suffixed) ConfigMap.
    assert_eq!(
        container["envFrom"][0]["configMapRef"]["name"],
        config_map["metadata"]["name"]
    );
    let env = config_map["data"].as_object().unwrap();
    assert_eq!(env["MESHRAY_EPOCH_CACHE"], "memory");
    assert_eq!(deployment["spec"]["replicas"], 1);

    // Every MESHRAY_* setting is one the relay knows (its --help lists each flag's variable).
    let help = relay_help();
    for key in env.keys().filter(|k| k.starts_with("MESHRAY_")) {
        assert!(
            help.contains(&format!("[env: {key}=")),
            "the relay has no setting {key}:\n{help}"
        );
    }

    // SIGTERM: shutdown delay + drain deadline, within the grace period. Each is the
    // ConfigMap's value, else the relay's default (DESIGN: shutdown delay 5 s).
    let seconds = |key: &str, flag: &str, fallback: u64| {
        env.get(key)
            .and_then(Value::as_str)
            .map(|v| v.trim_end_matches('s').parse::<u64>().unwrap())
            .or_else(|| help_default_seconds(&help, flag))
            .unwrap_or(fallback)
    };
    let drain = Duration::from_secs(seconds("MESHRAY_DRAIN_DEADLINE", "--drain-deadline", 20));
    let shutdown_delay =
        Duration::from_secs(seconds("MESHRAY_SHUTDOWN_DELAY", "--shutdown-delay", 5));
    let grace = Duration::from_secs(pod["terminationGracePeriodSeconds"].as_u64().unwrap());
    assert!(grace > shutdown_delay + drain, "grace {grace:?} too short");

    // Probes, hardening, identity.
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert!(pod["securityContext"]["runAsUser"].as_u64().unwrap() > 0);
    let account = find(&docs, "ServiceAccount", "meshray-relay");
    assert_eq!(pod["serviceAccountName"], account["metadata"]["name"]);
    assert!(
        account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:iam::")
    );
    assert_eq!(
        find(&docs, "Namespace", namespace)["metadata"]["labels"]["istio-injection"],
        "enabled"
    );

    // mTLS and authorization select the relay's pods.
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for kind in [
        "PeerAuthentication",
        "AuthorizationPolicy",
        "PodDisruptionBudget",
    ] {
        let selector = match kind {
            "PodDisruptionBudget" => {
                &find(&docs, kind, "meshray-relay")["spec"]["selector"]["matchLabels"]
            }
            _ => &find(&docs, kind, "meshray-relay")["spec"]["selector"]["matchLabels"],
        };
        for (key, value) in selector.as_object().unwrap() {
            assert_eq!(&pod_labels[key], value, "{kind} selects {key}={value}");
        }
    }
    assert_eq!(
        find(&docs, "PeerAuthentication", "meshray-relay")["spec"]["mtls"]["mode"],
        "STRICT"
    );
    let allowed: Vec<&Value> = find(&docs, "AuthorizationPolicy", "meshray-relay")["spec"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|rule| rule["to"][0]["operation"]["paths"].as_array().unwrap())
        .collect();
    for path in ["/v1/segments", "/api/v2/spans", "/v1/traces", "/metrics"] {
        assert!(
            allowed.iter().any(|p| *p == path),
            "{path} not allowed by the AuthorizationPolicy"
        );
    }
}

/// The `ha` overlay: several replicas scaled on CPU, the Redis URL and password from the
/// Secret (over the ConfigMap's `memory`), Redis reachable, and only settings the relay
/// knows.
#[test]
fn ha_overlay_shares_one_redis_epoch_cache() {
    let docs = rendered("deploy/overlays/ha");
    let hpa = find(&docs, "HorizontalPodAutoscaler", "meshray-relay");
    assert_eq!(hpa["metadata"]["namespace"], "meshray");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "meshray-relay");
    assert!(hpa["spec"]["minReplicas"].as_u64().unwrap() >= 2);
    assert_eq!(hpa["spec"]["metrics"][0]["resource"]["name"], "cpu");
    let deployment = find(&docs, "Deployment", "meshray-relay");
    assert!(deployment["spec"]["replicas"].as_u64().unwrap() >= 2);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let env = container["env"].as_array().unwrap();
    let from_secret = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no env {name}"))["valueFrom"]["secretKeyRef"]
            .clone()
    };
    assert_eq!(
        from_secret("MESHRAY_EPOCH_CACHE")["name"],
        "meshray-relay-redis"
    );
    assert_eq!(from_secret("MESHRAY_EPOCH_CACHE")["key"], "url");
    assert_eq!(from_secret("MESHRAY_REDIS_PASSWORD")["optional"], true);
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    let excluded = annotations["traffic.sidecar.istio.io/excludeOutboundPorts"]
        .as_str()
        .unwrap();
    assert!(excluded.split(',').any(|p| p == "6379"), "{excluded}");
    let policy = find(&docs, "NetworkPolicy", "meshray-relay");
    let egress = policy["spec"]["egress"].as_array().unwrap();
    assert!(
        egress.iter().any(|rule| rule["ports"][0]["port"] == 6379),
        "no egress to Redis"
    );
    // Every MESHRAY_* variable, from the ConfigMap or the Secret, is a relay setting
    // (a hidden value shows as `[env: NAME]` in --help).
    let help = relay_help();
    let config_map = find(&docs, "ConfigMap", "meshray-relay");
    let names = config_map["data"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .chain(env.iter().filter_map(|e| e["name"].as_str()));
    for key in names.filter(|k| k.starts_with("MESHRAY_")) {
        assert!(
            help.contains(&format!("[env: {key}")),
            "the relay has no setting {key}"
        );
    }
}

/// Each WasmPlugin recipe applies where it says, and its pluginConfig parses with the filter's own parser to the documented defaults.
#[test]
fn every_recipe_carries_a_plugin_config_the_filter_accepts() {
    for (recipe, namespace, selected) in [
        (
            "base",
            "istio-system",
            Some(json!({"meshray.io/trace": "enabled"})),
        ),
        ("workload", "bookinfo", Some(json!({"app": "productpage"}))),
        ("namespace", "bookinfo", None),
        ("mesh", "istio-system", None),
        ("waypoint", "bookinfo", None),
    ] {
        let docs = rendered(&format!("istio/wasmplugin/{recipe}"));
        let plugin = find(&docs, "WasmPlugin", "meshray");
        let spec = &plugin["spec"];
        assert_eq!(plugin["metadata"]["namespace"], namespace, "{recipe}");
        assert_eq!(
            spec["selector"].get("matchLabels").cloned(),
            selected,
            "{recipe}"
        );
        assert_eq!(
            spec["targetRefs"].is_array(),
            recipe == "waypoint",
            "{recipe}"
        );
        assert_eq!(spec["failStrategy"], "FAIL_OPEN", "{recipe}");
        assert_eq!(spec["phase"], "STATS", "{recipe}");
        assert!(
            spec["url"].as_str().unwrap().starts_with("oci://"),
            "{recipe}"
        );
        let config = serde_json::to_vec(&spec["pluginConfig"]).unwrap();
        let parsed = FilterConfig::parse(&config).unwrap_or_else(|e| panic!("{recipe}: {e}"));
        // The documented defaults, plus the cluster name.
        let expected = FilterConfig {
            cluster_name: parsed.cluster_name.clone(),
            ..FilterConfig::default()
        };
        assert_eq!(
            parsed, expected,
            "{recipe}: pluginConfig differs from the filter's defaults"
        );
    }
}

/// Each broken manifest in testdata/negative is rejected with the reason on its `# expect:` line.
#[test]
fn negative_manifests_are_rejected_with_the_expected_reason() {
    let schemas = schemas();
    let dir = repo_root().join("deploy/check/testdata/negative");
    let mut cases = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = fs::read_to_string(&path).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} lacks a first line `# expect: <message>`", shown(&path)));
        let problems = check_stream(&schemas, &shown(&path), &text);
        assert!(
            problems.iter().any(|p| p.message.contains(expect)),
            "{}: expected a problem containing {expect:?}, got:\n{}",
            shown(&path),
            lines(&problems)
        );
        cases += 1;
    }
    assert!(cases >= 15, "only {cases} negative cases");
}

/// A typo patched into the real overlay renders (kustomize does not know schemas) and is then rejected.
#[test]
fn a_typo_patched_into_the_real_overlay_is_caught() {
    let dir = repo_root().join("deploy/check/testdata/overlay-typo");
    let text = kustomize::render(&dir).unwrap_or_else(|e| panic!("{e}"));
    let problems = check_stream(&schemas(), "overlay-typo", &text);
    assert!(!problems.is_empty(), "the typo went through");
    assert!(
        problems
            .iter()
            .all(|p| p.message.contains("'pth' was unexpected")),
        "{}",
        lines(&problems)
    );
    // Reported once per Kubernetes version checked.
    assert_eq!(problems.len(), schemas().kubernetes_versions().len());
}

/// Istio's own WasmPlugin test documents: the valid ones pass, each invalid one fails, by the rule Istio names where it is a CEL or list-map rule.
#[test]
fn istio_own_wasmplugin_examples_are_judged_as_istio_judges_them() {
    let schemas = schemas();
    let dir = repo_root().join("deploy/schemas/istio/testdata");
    let valid =
        yaml::parse_stream(&fs::read_to_string(dir.join("wasm-valid.yaml")).unwrap()).unwrap();
    for document in &valid {
        let problems = check_document(&schemas, "wasm-valid.yaml", document);
        assert!(problems.is_empty(), "{}", lines(&problems));
    }
    let invalid =
        yaml::parse_stream(&fs::read_to_string(dir.join("wasm-invalid.yaml")).unwrap()).unwrap();
    assert_eq!((valid.len(), invalid.len()), (4, 15));
    for mut document in invalid {
        let expected = document.as_object_mut().unwrap().remove("_err").unwrap();
        let expected = expected.as_str().unwrap();
        let problems = check_document(&schemas, "wasm-invalid.yaml", &document);
        let name = &document["metadata"]["name"];
        assert!(
            !problems.is_empty(),
            "{name} accepted; Istio expects {expected:?}"
        );
        // Where Istio's expected error is one of the rules beyond the schema, it is that rule that fires.
        let rule_messages = WASMPLUGIN_CEL
            .iter()
            .map(|r| r.message)
            .chain(["Duplicate value"]);
        for message in rule_messages.filter(|m| m.starts_with(expected) || expected.starts_with(m))
        {
            assert!(
                problems.iter().any(|p| p.message.starts_with(message)),
                "{name}: expected {message:?}, got:\n{}",
                lines(&problems)
            );
        }
    }
}

/// The vendored CRD's CEL rules are exactly the ones implemented (a new rule after re-vendoring fails here).
#[test]
fn every_wasmplugin_cel_rule_of_the_crd_is_implemented() {
    let schemas = schemas();
    let rules = schemas
        .istio_rules("extensions.istio.io/v1alpha1", "WasmPlugin")
        .unwrap();
    let in_crd: BTreeSet<(String, String)> = rules["x-kubernetes-validations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap().to_owned(),
                r["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let implemented: BTreeSet<(String, String)> = WASMPLUGIN_CEL
        .iter()
        .map(|r| (r.path.to_owned(), r.message.to_owned()))
        .collect();
    assert_eq!(
        in_crd, implemented,
        "the vendored CRD's CEL rules and rules::WASMPLUGIN_CEL differ"
    );
}

/// The IAM policy grants only the X-Ray calls the relay makes, and the eksctl role carries the same policy.
#[test]
fn iam_policy_grants_only_what_the_relay_calls_and_matches_the_eksctl_role() {
    let root = repo_root();
    let policy: Value =
        serde_json::from_str(&fs::read_to_string(root.join("deploy/aws/iam-policy.json")).unwrap())
            .unwrap();
    let statements = policy["Statement"].as_array().unwrap();
    let actions: BTreeSet<&str> = statements
        .iter()
        .flat_map(|s| s["Action"].as_array().unwrap())
        .map(|a| a.as_str().unwrap())
        .collect();
    let expected: BTreeSet<&str> = [
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "xray:GetSamplingStatisticSummaries",
    ]
    .into();
    assert_eq!(actions, expected);
    assert!(
        statements.iter().all(|s| s["Effect"] == "Allow"
            && s["Resource"] == "*"
            && s.get("NotAction").is_none())
    );
    let eksctl = fs::read_to_string(root.join("deploy/aws/eksctl-cluster.yaml")).unwrap();
    let cluster = &yaml::parse_stream(&eksctl).unwrap()[0];
    let account = &cluster["iam"]["serviceAccounts"][0];
    assert_eq!(cluster["iam"]["withOIDC"], true);
    assert_eq!(
        (
            account["metadata"]["name"].as_str(),
            account["metadata"]["namespace"].as_str()
        ),
        (Some("meshray-relay"), Some("meshray"))
    );
    assert_eq!(
        account["attachPolicy"], policy,
        "eksctl's inline policy differs from iam-policy.json"
    );
}

/// The `[default: N]` (seconds, `s` suffix allowed) of `flag` in the relay's `--help`.
fn help_default_seconds(help: &str, flag: &str) -> Option<u64> {
    let after_flag = &help[help.find(&format!("{flag} "))?..];
    let after_default = &after_flag[after_flag.find("[default: ")? + "[default: ".len()..];
    let value = &after_default[..after_default.find(']')?];
    value.trim_end_matches('s').parse().ok()
}

/// Is this a Helm values file (no apiVersion/kind) rather than a manifest?
fn is_helm_values(text: &str) -> bool {
    !text.lines().any(|line| line.starts_with("apiVersion:"))
}

/// `meshray-relay --help`, from the binary `make` built.
#[allow(clippy::panic, clippy::unwrap_used)] // a test helper: failing is failing the test
fn relay_help() -> String {
    let binary = std::env::var("MESHRAY_RELAY_BIN").unwrap_or_else(|_| {
        repo_root()
            .join("target/debug/meshray-relay")
            .display()
            .to_string()
    });
    let output = Command::new(&binary)
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {binary} (build it with `make relay`): {e}"));
    assert!(output.status.success(), "{binary} --help failed");
    String::from_utf8(output.stdout).unwrap()
}

fn lines(problems: &[meshray_deploy_check::Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// `make install DRY_RUN=1` renders valid manifests carrying the given image, role, region, cluster and recipe.
#[test]
fn make_install_renders_valid_manifests_with_the_given_settings() {
    let schemas = schemas();
    for auth in ["irsa", "pod-identity"] {
        let dir =
            std::env::temp_dir().join(format!("meshray-install-{}-{auth}", std::process::id()));
        let output = Command::new(repo_root().join("deploy/install.sh"))
            .arg("install")
            .env("DRY_RUN", "1")
            .env("INSTALL_DIR", &dir)
            .env("KUBECTL", kustomize::kubectl())
            .env("AWS_AUTH", auth)
            .env(
                "RELAY_IMAGE",
                "111122223333.dkr.ecr.eu-west-1.amazonaws.com/meshray-relay:1.2.3",
            )
            .env(
                "FILTER_IMAGE",
                "111122223333.dkr.ecr.eu-west-1.amazonaws.com/meshray-filter:1.2.3",
            )
            .env("RELAY_ROLE_ARN", "arn:aws:iam::111122223333:role/tracing")
            .env("AWS_REGION", "eu-west-1")
            .env("CLUSTER_NAME", "prod-eu")
            .env("WASM_RECIPE", "mesh")
            .output()
            .unwrap();
        fs::remove_dir_all(&dir).unwrap_or_default();
        let text = String::from_utf8(output.stdout).unwrap();
        assert!(
            output.status.success(),
            "{auth}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let problems = check_stream(&schemas, &format!("make install ({auth})"), &text);
        assert!(problems.is_empty(), "{}", lines(&problems));
        let docs = yaml::parse_stream(&text).unwrap();
        let pod = &find(&docs, "Deployment", "meshray-relay")["spec"]["template"]["spec"];
        assert_eq!(
            pod["containers"][0]["image"],
            "111122223333.dkr.ecr.eu-west-1.amazonaws.com/meshray-relay:1.2.3"
        );
        assert_eq!(
            find(&docs, "ConfigMap", "meshray-relay")["data"]["AWS_REGION"],
            "eu-west-1"
        );
        let role = &find(&docs, "ServiceAccount", "meshray-relay")["metadata"]["annotations"]["eks.amazonaws.com/role-arn"];
        match auth {
            "irsa" => assert_eq!(role, "arn:aws:iam::111122223333:role/tracing"),
            _ => assert!(
                role.is_null(),
                "Pod Identity keeps an IRSA annotation: {role}"
            ),
        }
        let plugin = &find(&docs, "WasmPlugin", "meshray")["spec"];
        assert_eq!(
            plugin["url"],
            "oci://111122223333.dkr.ecr.eu-west-1.amazonaws.com/meshray-filter:1.2.3"
        );
        assert_eq!(plugin["pluginConfig"]["cluster_name"], "prod-eu");
        assert!(
            plugin["selector"].is_null(),
            "the mesh recipe has no selector"
        );
        assert!(
            text.contains(" apply -k "),
            "DRY_RUN prints the kubectl commands"
        );
    }
}

/// Every `istio/…` or `deploy/…` path the install docs name exists (the docs are followed by hand).
/// Paths count from the repository root or from the doc's folder; kubectl command lines
/// (`deploy/<name>` is a resource there) and the upstream repository `istio/istio` are not paths.
#[test]
fn paths_named_in_the_install_docs_exist() {
    let root = repo_root();
    let mut missing = Vec::new();
    let mut named = 0;
    for doc in [
        "README.md",
        "istio/README.md",
        "deploy/README.md",
        "deploy/schemas/README.md",
    ] {
        let text = fs::read_to_string(root.join(doc)).unwrap();
        let doc_dir = root.join(doc).parent().unwrap().to_path_buf();
        for line in text.lines().filter(|line| !line.contains("kubectl")) {
            for start in line
                .match_indices(['`', ' ', '('])
                .map(|(i, _)| i + 1)
                .chain([0])
            {
                let rest = &line[start..];
                if !(rest.starts_with("istio/") || rest.starts_with("deploy/"))
                    || rest.starts_with("istio/istio")
                {
                    continue;
                }
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || "/._-".contains(c)))
                    .unwrap_or(rest.len());
                let path = rest[..end].trim_end_matches(['.', '/']);
                // Templates (`istio/wasmplugin/<recipe>`) and globs (`*.oci.tar`) are not paths.
                if rest[end..].starts_with(['<', '*', '{']) {
                    continue;
                }
                named += 1;
                if !root.join(path).exists() && !doc_dir.join(path).exists() {
                    missing.push(format!("{doc}: {path}"));
                }
            }
        }
    }
    assert!(named > 30, "only {named} paths found");
    assert!(
        missing.is_empty(),
        "named in the docs but missing:\n{}",
        missing.join("\n")
    );
}

/// The image tags in the manifests are the workspace version, as `make wasm-image`,
/// `make relay-image` and `make install` tag them.
#[test]
fn image_tags_follow_the_workspace_version() {
    let cargo = fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
    let version = cargo
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .unwrap();
    let relay = rendered("deploy/base");
    let image = &find(&relay, "Deployment", "meshray-relay")["spec"]["template"]["spec"]["containers"]
        [0]["image"];
    assert_eq!(
        image.as_str(),
        Some(format!("meshray-relay:{version}").as_str())
    );
    let filter = rendered("istio/wasmplugin/base");
    let url = find(&filter, "WasmPlugin", "meshray")["spec"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        url.ends_with(&format!("/meshray-filter:{version}")),
        "{url} is not tagged {version}"
    );
}
