//! The CRDs on a real API server: `crds/` is what the Rust types generate, every example
//! that uses our APIs is accepted and stored, bad objects are refused with a message
//! that names the field, and `kubectl get` shows useful columns.

mod common;

use std::path::Path;
use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::{ApiResource, Discovery};
use kubefed::api::{self, core, types};
use kubefed::kube::apply as kubeutil;
use serde_json::{Value, json};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn crds_dir_matches_the_rust_types() {
    let crds = api::crds();
    let mut expected: Vec<String> = Vec::new();
    for crd in &crds {
        let name = api::crd_file_name(crd);
        let want = api::crds_yaml(std::slice::from_ref(crd)).unwrap();
        let path = repo().join("crds").join(&name);
        let got = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            got == want,
            "{} is out of date with src/api: run `make crds` (kubefed crds --output-dir crds)",
            path.display()
        );
        expected.push(name);
    }
    let mut present: Vec<String> = std::fs::read_dir(repo().join("crds"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    present.sort();
    expected.sort();
    assert_eq!(
        present, expected,
        "crds/ holds files the types do not generate"
    );
}

/// Why `description` is not one a `kubectl explain` reader can use, if it is not.
fn unhelpful(description: Option<&str>) -> Option<&'static str> {
    let d = description.map(str::trim).unwrap_or_default();
    if d.is_empty() {
        return Some("no description");
    }
    let boilerplate = [
        ("Auto-generated derived type", "kube-derive's placeholder"),
        ("Only here to", "a note for developers"),
        (
            "docs/",
            "a path in this repository, which readers of the API do not have",
        ),
        ("[`", "rustdoc link syntax"),
    ];
    boilerplate
        .iter()
        .find(|(needle, _)| d.contains(needle))
        .map(|(_, why)| *why)
}

/// Every property below `schema` (through objects, array items and map values) whose
/// description is missing or unhelpful, as `path: why`.
fn undescribed(schema: &Value, path: &str, out: &mut Vec<String>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            let at = format!("{path}.{name}");
            // The API server describes an object's metadata itself (and refuses a
            // description of it in a CRD).
            if name == "metadata" && !path.contains('.') {
                continue;
            }
            if let Some(why) = unhelpful(prop.get("description").and_then(Value::as_str)) {
                out.push(format!("{at}: {why}"));
            }
            undescribed(prop, &at, out);
        }
    }
    if let Some(items) = schema.get("items") {
        undescribed(items, &format!("{path}[]"), out);
    }
    if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        undescribed(values, &format!("{path}{{}}"), out);
    }
}

#[test]
fn every_kind_and_field_has_a_real_description() {
    let mut crds = api::crds();
    // The Federated<Kind> CRDs `kubefed enable` makes, for a namespaced and a cluster type.
    for (group, kind, plural, scope) in [
        (
            "apps",
            "Deployment",
            "deployments",
            core::ResourceScope::Namespaced,
        ),
        ("", "Namespace", "namespaces", core::ResourceScope::Cluster),
    ] {
        let target = core::ApiResource {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
            plural_name: plural.into(),
            scope,
        };
        crds.push(types::federated_crd(&types::federated_type_for(
            &target,
            types::DEFAULT_FEDERATED_GROUP,
        )));
    }
    let mut bad = Vec::new();
    for crd in &crds {
        let kind = &crd.spec.names.kind;
        for version in &crd.spec.versions {
            let schema = serde_json::to_value(
                version
                    .schema
                    .as_ref()
                    .and_then(|s| s.open_api_v3_schema.as_ref())
                    .unwrap(),
            )
            .unwrap();
            if let Some(why) = unhelpful(schema.get("description").and_then(Value::as_str)) {
                bad.push(format!("{kind}: {why}"));
            }
            undescribed(&schema, kind, &mut bad);
        }
    }
    // The checker itself: it must see what it is meant to catch.
    let mut probe = Vec::new();
    undescribed(
        &json!({"properties": {"a": {"description": "ok", "items": {"properties": {"b": {}}}},
                               "c": {"description": "see docs/x.md"}}}),
        "X",
        &mut probe,
    );
    assert_eq!(probe.len(), 2, "{probe:?}");
    assert!(
        bad.is_empty(),
        "fields `kubectl explain` shows no use for:\n{}",
        bad.join("\n")
    );
}

async fn install(client: &kube::Client) {
    let mut all = api::crds();
    for (group, kind, plural, scope) in [
        ("", "Namespace", "namespaces", core::ResourceScope::Cluster),
        (
            "apps",
            "Deployment",
            "deployments",
            core::ResourceScope::Namespaced,
        ),
        ("", "Service", "services", core::ResourceScope::Namespaced),
    ] {
        let target = core::ApiResource {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
            plural_name: plural.into(),
            scope,
        };
        all.push(types::federated_crd(&types::federated_type_for(
            &target,
            types::DEFAULT_FEDERATED_GROUP,
        )));
    }
    kubeutil::apply_crds(client, &all, Duration::from_secs(60))
        .await
        .unwrap();
}

fn api_for(
    client: &kube::Client,
    discovery: &Discovery,
    obj: &Value,
) -> (Api<DynamicObject>, ApiResource) {
    let (group, version) = match obj["apiVersion"].as_str().unwrap().split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (
            String::new(),
            obj["apiVersion"].as_str().unwrap().to_string(),
        ),
    };
    let kind = obj["kind"].as_str().unwrap();
    let (ar, _caps) = discovery
        .groups()
        .find(|g| g.name() == group)
        .and_then(|g| {
            g.versioned_resources(&version)
                .into_iter()
                .find(|(ar, _)| ar.kind == kind)
        })
        .unwrap_or_else(|| panic!("{group}/{version} {kind} is not served"));
    let ns = obj["metadata"]["namespace"].as_str().unwrap_or("default");
    (Api::namespaced_with(client.clone(), ns, &ar), ar)
}

#[tokio::test]
async fn every_example_using_our_apis_is_accepted_and_stored() {
    let client = common::client(common::host()).await;
    install(&client).await;
    let discovery = Discovery::new(client.clone()).run().await.unwrap();

    let mut applied = 0;
    let mut files: Vec<_> = std::fs::read_dir(repo().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
        assert!(!docs.is_empty(), "{} holds no object", path.display());
        for doc in docs {
            let api_version = doc["apiVersion"].as_str().unwrap_or_default();
            if !api_version.contains("kubefed.io/") {
                continue;
            }
            if let Some(ns) = doc["metadata"]["namespace"].as_str() {
                kubeutil::ensure_namespace(&client, ns).await.unwrap();
            }
            let (api, _) = api_for(&client, &discovery, &doc);
            let name = doc["metadata"]["name"].as_str().unwrap();
            api.patch(
                name,
                &PatchParams::apply("examples-test"),
                &Patch::Apply(&doc),
            )
            .await
            .unwrap_or_else(|e| panic!("{} ({name}) refused: {e}", path.display()));
            let stored = serde_json::to_value(api.get(name).await.unwrap()).unwrap();
            for field in ["spec", "domain", "nameServer"] {
                if let Some(want) = doc.get(field) {
                    assert_subset(
                        want,
                        &stored[field],
                        &format!("{}: {field}", path.display()),
                    );
                }
            }
            applied += 1;
        }
    }
    assert!(
        applied >= 7,
        "expected every kubefed example to be applied, applied {applied}"
    );
}

/// Every field of `want` is in `got` with the same value (the server may add defaults).
fn assert_subset(want: &Value, got: &Value, at: &str) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, v) in w {
                assert_subset(v, g.get(k).unwrap_or(&Value::Null), &format!("{at}.{k}"));
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            assert_eq!(w.len(), g.len(), "{at}: array length");
            for (i, (w, g)) in w.iter().zip(g).enumerate() {
                assert_subset(w, g, &format!("{at}[{i}]"));
            }
        }
        _ => assert_eq!(want, got, "{at}"),
    }
}

async fn refused(client: &kube::Client, obj: Value) -> String {
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let ns = obj["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    kubeutil::ensure_namespace(client, &ns).await.unwrap();
    let (api, _) = api_for(client, &discovery, &obj);
    let obj: DynamicObject = serde_json::from_value(obj).unwrap();
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => panic!(
            "{} {:?} was accepted",
            obj.types.unwrap().kind,
            obj.metadata.name
        ),
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "expected Invalid, got {status:?}");
            status.message
        }
        Err(e) => panic!("unexpected error {e}"),
    }
}

fn sdr(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "multiclusterdns.kubefed.io/v1alpha1", "kind": "ServiceDNSRecord",
           "metadata": {"name": name, "namespace": "invalid"}, "spec": spec})
}

#[tokio::test]
async fn invalid_objects_are_refused_with_a_message_naming_the_field() {
    let client = common::client(common::host()).await;
    install(&client).await;

    let msg = refused(&client, sdr("no-domainref", json!({"recordTTL": 60}))).await;
    assert!(msg.contains("spec.domainRef: Required value"), "{msg}");

    let msg = refused(
        &client,
        sdr("negative-ttl", json!({"domainRef": "d", "recordTTL": -1})),
    )
    .await;
    assert!(
        msg.contains("spec.recordTTL") && msg.contains("greater than or equal to 0"),
        "{msg}"
    );

    let msg = refused(
        &client,
        sdr(
            "bad-prefix",
            json!({"domainRef": "d", "dnsPrefix": "not a name"}),
        ),
    )
    .await;
    assert!(
        msg.contains("spec.dnsPrefix") && msg.contains("should match"),
        "{msg}"
    );

    let msg = refused(
        &client,
        json!({"apiVersion": "multiclusterdns.kubefed.io/v1alpha1", "kind": "Domain",
               "metadata": {"name": "bad", "namespace": "invalid"}, "domain": "exa mple..com"}),
    )
    .await;
    assert!(
        msg.contains("domain") && msg.contains("should match"),
        "{msg}"
    );

    let msg = refused(
        &client,
        json!({"apiVersion": "multiclusterdns.kubefed.io/v1alpha1", "kind": "Domain",
               "metadata": {"name": "missing", "namespace": "invalid"}}),
    )
    .await;
    assert!(msg.contains("domain: Required value"), "{msg}");

    let msg = refused(
        &client,
        json!({"apiVersion": "multiclusterdns.kubefed.io/v1alpha1", "kind": "IngressDNSRecord",
               "metadata": {"name": "bad-host", "namespace": "invalid"},
               "spec": {"hosts": ["ok.example.com", "bad host"]}}),
    )
    .await;
    assert!(msg.contains("spec.hosts[1]"), "{msg}");

    let msg = refused(
        &client,
        json!({"apiVersion": "multiclusterdns.kubefed.io/v1alpha1", "kind": "DNSEndpoint",
               "metadata": {"name": "bad-type", "namespace": "invalid"},
               "spec": {"endpoints": [{"dnsName": "a.example.com", "recordType": "BOGUS", "targets": ["x"]}]}}),
    )
    .await;
    assert!(
        msg.contains("spec.endpoints[0].recordType") && msg.contains("Unsupported value"),
        "{msg}"
    );

    let msg = refused(
        &client,
        json!({"apiVersion": "core.kubefed.io/v1beta1", "kind": "KubeFedCluster",
               "metadata": {"name": "no-endpoint", "namespace": "invalid"},
               "spec": {"secretRef": {"name": "s"}}}),
    )
    .await;
    assert!(msg.contains("spec.apiEndpoint: Required value"), "{msg}");

    // A proxy kube cannot use (socks5h, ftp) is refused at admission, not left to a log.
    let msg = refused(
        &client,
        json!({"apiVersion": "core.kubefed.io/v1beta1", "kind": "KubeFedCluster",
               "metadata": {"name": "bad-proxy", "namespace": "invalid"},
               "spec": {"apiEndpoint": "https://10.0.0.1:6443", "secretRef": {"name": "s"},
                        "proxyURL": "ftp://proxy:21"}}),
    )
    .await;
    assert!(msg.contains("spec.proxyURL"), "{msg}");

    let msg = refused(
        &client,
        json!({"apiVersion": "scheduling.kubefed.io/v1alpha1", "kind": "ReplicaSchedulingPreference",
               "metadata": {"name": "bad-kind", "namespace": "invalid"},
               "spec": {"targetKind": "FederatedPod", "totalReplicas": 3}}),
    )
    .await;
    assert!(
        msg.contains("spec.targetKind") && msg.contains("Unsupported value"),
        "{msg}"
    );

    let msg = refused(
        &client,
        json!({"apiVersion": "types.kubefed.io/v1beta1", "kind": "FederatedDeployment",
               "metadata": {"name": "bad-op", "namespace": "invalid"},
               "spec": {"template": {}, "overrides": [{"clusterName": "c", "clusterOverrides": [{"op": "merge", "path": "/spec"}]}]}}),
    )
    .await;
    assert!(
        msg.contains("op") && msg.contains("Unsupported value"),
        "{msg}"
    );
}

#[tokio::test]
async fn kubectl_get_shows_domain_and_ttl_columns() {
    let client = common::client(common::host()).await;
    install(&client).await;
    kubeutil::ensure_namespace(&client, "columns")
        .await
        .unwrap();
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "columns",
        &ApiResource::erase::<api::multiclusterdns::ServiceDNSRecord>(&()),
    );
    let obj: DynamicObject =
        serde_json::from_value(sdr("shown", json!({"domainRef": "test-domain"}))).unwrap();
    let mut obj = obj;
    obj.metadata.namespace = Some("columns".into());
    api.create(&PostParams::default(), &obj).await.unwrap();

    let shared = common::federation();
    let out = std::process::Command::new(common::kubectl())
        .args(["--kubeconfig"])
        .arg(&shared.state.kubeconfig)
        .args([
            "--context",
            common::host(),
            "-n",
            "columns",
            "get",
            "servicednsrecords",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let header = text.lines().next().unwrap();
    for col in ["NAME", "READY", "DOMAIN", "TTL", "AGE"] {
        assert!(header.contains(col), "missing {col} in {header}");
    }
    // The schema default fills recordTTL, so the TTL column is never empty.
    assert!(text.lines().nth(1).unwrap().contains("180"), "{text}");

    // READY comes from the Ready condition, for both record kinds.
    let ready = json!({"status": {"conditions": [{"type": "Ready", "status": "True",
        "reason": "Published", "message": "ok", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    api.patch_status("shown", &PatchParams::default(), &Patch::Merge(&ready))
        .await
        .unwrap();
    let idr: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "columns",
        &ApiResource::erase::<api::multiclusterdns::IngressDNSRecord>(&()),
    );
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "multiclusterdns.kubefed.io/v1alpha1", "kind": "IngressDNSRecord",
        "metadata": {"name": "shown", "namespace": "columns"},
        "spec": {"hosts": ["a.example.com"]}
    }))
    .unwrap();
    idr.create(&PostParams::default(), &obj).await.unwrap();
    idr.patch_status("shown", &PatchParams::default(), &Patch::Merge(&ready))
        .await
        .unwrap();
    for kind in ["servicednsrecords", "ingressdnsrecords"] {
        let table = common::run_kubectl(common::host(), &["-n", "columns", "get", kind]);
        assert_eq!(column(&table, "READY"), ["True"], "{kind}: {table}");
    }

    // ENDPOINTS counts every endpoint, as the controller writes them.
    let rec: api::multiclusterdns::ServiceDNSRecord = serde_json::from_value(json!({
        "apiVersion": "multiclusterdns.kubefed.io/v1alpha1", "kind": "ServiceDNSRecord",
        "metadata": {"name": "counted", "namespace": "columns", "uid": "u-1"},
        "spec": {"domainRef": "d"}
    }))
    .unwrap();
    let eps: Vec<api::multiclusterdns::Endpoint> = ["a", "b", "c"]
        .iter()
        .map(|n| api::multiclusterdns::Endpoint {
            dns_name: format!("{n}.example.com"),
            targets: vec!["192.0.2.1".into()],
            record_type: "A".into(),
            record_ttl: 180,
            labels: Default::default(),
        })
        .collect();
    let mut ep = kubefed::dns::records::dns_endpoint_for_service(&rec, eps);
    ep.metadata.owner_references = None;
    Api::<api::multiclusterdns::DNSEndpoint>::namespaced(client.clone(), "columns")
        .create(&PostParams::default(), &ep)
        .await
        .unwrap();
    let table = common::run_kubectl(common::host(), &["-n", "columns", "get", "dnsendpoints"]);
    assert_eq!(column(&table, "ENDPOINTS"), ["3"], "{table}");
}

/// The cells of column `name` in a `kubectl get` table (columns are aligned on the
/// header).
fn column(table: &str, name: &str) -> Vec<String> {
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    let start = header
        .find(name)
        .unwrap_or_else(|| panic!("no {name} in {header}"));
    lines
        .map(|l| {
            l.get(start..)
                .unwrap_or_default()
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// `kubectl apply -f -` of `yaml` on the host; (success, stderr).
fn kubectl_apply(yaml: &str) -> (bool, String) {
    use std::io::Write;
    let kc = common::federation().state.kubeconfig.display().to_string();
    let mut child = std::process::Command::new(common::kubectl())
        .args([
            "--kubeconfig",
            &kc,
            "--context",
            common::host(),
            "apply",
            "-f",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ftc(name: &str, target: &str, federated: &str) -> String {
    format!(
        "apiVersion: core.kubefed.io/v1beta1\nkind: FederatedTypeConfig\nmetadata: {{name: {name}, namespace: ftc-rules}}\nspec:\n  propagation: Enabled\n  targetType: {target}\n  federatedType: {federated}\n"
    )
}

#[tokio::test]
async fn kubefed_admission_rules_and_defaults_hold_through_kubectl_apply() {
    let client = common::client(common::host()).await;
    install(&client).await;
    kubeutil::ensure_namespace(&client, "ftc-rules")
        .await
        .unwrap();
    let deployments =
        "{group: apps, version: v1, kind: Deployment, pluralName: deployments, scope: Namespaced}";
    let fed_deployments = "{group: types.kubefed.io, version: v1beta1, kind: FederatedDeployment, pluralName: federateddeployments, scope: Namespaced}";

    // KubeFed's admission rules, as CEL in the schema.
    let (ok, err) = kubectl_apply(&ftc("deployments", deployments, fed_deployments));
    assert!(!ok && err.contains("metadata.name must be"), "{err}");
    let (ok, err) = kubectl_apply(&ftc(
        "deployments.apps",
        deployments,
        "{group: types, version: v1beta1, kind: FederatedDeployment, pluralName: federateddeployments, scope: Namespaced}",
    ));
    assert!(!ok && err.contains("at least one dot"), "{err}");
    let (ok, err) = kubectl_apply(&ftc(
        "deployments.apps",
        deployments,
        "{group: types.kubefed.io, version: v1beta1, kind: FederatedDeployment, pluralName: federateddeployments, scope: Cluster}",
    ));
    assert!(
        !ok && err.contains("federatedType.scope must equal"),
        "{err}"
    );
    let (ok, err) = kubectl_apply(&ftc(
        "deployments.apps",
        "{group: apps, version: V1, kind: Deployment, pluralName: deployments, scope: Namespaced}",
        fed_deployments,
    ));
    assert!(!ok && err.contains("spec.targetType.version"), "{err}");
    // What KubeFed accepts is accepted, the namespace type's scopes included.
    let (ok, err) = kubectl_apply(&ftc("deployments.apps", deployments, fed_deployments));
    assert!(ok, "{err}");
    let (ok, err) = kubectl_apply(&ftc(
        "namespaces",
        "{version: v1, kind: Namespace, pluralName: namespaces, scope: Cluster}",
        "{group: types.kubefed.io, version: v1beta1, kind: FederatedNamespace, pluralName: federatednamespaces, scope: Namespaced}",
    ));
    assert!(ok, "{err}");

    // KubeFedConfig: KubeFed's defaults filled in, what the user set kept.
    let (ok, err) = kubectl_apply(
        "apiVersion: core.kubefed.io/v1beta1\nkind: KubeFedConfig\nmetadata: {name: kubefed, namespace: ftc-rules}\nspec:\n  scope: Cluster\n  syncController: {adoptResources: Disabled}\n  clusterHealthCheck: {period: 20s}\n",
    );
    assert!(ok, "{err}");
    let api: Api<api::core::KubeFedConfig> = Api::namespaced(client.clone(), "ftc-rules");
    let spec = serde_json::to_value(api.get("kubefed").await.unwrap().spec).unwrap();
    let want = json!({
        "scope": "Cluster",
        "controllerDuration": {"availableDelay": "20s", "unavailableDelay": "1m0s"},
        "leaderElect": {"leaseDuration": "15s", "renewDeadline": "10s", "retryPeriod": "5s", "resourceLock": "leases"},
        "featureGates": [
            {"name": "PushReconciler", "configuration": "Enabled"},
            {"name": "RawResourceStatusCollection", "configuration": "Disabled"},
            {"name": "SchedulerPreferences", "configuration": "Enabled"}
        ],
        "clusterHealthCheck": {"period": "20s", "timeout": "3s", "failureThreshold": 3, "successThreshold": 1},
        "syncController": {"adoptResources": "Disabled", "maxConcurrentReconciles": 8},
        "statusController": {"maxConcurrentReconciles": 1}
    });
    assert_eq!(spec, want);
}
