//! `kubefed join` / `unjoin` against real API servers: what they create on both sides,
//! that repeating them is harmless, that unjoin removes everything join created, and
//! that bad input is a one-line error that leaves nothing behind.

mod common;

use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::Api;
use kubefed::api::DEFAULT_KUBEFED_NAMESPACE as NS;
use kubefed::api::core::KubeFedCluster;

fn unjoin(name: &str, ctx: &str) {
    let out = common::kubefed_fed(&[
        "unjoin",
        name,
        "--cluster-context",
        ctx,
        "--host-cluster-context",
        common::host(),
    ]);
    assert!(
        out.status.success(),
        "unjoin {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn join_and_unjoin_are_idempotent_and_unjoin_removes_everything() {
    let host = common::install_host().await;
    let member = common::client("cluster2").await;
    common::join("extra", "cluster2");
    common::join("extra", "cluster2");
    let clusters: Api<KubeFedCluster> = Api::namespaced(host.clone(), NS);
    let c = clusters.get("extra").await.unwrap();
    assert!(c.spec.api_endpoint.starts_with("https://127.0.0.1:"));
    assert!(
        c.spec
            .ca_bundle
            .as_ref()
            .is_some_and(|b| String::from_utf8_lossy(&b.0).contains("BEGIN CERTIFICATE"))
    );
    let secret = Api::<Secret>::namespaced(host.clone(), NS)
        .get(&c.spec.secret_ref.name)
        .await
        .unwrap();
    assert!(secret.data.unwrap().contains_key("token"));
    let sa = "extra-cluster1";
    let role = "kubefed-controller-manager:extra-cluster1";
    assert!(
        Api::<ServiceAccount>::namespaced(member.clone(), NS)
            .get_opt(sa)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        Api::<ClusterRole>::all(member.clone())
            .get_opt(role)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        Api::<ClusterRoleBinding>::all(member.clone())
            .get_opt(role)
            .await
            .unwrap()
            .is_some()
    );

    unjoin("extra", "cluster2");
    unjoin("extra", "cluster2");
    assert!(clusters.get_opt("extra").await.unwrap().is_none());
    assert!(
        Api::<Secret>::namespaced(host.clone(), NS)
            .get_opt(&c.spec.secret_ref.name)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        Api::<ServiceAccount>::namespaced(member.clone(), NS)
            .get_opt(sa)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        Api::<ClusterRole>::all(member.clone())
            .get_opt(role)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        Api::<ClusterRoleBinding>::all(member.clone())
            .get_opt(role)
            .await
            .unwrap()
            .is_none()
    );
    // join created the member's kubefed namespace, so unjoin deletes it (no namespace
    // controller runs here to finish the deletion: it stays Terminating).
    let ns = Api::<Namespace>::all(member).get_opt(NS).await.unwrap();
    assert!(
        ns.is_none_or(|n| n.metadata.deletion_timestamp.is_some()),
        "member namespace left behind"
    );
}

#[tokio::test]
async fn join_refuses_bad_input_with_one_line_and_creates_nothing() {
    let host = common::install_host().await;
    let out = common::kubefed_fed(&[
        "join",
        "Bad_Name",
        "--cluster-context",
        "cluster2",
        "--host-cluster-context",
        "cluster1",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid cluster name \"Bad_Name\""), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let out = common::kubefed_fed(&[
        "join",
        "ghost",
        "--cluster-context",
        "nope",
        "--host-cluster-context",
        "cluster1",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("context \"nope\" not found"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let clusters: Api<KubeFedCluster> = Api::namespaced(host.clone(), NS);
    assert!(clusters.get_opt("ghost").await.unwrap().is_none());
}
