//! The sync engine on a host and two members, following seed 000: FederatedNamespace,
//! FederatedDeployment with a replicas override, FederatedService; member-side drift is
//! undone, updates propagate, placement changes remove copies, deletion removes or (with
//! the orphaning annotation) keeps them without the managed label; a stray managed label
//! is handed back; seed 004's propagation reasons for an object that already exists (no
//! adoption) and a bad override path.

mod common;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use kubefed::api::{self, DEFAULT_KUBEFED_NAMESPACE as NS};
use kubefed::kube::apply as kubeutil;
use serde_json::{Value, json};

fn apply() -> PatchParams {
    PatchParams::apply("test").force()
}

fn fed_api(host: &kube::Client, kind: &str, plural: &str) -> Api<DynamicObject> {
    let ar = ApiResource {
        group: "types.kubefed.io".into(),
        version: "v1beta1".into(),
        api_version: "types.kubefed.io/v1beta1".into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    Api::namespaced_with(host.clone(), "stars", &ar)
}

fn deployment(name: &str, replicas: i64, clusters: &[&str], overrides: Value) -> Value {
    json!({"apiVersion": "types.kubefed.io/v1beta1", "kind": "FederatedDeployment",
    "metadata": {"name": name, "namespace": "stars"},
    "spec": {
        "template": {"metadata": {"labels": {"app": "httpbin"}}, "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "httpbin"}},
            "template": {"metadata": {"labels": {"app": "httpbin"}},
                "spec": {"containers": [{"name": "httpbin", "image": "docker.io/kennethreitz/httpbin", "ports": [{"containerPort": 80}]}]}}}},
        "placement": {"clusters": clusters.iter().map(|c| json!({"name": c})).collect::<Vec<_>>()},
        "overrides": overrides
    }})
}

async fn replicas(cluster: &str, name: &str) -> Option<i32> {
    let d: Api<Deployment> = Api::namespaced(common::client(cluster).await, "stars");
    d.get_opt(name)
        .await
        .ok()
        .flatten()
        .and_then(|d| d.spec.and_then(|s| s.replicas))
}

async fn cluster_status(api: &Api<DynamicObject>, name: &str, cluster: &str) -> Option<String> {
    let o = api.get_opt(name).await.ok()??;
    let clusters = o.data["status"]["clusters"].as_array()?.clone();
    clusters
        .iter()
        .find(|c| c["name"] == cluster)
        .map(|c| c["status"].as_str().unwrap_or("OK").to_string())
}

#[tokio::test]
async fn seed_000_walkthrough_propagates_and_reports() {
    let host = common::client(common::host()).await;
    kubeutil::ensure_namespace(&host, NS).await.unwrap();
    kubeutil::apply_crds(&host, &api::crds(), Duration::from_secs(60))
        .await
        .unwrap();
    Api::<api::core::KubeFedConfig>::namespaced(host.clone(), NS)
        .patch(
            "kubefed",
            &apply(),
            &Patch::Apply(json!({
            "apiVersion": "core.kubefed.io/v1beta1", "kind": "KubeFedConfig",
            "metadata": {"name": "kubefed", "namespace": NS},
            "spec": {"scope": "Cluster", "clusterHealthCheck": {"period": "1s", "timeout": "1s"},
                     "syncController": {"adoptResources": "Disabled"}}})),
        )
        .await
        .unwrap();
    for c in ["cluster2", "cluster3"] {
        let out = common::kubefed_fed(&[
            "join",
            c,
            "--cluster-context",
            c,
            "--host-cluster-context",
            "cluster1",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for t in ["namespaces", "deployments.apps", "services"] {
        let out = common::kubefed_fed(&["enable", t, "--host-cluster-context", "cluster1"]);
        assert!(
            out.status.success(),
            "enable {t}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    kubeutil::ensure_namespace(&host, "stars").await.unwrap();
    // An object that already exists in cluster2 and is not ours: no adoption.
    // (Its namespace carries the managed label, as if propagated earlier.)
    Api::<Namespace>::all(common::client("cluster2").await)
        .patch(
            "stars",
            &apply(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "stars", "labels": {"kubefed.io/managed": "true"}}})),
        )
        .await
        .unwrap();
    let pre = deployment("preexisting", 1, &[], json!([]))["spec"]["template"].clone();
    let mut pre = pre;
    pre["apiVersion"] = json!("apps/v1");
    pre["kind"] = json!("Deployment");
    pre["metadata"] = json!({"name": "preexisting", "namespace": "stars"});
    Api::<Deployment>::namespaced(common::client("cluster2").await, "stars")
        .patch("preexisting", &apply(), &Patch::Apply(pre))
        .await
        .unwrap();

    let fns = fed_api(&host, "FederatedNamespace", "federatednamespaces");
    fns.patch(
        "stars",
        &apply(),
        &Patch::Apply(
            json!({"apiVersion": "types.kubefed.io/v1beta1", "kind": "FederatedNamespace",
        "metadata": {"name": "stars", "namespace": "stars"},
        "spec": {"placement": {"clusters": [{"name": "cluster2"}, {"name": "cluster3"}]}}}),
        ),
    )
    .await
    .unwrap();
    let fdeps = fed_api(&host, "FederatedDeployment", "federateddeployments");
    let overrides = json!([{"clusterName": "cluster2", "clusterOverrides": [{"path": "/spec/replicas", "value": 2}]}]);
    fdeps
        .patch(
            "federated-xwings",
            &apply(),
            &Patch::Apply(deployment(
                "federated-xwings",
                1,
                &["cluster2", "cluster3"],
                overrides.clone(),
            )),
        )
        .await
        .unwrap();
    let fsvcs = fed_api(&host, "FederatedService", "federatedservices");
    fsvcs.patch("federated-antenna", &apply(), &Patch::Apply(json!({"apiVersion": "types.kubefed.io/v1beta1", "kind": "FederatedService",
        "metadata": {"name": "federated-antenna", "namespace": "stars"},
        "spec": {"template": {"metadata": {"labels": {"app": "httpbin"}},
                 "spec": {"ports": [{"name": "http", "port": 8000, "targetPort": 80}], "selector": {"app": "httpbin"}}},
                 "placement": {"clusters": [{"name": "cluster2"}, {"name": "cluster3"}]}}})))
        .await
        .unwrap();
    fdeps
        .patch(
            "preexisting",
            &apply(),
            &Patch::Apply(deployment("preexisting", 1, &["cluster2"], json!([]))),
        )
        .await
        .unwrap();
    let bad = json!([{"clusterName": "cluster2", "clusterOverrides": [{"op": "remove", "path": "/spec/no/such/field"}]}]);
    fdeps
        .patch(
            "bad-override",
            &apply(),
            &Patch::Apply(deployment("bad-override", 1, &["cluster2"], bad)),
        )
        .await
        .unwrap();

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
    let t = Duration::from_secs(60);

    // The namespace first, then its contents, with cluster2's override.
    for c in ["cluster2", "cluster3"] {
        common::eventually(t, &format!("namespace stars in {c}"), || async {
            let ns = Api::<Namespace>::all(common::client(c).await)
                .get_opt("stars")
                .await
                .ok()??;
            (ns.metadata.labels?.get("kubefed.io/managed")? == "true").then_some(())
        })
        .await;
    }
    common::eventually(t, "replicas 2 on cluster2", || async {
        (replicas("cluster2", "federated-xwings").await? == 2).then_some(())
    })
    .await;
    common::eventually(t, "replicas 1 on cluster3", || async {
        (replicas("cluster3", "federated-xwings").await? == 1).then_some(())
    })
    .await;
    for c in ["cluster2", "cluster3"] {
        common::eventually(t, &format!("service in {c}"), || async {
            Api::<Service>::namespaced(common::client(c).await, "stars")
                .get_opt("federated-antenna")
                .await
                .ok()?
                .map(|_| ())
        })
        .await;
    }
    common::eventually(t, "Propagation True", || async {
        let o = fdeps.get_opt("federated-xwings").await.ok()??;
        let c = o.data["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Propagation")?
            .clone();
        (c["status"] == "True").then_some(())
    })
    .await;

    // Seed 004's per-cluster reasons.
    common::eventually(t, "AlreadyExists", || async {
        (cluster_status(&fdeps, "preexisting", "cluster2").await? == "AlreadyExists").then_some(())
    })
    .await;
    common::eventually(t, "ApplyOverridesFailed", || async {
        (cluster_status(&fdeps, "bad-override", "cluster2").await? == "ApplyOverridesFailed")
            .then_some(())
    })
    .await;
    let bad = fdeps.get("bad-override").await.unwrap();
    let cond = &bad.data["status"]["conditions"][0];
    assert_eq!(
        (cond["status"].as_str(), cond["reason"].as_str()),
        (Some("False"), Some("CheckClusters"))
    );

    // A member-side delete is undone.
    Api::<Deployment>::namespaced(common::client("cluster3").await, "stars")
        .delete("federated-xwings", &DeleteParams::default())
        .await
        .unwrap();
    common::eventually(t, "the deleted copy back", || async {
        (replicas("cluster3", "federated-xwings").await? == 1).then_some(())
    })
    .await;

    // Field ownership (docs/sync.md): a member-side change to a field the template sets
    // is reverted; a field the template does not set is the member's and stays.
    let c3 = Api::<Deployment>::namespaced(common::client("cluster3").await, "stars");
    c3.patch(
        "federated-xwings",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"metadata": {"labels": {"member-tool": "yes"}}, "spec": {"replicas": 9}}),
        ),
    )
    .await
    .unwrap();
    common::eventually(t, "the member-side replicas reverted", || async {
        (replicas("cluster3", "federated-xwings").await? == 1).then_some(())
    })
    .await;
    let labels = c3
        .get("federated-xwings")
        .await
        .unwrap()
        .metadata
        .labels
        .unwrap_or_default();
    assert_eq!(labels.get("member-tool").map(String::as_str), Some("yes"));
    // A label removed from the template is removed from the members.
    let mut labelled = deployment(
        "federated-xwings",
        1,
        &["cluster2", "cluster3"],
        overrides.clone(),
    );
    labelled["spec"]["template"]["metadata"]["labels"]["tier"] = json!("front");
    fdeps
        .patch("federated-xwings", &apply(), &Patch::Apply(labelled))
        .await
        .unwrap();
    let label = |l: &'static str| {
        let c3 = c3.clone();
        async move {
            c3.get("federated-xwings")
                .await
                .ok()?
                .metadata
                .labels
                .unwrap_or_default()
                .get(l)
                .cloned()
        }
    };
    common::eventually(t, "the template's label in cluster3", || async {
        label("tier").await.filter(|v| v == "front").map(|_| ())
    })
    .await;
    fdeps
        .patch(
            "federated-xwings",
            &apply(),
            &Patch::Apply(deployment(
                "federated-xwings",
                1,
                &["cluster2", "cluster3"],
                overrides.clone(),
            )),
        )
        .await
        .unwrap();
    common::eventually(t, "the label gone with the template's", || async {
        label("tier").await.is_none().then_some(())
    })
    .await;
    assert_eq!(label("member-tool").await.as_deref(), Some("yes"));

    // An update propagates; the override still wins on cluster2.
    fdeps
        .patch(
            "federated-xwings",
            &apply(),
            &Patch::Apply(deployment(
                "federated-xwings",
                4,
                &["cluster2", "cluster3"],
                overrides.clone(),
            )),
        )
        .await
        .unwrap();
    common::eventually(t, "replicas 4 on cluster3", || async {
        (replicas("cluster3", "federated-xwings").await? == 4).then_some(())
    })
    .await;
    assert_eq!(replicas("cluster2", "federated-xwings").await, Some(2));

    // Leaving the placement removes the copy.
    fdeps
        .patch(
            "federated-xwings",
            &apply(),
            &Patch::Apply(deployment("federated-xwings", 4, &["cluster2"], overrides)),
        )
        .await
        .unwrap();
    common::eventually(t, "copy gone from cluster3", || async {
        replicas("cluster3", "federated-xwings")
            .await
            .is_none()
            .then_some(())
    })
    .await;

    // A ReplicaSchedulingPreference spreads 9 replicas 1:2 (seed 004: 3 and 6), as
    // placement and /spec/replicas overrides that win over the user's.
    fdeps.patch("scheduled", &apply(), &Patch::Apply(deployment("scheduled", 1, &["cluster2"],
        json!([{"clusterName": "cluster3", "clusterOverrides": [{"path": "/spec/replicas", "value": 7}]}]))))
        .await
        .unwrap();
    let rsp: Api<kubefed::api::scheduling::ReplicaSchedulingPreference> =
        Api::namespaced(host.clone(), "stars");
    rsp.patch("scheduled", &apply(), &Patch::Apply(json!({"apiVersion": "scheduling.kubefed.io/v1alpha1",
        "kind": "ReplicaSchedulingPreference", "metadata": {"name": "scheduled", "namespace": "stars"},
        "spec": {"targetKind": "FederatedDeployment", "totalReplicas": 9,
                 "clusters": {"cluster2": {"weight": 1}, "cluster3": {"weight": 2}}}})))
        .await
        .unwrap();
    common::eventually(t, "3 replicas on cluster2", || async {
        (replicas("cluster2", "scheduled").await? == 3).then_some(())
    })
    .await;
    common::eventually(t, "6 replicas on cluster3", || async {
        (replicas("cluster3", "scheduled").await? == 6).then_some(())
    })
    .await;

    // With rebalance, a cluster whose pods stay unschedulable is full at what it runs:
    // cluster3 runs 4 of its 6 and two pods have been unschedulable for two minutes
    // (what its scheduler and deployment controller would report). As in KubeFed, the 5
    // that do not fit there go to cluster2, and cluster3 keeps asking for its 2 overflow
    // replicas on top of the 4 (so they run once room appears): 5 and 6.
    rsp.patch(
        "scheduled",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"rebalance": true}})),
    )
    .await
    .unwrap();
    let c3 = common::client("cluster3").await;
    Api::<Deployment>::namespaced(c3.clone(), "stars")
        .patch_status(
            "scheduled",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 6, "readyReplicas": 4}})),
        )
        .await
        .unwrap();
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(c3.clone(), "stars");
    let since = (k8s_openapi::jiff::Timestamp::now()
        - k8s_openapi::jiff::SignedDuration::from_secs(120))
    .strftime("%Y-%m-%dT%H:%M:%SZ")
    .to_string();
    for i in 0..2 {
        let name = format!("scheduled-unschedulable-{i}");
        pods.patch(
            &name,
            &apply(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "stars", "labels": {"app": "httpbin"}},
            "spec": {"containers": [{"name": "c", "image": "pause"}]}})),
        )
        .await
        .unwrap();
        pods.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                            "message": "0/1 nodes are available", "lastTransitionTime": since}]}})),
        )
        .await
        .unwrap();
    }
    common::eventually(t, "replicas moved off the full cluster", || async {
        (replicas("cluster2", "scheduled").await? == 5
            && replicas("cluster3", "scheduled").await? == 6)
            .then_some(())
    })
    .await;
    for i in 0..2 {
        pods.delete(
            &format!("scheduled-unschedulable-{i}"),
            &DeleteParams::default(),
        )
        .await
        .unwrap();
    }

    // A selected cluster that is not Ready: ClusterNotReady, and its copy is left as is.
    common::federation()
        .fed
        .lock()
        .await
        .stop_cluster("cluster3")
        .unwrap();
    common::eventually(t, "ClusterNotReady", || async {
        (cluster_status(&fdeps, "scheduled", "cluster3")
            .await
            .as_deref()
            == Some("ClusterNotReady")
            || cluster_status(&fsvcs, "federated-antenna", "cluster3")
                .await
                .as_deref()
                == Some("ClusterNotReady"))
        .then_some(())
    })
    .await;
    common::federation()
        .fed
        .lock()
        .await
        .start_cluster("cluster3")
        .await
        .unwrap();
    common::eventually(t, "cluster3 OK again", || async {
        (cluster_status(&fsvcs, "federated-antenna", "cluster3").await? == "OK").then_some(())
    })
    .await;

    // Raw status collection: the type asks for it, the member objects' status shows up in
    // the federated object's status, and follows it.
    let ftcs: Api<api::core::FederatedTypeConfig> = Api::namespaced(host.clone(), NS);
    ftcs.patch(
        "services",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"statusCollection": "Enabled"}})),
    )
    .await
    .unwrap();
    for (c, ip) in [("cluster2", "192.0.2.2"), ("cluster3", "192.0.2.3")] {
        Api::<Service>::namespaced(common::client(c).await, "stars")
            .patch_status(
                "federated-antenna",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"conditions": [{"type": "Probed", "status": "True",
                    "reason": "Seen", "message": ip, "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})),
            )
            .await
            .unwrap();
    }
    common::eventually(t, "remoteStatus of both members", || async {
        let o = fsvcs.get_opt("federated-antenna").await.ok()??;
        let cs = o.data["status"]["clusters"].as_array()?.clone();
        let ip = |c: &str| {
            cs.iter().find(|x| x["name"] == c).and_then(|x| {
                x["remoteStatus"]["conditions"][0]["message"]
                    .as_str()
                    .map(str::to_string)
            })
        };
        (ip("cluster2")? == "192.0.2.2" && ip("cluster3")? == "192.0.2.3").then_some(())
    })
    .await;

    // Orphaning keeps the copies; plain deletion removes them.
    fsvcs
        .patch(
            "federated-antenna",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"kubefed.io/orphan": "true"}}})),
        )
        .await
        .unwrap();
    fsvcs
        .delete("federated-antenna", &DeleteParams::default())
        .await
        .unwrap();
    common::eventually(t, "federated service gone", || async {
        fsvcs
            .get_opt("federated-antenna")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    for c in ["cluster2", "cluster3"] {
        let svcs = Api::<Service>::namespaced(common::client(c).await, "stars");
        // Kept, and handed back: no longer labelled as managed (KubeFed's behaviour).
        common::eventually(
            t,
            &format!("orphaned service in {c} unlabelled"),
            || async {
                let svc = svcs.get_opt("federated-antenna").await.ok()??;
                let labels = svc.metadata.labels.unwrap_or_default();
                (!labels.contains_key("kubefed.io/managed")).then_some(())
            },
        )
        .await;
    }

    // A member object labelled managed that no federated object owns is handed back.
    let stray = Api::<Service>::namespaced(common::client("cluster3").await, "stars");
    stray.patch("stray", &apply(), &Patch::Apply(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "stray", "namespace": "stars", "labels": {"kubefed.io/managed": "true"}},
        "spec": {"ports": [{"port": 80}]}})))
        .await
        .unwrap();
    common::eventually(t, "the stray service unlabelled", || async {
        let svc = stray.get_opt("stray").await.ok()??;
        (!svc
            .metadata
            .labels
            .unwrap_or_default()
            .contains_key("kubefed.io/managed"))
        .then_some(())
    })
    .await;

    // Orphaning on, a cluster leaves the placement: its copy stays, unmanaged.
    fdeps
        .patch(
            "leaver",
            &apply(),
            &Patch::Apply(deployment(
                "leaver",
                1,
                &["cluster2", "cluster3"],
                json!([]),
            )),
        )
        .await
        .unwrap();
    common::eventually(t, "leaver in both members", || async {
        replicas("cluster2", "leaver").await?;
        replicas("cluster3", "leaver").await
    })
    .await;
    fdeps
        .patch(
            "leaver",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"kubefed.io/orphan": "true"}}})),
        )
        .await
        .unwrap();
    let mut leaving = deployment("leaver", 1, &["cluster3"], json!([]));
    leaving["metadata"]["annotations"] = json!({"kubefed.io/orphan": "true"});
    fdeps
        .patch("leaver", &apply(), &Patch::Apply(leaving))
        .await
        .unwrap();
    let c2 = Api::<Deployment>::namespaced(common::client("cluster2").await, "stars");
    common::eventually(t, "the copy left behind, unmanaged", || async {
        let d = c2.get_opt("leaver").await.ok()??;
        (!d.metadata
            .labels
            .unwrap_or_default()
            .contains_key("kubefed.io/managed"))
        .then_some(())
    })
    .await;
    fdeps
        .delete("federated-xwings", &DeleteParams::default())
        .await
        .unwrap();
    common::eventually(
        t,
        "deployment removed with its federated object",
        || async {
            replicas("cluster2", "federated-xwings")
                .await
                .is_none()
                .then_some(())
        },
    )
    .await;
}
