//! The host joined as a member too (seed 004: "Host Cluster也可以是Member Cluster"): every
//! type propagates to it exactly as to a remote member (built-in kinds, namespaced and
//! cluster-scoped, and CRD-based ones of both scopes), and the sync controller never
//! deletes the host's own namespace, which holds the federated objects themselves.
//! Taking the host out of a FederatedNamespace's placement, deleting the
//! FederatedNamespace and unjoining the host only remove the managed label there, as
//! KubeFed does; a remote member's copy is deleted as usual.

mod common;

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use kubefed::api::{self, DEFAULT_KUBEFED_NAMESPACE as NS};
use serde_json::json;

const T: Duration = Duration::from_secs(60);

fn fed_ns(host: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let ar = ApiResource {
        group: "types.kubefed.io".into(),
        version: "v1beta1".into(),
        api_version: "types.kubefed.io/v1beta1".into(),
        kind: "FederatedNamespace".into(),
        plural: "federatednamespaces".into(),
    };
    Api::namespaced_with(host.clone(), ns, &ar)
}

fn managed(ns: &Namespace) -> bool {
    ns.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("kubefed.io/managed"))
        .is_some_and(|v| v == "true")
}

async fn placement(api: &Api<DynamicObject>, name: &str, clusters: &[&str]) {
    let clusters: Vec<_> = clusters.iter().map(|c| json!({"name": c})).collect();
    api.patch(
        name,
        &PatchParams::apply("test").force(),
        &Patch::Apply(
            json!({"apiVersion": "types.kubefed.io/v1beta1", "kind": "FederatedNamespace",
            "metadata": {"name": name, "namespace": name},
            "spec": {"placement": {"clusters": clusters}}}),
        ),
    )
    .await
    .unwrap();
}

/// The host's namespace is still there, the same object, not terminating.
async fn host_namespace_intact(host: &Api<Namespace>, name: &str, uid: &str) -> Namespace {
    let ns = host.get(name).await.unwrap();
    assert_eq!(
        ns.metadata.uid.as_deref(),
        Some(uid),
        "the host namespace was recreated"
    );
    assert!(
        ns.metadata.deletion_timestamp.is_none(),
        "the host namespace {name} is terminating"
    );
    ns
}

/// A CRD of `scope` in group `example.com`, installed in `client`.
async fn crd(client: &kube::Client, kind: &str, plural: &str, scope: &str) {
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.example.com")},
        "spec": {"group": "example.com", "scope": scope,
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List")},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}]}});
    let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
        serde_json::from_value(crd).unwrap();
    kubefed::kube::apply::apply_crds(client, &[crd], Duration::from_secs(60))
        .await
        .unwrap();
}

fn ar(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: if group.is_empty() {
            version.into()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// Every type of the issue, enabled and placed in the host and a remote member: the copy
/// appears in both, managed, and the federated object reports Propagation True.
async fn every_type_propagates_to_the_host_as_to_a_member(host: &kube::Client) {
    let member = common::client("cluster2").await;
    for c in [host, &member] {
        crd(c, "Widget", "widgets", "Namespaced").await;
        crd(c, "Gadget", "gadgets", "Cluster").await;
    }
    // (enable argument, target, namespaced, template)
    let types: Vec<(&str, ApiResource, bool, serde_json::Value)> = vec![
        (
            "configmaps",
            ar("", "v1", "ConfigMap", "configmaps"),
            true,
            json!({"data": {"k": "v"}}),
        ),
        (
            "secrets",
            ar("", "v1", "Secret", "secrets"),
            true,
            json!({"stringData": {"k": "v"}}),
        ),
        (
            "serviceaccounts",
            ar("", "v1", "ServiceAccount", "serviceaccounts"),
            true,
            json!({}),
        ),
        (
            "services",
            ar("", "v1", "Service", "services"),
            true,
            json!({"spec": {"ports": [{"port": 80}], "selector": {"app": "x"}}}),
        ),
        (
            "deployments.apps",
            ar("apps", "v1", "Deployment", "deployments"),
            true,
            json!({"spec": {"replicas": 1, "selector": {"matchLabels": {"app": "x"}},
                "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "pause"}]}}}}),
        ),
        (
            "jobs.batch",
            ar("batch", "v1", "Job", "jobs"),
            true,
            json!({"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "pause"}]}}}}),
        ),
        (
            "replicasets.apps",
            ar("apps", "v1", "ReplicaSet", "replicasets"),
            true,
            json!({"spec": {"replicas": 1, "selector": {"matchLabels": {"app": "x"}},
                "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "pause"}]}}}}),
        ),
        (
            "clusterroles.rbac.authorization.k8s.io",
            ar(
                "rbac.authorization.k8s.io",
                "v1",
                "ClusterRole",
                "clusterroles",
            ),
            false,
            json!({"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
        ),
        (
            "widgets.example.com",
            ar("example.com", "v1", "Widget", "widgets"),
            true,
            json!({"spec": {"size": 1}}),
        ),
        (
            "gadgets.example.com",
            ar("example.com", "v1", "Gadget", "gadgets"),
            false,
            json!({"spec": {"size": 2}}),
        ),
    ];
    for (t, _, _, _) in &types {
        let out = common::kubefed_fed(&["enable", t, "--host-cluster-context", "cluster1"]);
        assert!(
            out.status.success(),
            "enable {t}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    kubefed::kube::apply::ensure_namespace(host, "alltypes")
        .await
        .unwrap();
    let both = json!({"clusters": [{"name": "cluster1"}, {"name": "cluster2"}]});
    fed_ns(host, "alltypes")
        .patch(
            "alltypes",
            &PatchParams::apply("test").force(),
            &Patch::Apply(json!({
            "apiVersion": "types.kubefed.io/v1beta1", "kind": "FederatedNamespace",
            "metadata": {"name": "alltypes", "namespace": "alltypes"},
            "spec": {"placement": both}})),
        )
        .await
        .unwrap();
    for (_, target, namespaced, template) in &types {
        let fed_kind = format!("Federated{}", target.kind);
        let fed = ar(
            "types.kubefed.io",
            "v1beta1",
            &fed_kind,
            &format!("federated{}", target.plural),
        );
        let name = format!("t-{}", target.kind.to_lowercase());
        let mut obj = json!({"apiVersion": "types.kubefed.io/v1beta1", "kind": fed_kind,
            "metadata": {"name": name},
            "spec": {"template": template, "placement": both}});
        let api: Api<DynamicObject> = if *namespaced {
            obj["metadata"]["namespace"] = json!("alltypes");
            Api::namespaced_with(host.clone(), "alltypes", &fed)
        } else {
            Api::all_with(host.clone(), &fed)
        };
        api.patch(
            &name,
            &PatchParams::apply("test").force(),
            &Patch::Apply(obj),
        )
        .await
        .unwrap();
        for (cluster, client) in [("cluster1", host), ("cluster2", &member)] {
            let targets: Api<DynamicObject> = if *namespaced {
                Api::namespaced_with(client.clone(), "alltypes", target)
            } else {
                Api::all_with(client.clone(), target)
            };
            common::eventually(
                T,
                &format!("{} {name} in {cluster}", target.kind),
                || async {
                    let o = targets.get_opt(&name).await.ok()??;
                    (o.metadata.labels?.get("kubefed.io/managed")? == "true").then_some(())
                },
            )
            .await;
        }
        common::eventually(T, &format!("{fed_kind} {name} propagated"), || async {
            let o = api.get_opt(&name).await.ok()??;
            let c = o.data["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "Propagation")?
                .clone();
            (c["status"] == "True").then_some(())
        })
        .await;
    }
}

#[tokio::test]
async fn the_host_as_member_receives_every_type_and_keeps_its_namespaces() {
    let host = common::install_host().await;
    Api::<api::core::KubeFedConfig>::namespaced(host.clone(), NS)
        .patch(
            "kubefed",
            &PatchParams::apply("test").force(),
            &Patch::Apply(json!({"apiVersion": "core.kubefed.io/v1beta1", "kind": "KubeFedConfig",
                "metadata": {"name": "kubefed", "namespace": NS},
                "spec": {"scope": "Cluster", "clusterHealthCheck": {"period": "1s", "timeout": "1s"}}})),
        )
        .await
        .unwrap();
    common::join("cluster1", "cluster1");
    common::join("cluster2", "cluster2");
    let out = common::kubefed_fed(&["enable", "namespaces", "--host-cluster-context", "cluster1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let host_nss: Api<Namespace> = Api::all(host.clone());
    let member_nss: Api<Namespace> = Api::all(common::client("cluster2").await);
    kubefed::kube::apply::ensure_namespace(&host, "r3")
        .await
        .unwrap();
    let uid = host_nss.get("r3").await.unwrap().metadata.uid.unwrap();

    let kc = common::federation().state.kubeconfig.display().to_string();
    let _cm = common::Daemon::start(
        &[
            "controller-manager",
            "--kubeconfig",
            &kc,
            "--context",
            "cluster1",
            "--metrics-listen",
            &common::free_addr(),
        ],
        "controller-manager",
    );

    every_type_propagates_to_the_host_as_to_a_member(&host).await;

    // Placed in the host and a member: the host's namespace is adopted (labelled).
    let fns = fed_ns(&host, "r3");
    placement(&fns, "r3", &["cluster1", "cluster2"]).await;
    common::eventually(T, "the host namespace labelled managed", || async {
        managed(&host_nss.get("r3").await.ok()?).then_some(())
    })
    .await;
    common::eventually(T, "r3 in cluster2", || async {
        member_nss.get_opt("r3").await.ok()?.map(|_| ())
    })
    .await;

    // The host leaves the placement: only its label goes.
    placement(&fns, "r3", &["cluster2"]).await;
    common::eventually(
        T,
        "the managed label removed from the host namespace",
        || async { (!managed(&host_nss.get("r3").await.ok()?)).then_some(()) },
    )
    .await;
    // Watched a while: nothing else happens to it.
    for _ in 0..10 {
        host_namespace_intact(&host_nss, "r3", &uid).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(member_nss.get_opt("r3").await.unwrap().is_some());

    // Back into the placement, then the FederatedNamespace deleted: the member's copy
    // goes, the host's namespace stays and loses its label.
    placement(&fns, "r3", &["cluster1", "cluster2"]).await;
    common::eventually(T, "the host namespace labelled again", || async {
        managed(&host_nss.get("r3").await.ok()?).then_some(())
    })
    .await;
    fns.delete("r3", &DeleteParams::default()).await.unwrap();
    let mut terminating = common::eventually(T, "r3 terminating in cluster2", || async {
        member_nss
            .get_opt("r3")
            .await
            .ok()?
            .filter(|n| n.metadata.deletion_timestamp.is_some())
    })
    .await;
    // No kube-controller-manager runs here: do what its namespace controller would, for
    // an empty namespace.
    terminating.spec = Some(Default::default());
    member_nss
        .replace_subresource("finalize", "r3", &Default::default(), &terminating)
        .await
        .unwrap();
    common::eventually(T, "the FederatedNamespace gone", || async {
        fns.get_opt("r3").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(member_nss.get_opt("r3").await.unwrap().is_none());
    let ns = host_namespace_intact(&host_nss, "r3", &uid).await;
    assert!(
        !managed(&ns),
        "the label is handed back: {:?}",
        ns.metadata.labels
    );

    // Unjoining the host leaves its namespaces alone, the KubeFed one included.
    let out = common::kubefed_fed(&[
        "unjoin",
        "cluster1",
        "--cluster-context",
        "cluster1",
        "--host-cluster-context",
        "cluster1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    host_namespace_intact(&host_nss, "r3", &uid).await;
    let kf = host_nss.get(NS).await.unwrap();
    assert!(
        kf.metadata.deletion_timestamp.is_none(),
        "{NS} is terminating"
    );
}
