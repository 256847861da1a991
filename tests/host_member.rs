//! The host joined as a member too (seed 004: "Host Cluster也可以是Member Cluster"): the
//! sync controller never deletes the host's own namespace, which holds the federated
//! objects themselves. Taking the host out of a FederatedNamespace's placement, deleting
//! the FederatedNamespace and unjoining the host only remove the managed label there,
//! as KubeFed does; a remote member's copy is deleted as usual.

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

#[tokio::test]
async fn the_host_as_member_keeps_its_namespaces() {
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
