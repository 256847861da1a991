//! `kubefed enable` / `disable` against a real kube-apiserver: the Federated<Kind> CRDs
//! are served, the FederatedTypeConfigs carry KubeFed's field values, repeating enable
//! is harmless, disable turns propagation off or (with --delete-crd) removes both, and a
//! bad type name is a one-line error. Each test uses its own types: the tests of this
//! binary share one control plane and run in parallel.

mod common;

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::discovery::ApiResource;
use kubefed::api::core::{FederatedTypeConfig, PropagationMode};
use kubefed::api::{self, DEFAULT_KUBEFED_NAMESPACE as NS};
use kubefed::kube::apply as kubeutil;
use serde_json::{Value, json};

async fn install_host() -> kube::Client {
    let host = common::client(common::host()).await;
    kubeutil::ensure_namespace(&host, NS).await.unwrap();
    kubeutil::apply_crds(&host, &api::crds(), Duration::from_secs(60))
        .await
        .unwrap();
    host
}

fn kubefed(args: &[&str]) -> std::process::Output {
    let mut all = args.to_vec();
    all.extend(["--host-cluster-context", common::host()]);
    common::kubefed_fed(&all)
}

fn ok(args: &[&str]) -> String {
    let out = kubefed(args);
    assert!(
        out.status.success(),
        "kubefed {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn failure(args: &[&str]) -> String {
    let out = kubefed(args);
    assert!(!out.status.success(), "kubefed {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

fn federated(group: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: "v1beta1".into(),
        api_version: format!("{group}/v1beta1"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// KubeFed's FederatedTypeConfig spec for a type.
fn kubefed_spec(group: &str, kind: &str, plural: &str, scope: &str, fed_scope: &str) -> Value {
    let mut target = json!({"kind": kind, "pluralName": plural, "scope": scope, "version": "v1"});
    if !group.is_empty() {
        target["group"] = json!(group);
    }
    json!({
        "federatedType": {"group": "types.kubefed.io", "kind": format!("Federated{kind}"),
            "pluralName": format!("federated{plural}"), "scope": fed_scope, "version": "v1beta1"},
        "propagation": "Enabled",
        "targetType": target
    })
}

#[tokio::test]
async fn enable_creates_served_crds_and_kubefed_type_configs_and_is_idempotent() {
    let host = install_host().await;
    let out = ok(&["enable", "deployments.apps"]);
    assert!(
        out.contains("federatedtypeconfig.core.kubefed.io/deployments.apps created"),
        "{out}"
    );
    ok(&["enable", "Service"]);
    ok(&["enable", "ns"]);

    let ftcs: Api<FederatedTypeConfig> = Api::namespaced(host.clone(), NS);
    for (name, spec) in [
        (
            "deployments.apps",
            kubefed_spec(
                "apps",
                "Deployment",
                "deployments",
                "Namespaced",
                "Namespaced",
            ),
        ),
        (
            "services",
            kubefed_spec("", "Service", "services", "Namespaced", "Namespaced"),
        ),
        (
            "namespaces",
            kubefed_spec("", "Namespace", "namespaces", "Cluster", "Namespaced"),
        ),
    ] {
        let ftc = ftcs.get(name).await.unwrap();
        assert_eq!(serde_json::to_value(&ftc.spec).unwrap(), spec, "{name}");
    }

    let crds: Api<CustomResourceDefinition> = Api::all(host.clone());
    let dep_crd = crds
        .get("federateddeployments.types.kubefed.io")
        .await
        .unwrap();
    assert_eq!(
        dep_crd.spec.names.short_names,
        Some(vec!["fdeploy".to_string()])
    );
    crds.get("federatedservices.types.kubefed.io")
        .await
        .unwrap();
    crds.get("federatednamespaces.types.kubefed.io")
        .await
        .unwrap();

    // Served: a seed-style FederatedDeployment is stored and read back.
    kubeutil::ensure_namespace(&host, "enable-test")
        .await
        .unwrap();
    let fd: Api<DynamicObject> = Api::namespaced_with(
        host.clone(),
        "enable-test",
        &federated(
            "types.kubefed.io",
            "FederatedDeployment",
            "federateddeployments",
        ),
    );
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "types.kubefed.io/v1beta1", "kind": "FederatedDeployment",
        "metadata": {"name": "web", "namespace": "enable-test"},
        "spec": {
            "template": {"metadata": {"labels": {"app": "nginx"}},
                         "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "nginx"}}}},
            "placement": {"clusters": [{"name": "cluster2"}, {"name": "cluster1"}]},
            "overrides": [{"clusterName": "cluster2",
                           "clusterOverrides": [{"path": "/spec/replicas", "value": 5}]}]
        }
    }))
    .unwrap();
    fd.create(&PostParams::default(), &obj).await.unwrap();
    let back = fd.get("web").await.unwrap();
    assert_eq!(
        back.data["spec"]["overrides"][0]["clusterOverrides"][0]["value"],
        5
    );
    assert_eq!(
        back.data["spec"]["overrides"][0]["clusterOverrides"][0]["op"], "replace",
        "op defaults to replace"
    );
    fd.delete("web", &DeleteParams::default()).await.unwrap();

    // Again: harmless, and says so.
    let again = ok(&["enable", "deployments"]);
    assert!(
        again.contains("federatedtypeconfig.core.kubefed.io/deployments.apps updated"),
        "{again}"
    );
    let ftc = ftcs.get("deployments.apps").await.unwrap();
    assert_eq!(ftc.spec.propagation, PropagationMode::Enabled);
}

#[tokio::test]
async fn disable_turns_propagation_off_and_delete_crd_removes_type_and_config() {
    let host = install_host().await;
    ok(&["enable", "configmaps"]);
    let ftcs: Api<FederatedTypeConfig> = Api::namespaced(host.clone(), NS);
    let crds: Api<CustomResourceDefinition> = Api::all(host.clone());
    let crd = "federatedconfigmaps.types.kubefed.io";

    let out = ok(&["disable", "configmaps"]);
    assert!(out.contains("Disabled propagation"), "{out}");
    assert_eq!(
        ftcs.get("configmaps").await.unwrap().spec.propagation,
        PropagationMode::Disabled
    );
    assert!(crds.get_opt(crd).await.unwrap().is_some(), "CRD kept");
    let out = ok(&["disable", "configmaps"]);
    assert!(out.contains("already disabled"), "{out}");

    // Enabling again turns it back on.
    ok(&["enable", "configmaps"]);
    assert_eq!(
        ftcs.get("configmaps").await.unwrap().spec.propagation,
        PropagationMode::Enabled
    );

    // --delete-crd is refused while federated objects of the type exist.
    kubeutil::ensure_namespace(&host, "disable-test")
        .await
        .unwrap();
    let fcm: Api<DynamicObject> = Api::namespaced_with(
        host.clone(),
        "disable-test",
        &federated(
            "types.kubefed.io",
            "FederatedConfigMap",
            "federatedconfigmaps",
        ),
    );
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "types.kubefed.io/v1beta1", "kind": "FederatedConfigMap",
        "metadata": {"name": "cfg", "namespace": "disable-test"},
        "spec": {"template": {"data": {"a": "b"}}, "placement": {"clusterSelector": {}}}
    }))
    .unwrap();
    fcm.create(&PostParams::default(), &obj).await.unwrap();
    let err = failure(&["disable", "configmaps", "--delete-crd"]);
    assert!(err.contains("FederatedConfigMap objects exist"), "{err}");
    assert_eq!(
        ftcs.get("configmaps").await.unwrap().spec.propagation,
        PropagationMode::Enabled,
        "a refused disable changes nothing"
    );

    fcm.delete("cfg", &DeleteParams::default()).await.unwrap();
    common::eventually(Duration::from_secs(30), "FederatedConfigMap gone", || {
        let fcm = fcm.clone();
        async move { fcm.get_opt("cfg").await.unwrap().is_none().then_some(()) }
    })
    .await;
    let out = ok(&["disable", "configmaps", "--delete-crd"]);
    assert!(
        out.contains(&format!("customresourcedefinition \"{crd}\" deleted")),
        "{out}"
    );
    assert!(crds.get_opt(crd).await.unwrap().is_none());
    assert!(ftcs.get_opt("configmaps").await.unwrap().is_none());

    // Nothing left: disabling again only reports it.
    let out = ok(&["disable", "configmaps", "--delete-crd"]);
    assert!(out.contains("does not exist"), "{out}");
}

#[tokio::test]
async fn unknown_type_is_a_one_line_error() {
    install_host().await;
    let err = failure(&["enable", "nosuchkinds"]);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("\"nosuchkinds\""), "{err}");
    let err = failure(&["disable", "nosuchkinds"]);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let err = failure(&["enable", "secrets", "--kubefed-namespace", "no-such-ns"]);
    assert!(err.contains("\"no-such-ns\" does not exist"), "{err}");
}

#[tokio::test]
async fn output_yaml_prints_without_creating() {
    let host = install_host().await;
    let out = ok(&[
        "enable",
        "replicasets.apps",
        "--federated-group",
        "types.example.io",
        "-o",
        "yaml",
    ]);
    assert!(out.contains("kind: FederatedTypeConfig"), "{out}");
    assert!(
        out.contains("name: federatedreplicasets.types.example.io"),
        "{out}"
    );
    assert!(out.contains("kind: FederatedReplicaSet"), "{out}");
    let ftcs: Api<FederatedTypeConfig> = Api::namespaced(host.clone(), NS);
    assert!(ftcs.get_opt("replicasets.apps").await.unwrap().is_none());
    let crds: Api<CustomResourceDefinition> = Api::all(host);
    assert!(
        crds.get_opt("federatedreplicasets.types.example.io")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn federate_wraps_objects_and_namespace_contents() {
    use k8s_openapi::api::core::v1::{Secret, ServiceAccount};

    let host = install_host().await;
    ok(&["enable", "secrets"]);
    ok(&["enable", "namespaces"]);
    let ns = "federate-test";
    kubeutil::ensure_namespace(&host, ns).await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(host.clone(), ns);
    for name in ["app-secret", "other-secret"] {
        let s: Secret = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": "web"}, "annotations": {"note": "x"}},
            "type": "Opaque", "data": {"k": "dg=="}
        }))
        .unwrap();
        secrets.create(&PostParams::default(), &s).await.unwrap();
    }

    let out = ok(&["federate", "secret", "app-secret", "-n", ns]);
    assert!(
        out.contains(&format!("FederatedSecret {ns}/app-secret created")),
        "{out}"
    );
    let fsecrets: Api<DynamicObject> = Api::namespaced_with(
        host.clone(),
        ns,
        &federated("types.kubefed.io", "FederatedSecret", "federatedsecrets"),
    );
    let fs = fsecrets.get("app-secret").await.unwrap();
    assert_eq!(
        fs.data["spec"]["template"],
        json!({"metadata": {"labels": {"app": "web"}}, "type": "Opaque", "data": {"k": "dg=="}})
    );
    assert_eq!(
        fs.data["spec"]["placement"],
        json!({"clusterSelector": {"matchLabels": {}}})
    );

    // The namespace with its contents: the FederatedNamespace, the second secret, and the
    // first one left as it is.
    let out = ok(&["federate", "namespace", ns, "--contents"]);
    assert!(
        out.contains(&format!("FederatedNamespace {ns}/{ns} created")),
        "{out}"
    );
    assert!(
        out.contains(&format!("FederatedSecret {ns}/app-secret already exists")),
        "{out}"
    );
    assert!(
        out.contains(&format!("FederatedSecret {ns}/other-secret created")),
        "{out}"
    );
    let fns: Api<DynamicObject> = Api::namespaced_with(
        host.clone(),
        ns,
        &federated(
            "types.kubefed.io",
            "FederatedNamespace",
            "federatednamespaces",
        ),
    );
    fns.get(ns).await.unwrap();
    fsecrets.get("other-secret").await.unwrap();

    // -o yaml needs no FederatedTypeConfig and creates nothing.
    let sas: Api<ServiceAccount> = Api::namespaced(host.clone(), ns);
    let sa: ServiceAccount = serde_json::from_value(json!({
        "metadata": {"name": "bot"}, "secrets": [{"name": "bot-token"}]
    }))
    .unwrap();
    sas.create(&PostParams::default(), &sa).await.unwrap();
    let out = ok(&["federate", "sa", "bot", "-n", ns, "-o", "yaml"]);
    assert!(out.contains("kind: FederatedServiceAccount"), "{out}");
    assert!(
        !out.contains("bot-token"),
        "member-owned secrets left out: {out}"
    );

    let err = failure(&["federate", "secret", "missing", "-n", ns]);
    assert!(err.contains("Secret \"missing\" not found"), "{err}");
    let err = failure(&["federate", "sa", "bot", "-n", ns]);
    assert!(err.contains("kubefed enable serviceaccounts"), "{err}");
}

/// kubefedctl's `enable -f` reads an EnableTypeDirective; `--federated-version` names
/// the generated type's version; `-o json` prints one List and creates nothing.
#[tokio::test]
async fn enable_reads_a_directive_file_and_prints_json() {
    let host = install_host().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("directive.yaml");
    std::fs::write(
        &file,
        "apiVersion: core.kubefed.io/v1beta1\nkind: EnableTypeDirective\nmetadata:\n  name: replicationcontrollers\nspec:\n  federatedGroup: types.directive.io\n  federatedVersion: v1alpha1\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let out = ok(&["enable", "-f", file, "-o", "json"]);
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["kind"], "List", "{out}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items[0]["kind"], "FederatedTypeConfig");
    assert_eq!(
        items[0]["spec"]["federatedType"]["version"], "v1alpha1",
        "{out}"
    );
    assert_eq!(items[1]["kind"], "CustomResourceDefinition");
    assert_eq!(items[1]["spec"]["versions"][0]["name"], "v1alpha1");
    let ftcs: Api<FederatedTypeConfig> = Api::namespaced(host.clone(), NS);
    assert!(
        ftcs.get_opt("replicationcontrollers")
            .await
            .unwrap()
            .is_none()
    );

    // Applied, with the flag overriding the file's version: the CRD serves it.
    ok(&["enable", "-f", file, "--federated-version", "v1beta2"]);
    let ftc = ftcs.get("replicationcontrollers").await.unwrap();
    assert_eq!(ftc.spec.federated_type.version, "v1beta2");
    assert_eq!(ftc.spec.federated_type.group, "types.directive.io");
    let crds: Api<CustomResourceDefinition> = Api::all(host.clone());
    let crd = crds
        .get("federatedreplicationcontrollers.types.directive.io")
        .await
        .unwrap();
    assert_eq!(crd.spec.versions[0].name, "v1beta2");

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "kind: ConfigMap\nmetadata: {name: x}\n").unwrap();
    let err = failure(&["enable", "-f", bad.to_str().unwrap()]);
    assert!(err.contains("expected kind EnableTypeDirective"), "{err}");
}

/// `federate -f` federates the objects of a file; `-t` enables their type first;
/// `-n` defaults to the kubeconfig context's namespace; `-c` is `--contents`.
#[tokio::test]
async fn federate_reads_files_enables_types_and_defaults_the_namespace() {
    use k8s_openapi::api::core::v1::PodTemplate;

    let host = install_host().await;
    let ns = "federate-file";
    kubeutil::ensure_namespace(&host, ns).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("objects.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: quota\n  namespace: {ns}\nspec:\n  hard:\n    pods: \"10\"\n---\napiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: quota-default-ns\nspec: {{}}\n"
        ),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    // Offline rendering needs no FederatedTypeConfig and creates nothing.
    let out = ok(&["federate", "-f", file, "-n", ns, "-o", "yaml"]);
    assert_eq!(
        out.matches("kind: FederatedResourceQuota").count(),
        2,
        "{out}"
    );
    assert_eq!(out.matches(&format!("namespace: {ns}")).count(), 2, "{out}");
    let err = failure(&["federate", "-f", file, "-n", ns]);
    assert!(err.contains("--enable-type"), "{err}");
    let out = ok(&["federate", "-f", file, "-n", ns, "-t"]);
    assert!(
        out.contains("federatedtypeconfig.core.kubefed.io/resourcequotas created"),
        "{out}"
    );
    assert!(
        out.contains(&format!("FederatedResourceQuota {ns}/quota created")),
        "{out}"
    );
    let fq: Api<DynamicObject> = Api::namespaced_with(
        host.clone(),
        ns,
        &federated(
            "types.kubefed.io",
            "FederatedResourceQuota",
            "federatedresourcequotas",
        ),
    );
    let q = fq.get("quota").await.unwrap();
    assert_eq!(q.data["spec"]["template"]["spec"]["hard"]["pods"], "10");
    fq.get("quota-default-ns").await.unwrap();

    // A kubeconfig whose current context has a namespace: `-n` is not needed.
    let kc_path = common::federation().state.kubeconfig.clone();
    let mut kc: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(&kc_path).unwrap()).unwrap();
    let contexts = kc["contexts"].as_array_mut().unwrap();
    let mut ctx = contexts
        .iter()
        .find(|c| c["name"] == common::host())
        .unwrap()
        .clone();
    ctx["name"] = "with-namespace".into();
    ctx["context"]["namespace"] = ns.into();
    contexts.push(ctx);
    kc["current-context"] = "with-namespace".into();
    let own = dir.path().join("kubeconfig");
    std::fs::write(&own, serde_json::to_string(&kc).unwrap()).unwrap();
    let pts: Api<PodTemplate> = Api::namespaced(host.clone(), ns);
    let pt: PodTemplate = serde_json::from_value(json!({
        "metadata": {"name": "settings"},
        "template": {"spec": {"containers": [{"name": "c", "image": "example/c"}]}}
    }))
    .unwrap();
    pts.create(&PostParams::default(), &pt).await.unwrap();
    let out = common::kubefed(&[
        "federate",
        "podtemplate",
        "settings",
        "-t",
        "--kubeconfig",
        own.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("FederatedPodTemplate {ns}/settings created")),
        "{stdout}"
    );

    // -c is --contents.
    ok(&["enable", "namespaces"]);
    let out = ok(&["federate", "ns", ns, "-c"]);
    assert!(
        out.contains(&format!(
            "FederatedPodTemplate {ns}/settings already exists"
        )),
        "{out}"
    );
}

#[tokio::test]
async fn orphaning_deletion_sets_and_clears_the_annotation() {
    let host = install_host().await;
    ok(&["enable", "limitranges"]);
    kubeutil::ensure_namespace(&host, "orphaning")
        .await
        .unwrap();
    let fed = federated(
        "types.kubefed.io",
        "FederatedLimitRange",
        "federatedlimitranges",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(host.clone(), "orphaning", &fed);
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "types.kubefed.io/v1beta1", "kind": "FederatedLimitRange",
        "metadata": {"name": "kept", "namespace": "orphaning"},
        "spec": {"template": {"spec": {"limits": []}}}
    }))
    .unwrap();
    common::eventually(Duration::from_secs(30), "the federated type served", || {
        let (api, obj) = (api.clone(), obj.clone());
        async move { api.create(&PostParams::default(), &obj).await.ok() }
    })
    .await;
    let status = || {
        ok(&[
            "orphaning-deletion",
            "status",
            "FederatedLimitRange",
            "kept",
            "-n",
            "orphaning",
        ])
    };
    let annotation = || async {
        api.get("kept")
            .await
            .unwrap()
            .metadata
            .annotations
            .and_then(|a| a.get("kubefed.io/orphan").cloned())
    };
    assert_eq!(status(), "Disabled\n");
    let out = ok(&[
        "orphaning-deletion",
        "enable",
        "federatedlimitranges",
        "kept",
        "-n",
        "orphaning",
    ]);
    assert!(out.contains("orphaning deletion enabled"), "{out}");
    assert_eq!(annotation().await.as_deref(), Some("true"));
    assert_eq!(status(), "Enabled\n");
    ok(&[
        "orphaning-deletion",
        "disable",
        "FederatedLimitRange",
        "kept",
        "-n",
        "orphaning",
    ]);
    assert_eq!(annotation().await, None);
    assert_eq!(status(), "Disabled\n");
    let err = failure(&[
        "orphaning-deletion",
        "status",
        "FederatedLimitRange",
        "absent",
        "-n",
        "orphaning",
    ]);
    assert!(
        err.contains("FederatedLimitRange orphaning/absent not found"),
        "{err}"
    );
}
