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

/// The shared federation's kubeconfig as YAML, with `edit` applied to it.
fn kubeconfig_variant(edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let path = &common::federation().state.kubeconfig;
    let mut doc: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut doc);
    serde_saphyr::to_string(&doc).unwrap()
}

fn keep_named(doc: &mut serde_json::Value, list: &str, keep: impl Fn(&str) -> bool) {
    doc[list]
        .as_array_mut()
        .unwrap()
        .retain(|e| keep(e["name"].as_str().unwrap()));
}

#[tokio::test]
async fn a_kubeconfig_list_is_merged_first_file_winning() {
    common::install_host().await;
    let dir = common::unique_dir("kubeconfig-list");
    // a: only cluster1, the current context.
    let a = kubeconfig_variant(|d| {
        for list in ["clusters", "users", "contexts"] {
            keep_named(d, list, |n| n.starts_with("cluster1"));
        }
        d["current-context"] = "cluster1".into();
    });
    // b: every cluster, but its cluster1 points at a dead port and its current context is
    // a dead cluster, so anything read from b for those breaks the command.
    let b = kubeconfig_variant(|d| {
        for c in d["clusters"].as_array_mut().unwrap() {
            if c["name"] == "cluster1" {
                c["cluster"]["server"] = "https://127.0.0.1:1".into();
            }
        }
        let mut dead = d["contexts"][0].clone();
        dead["name"] = "dead".into();
        d["contexts"].as_array_mut().unwrap().push(dead);
        d["current-context"] = "dead".into();
    });
    std::fs::write(dir.join("a"), a).unwrap();
    std::fs::write(dir.join("b"), b).unwrap();
    let list = std::env::join_paths([dir.join("absent"), dir.join("a"), dir.join("b")]).unwrap();
    let kubefed = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubefed"))
            .args(args)
            .env("KUBECONFIG", &list)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubefed {args:?} with KUBECONFIG={list:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    // cluster1 from a, cluster3 from b.
    let ns = ["--kubefed-namespace", "kf-list"];
    kubefed(
        &[
            &[
                "join",
                "listed",
                "--cluster-context",
                "cluster3",
                "--host-cluster-context",
                "cluster1",
            ][..],
            &ns,
        ]
        .concat(),
    );
    let host = common::client("cluster1").await;
    let c = Api::<KubeFedCluster>::namespaced(host, "kf-list")
        .get("listed")
        .await
        .unwrap();
    assert_eq!(
        c.spec.api_endpoint,
        common::federation().state.clusters[2]
            .api_url
            .trim_end_matches('/')
    );
    // No context named: a's current-context, not b's.
    let yaml = kubefed(&["enable", "configmaps", "-o", "yaml"]);
    assert!(yaml.contains("kind: FederatedTypeConfig"), "{yaml}");
    kubefed(
        &[
            &[
                "unjoin",
                "listed",
                "--cluster-context",
                "cluster3",
                "--host-cluster-context",
                "cluster1",
            ][..],
            &ns,
        ]
        .concat(),
    );
}

/// `kubefed ARGS --kubeconfig FILE --kubefed-namespace NS`; (success, stdout, stderr).
/// Each test has its own KubeFed namespace: unjoin deletes the member namespace that join
/// created, and with no namespace controller here it would stay Terminating under the
/// other tests' feet.
fn kubefed_with(kubeconfig: &std::path::Path, ns: &str, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubefed"))
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--kubefed-namespace", ns])
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A kubeconfig with the shared federation's contexts plus `extra` (name, copied from
/// context), current context cluster1.
fn kubeconfig_with(name: &str, extra: &[(&str, &str)]) -> std::path::PathBuf {
    let text = kubeconfig_variant(|d| {
        let contexts = d["contexts"].as_array_mut().unwrap();
        for (new, from) in extra {
            let mut c = contexts
                .iter()
                .find(|c| c["name"] == *from)
                .unwrap()
                .clone();
            c["name"] = (*new).into();
            contexts.push(c);
        }
        d["current-context"] = "cluster1".into();
    });
    let path = common::unique_dir("kubeconfig").join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn join_defaults_follow_kubefedctl_and_names_may_be_subdomains() {
    let host = common::install_host().await;
    let arn = "arn:aws:eks:eu-west-1:123456789012:cluster/host";
    let kc = kubeconfig_with("defaults", &[("prod.eu", "cluster2"), (arn, "cluster1")]);
    // No contexts named: the host is the current context, the member the context named
    // like the cluster.
    let (ok, out, err) = kubefed_with(&kc, "kf-defaults", &["join", "prod.eu"]);
    assert!(ok, "{err}");
    assert!(out.contains("cluster prod.eu joined"), "{out}");
    let member = common::client("cluster2").await;
    assert!(
        Api::<ServiceAccount>::namespaced(member.clone(), "kf-defaults")
            .get_opt("prod.eu-cluster1")
            .await
            .unwrap()
            .is_some()
    );
    let clusters: Api<KubeFedCluster> = Api::namespaced(host.clone(), "kf-defaults");
    assert!(clusters.get_opt("prod.eu").await.unwrap().is_some());

    // A host context that is no valid object name needs --host-cluster-name.
    let (ok, _, err) = kubefed_with(
        &kc,
        "kf-defaults",
        &[
            "join",
            "eks",
            "--cluster-context",
            "cluster3",
            "--host-cluster-context",
            arn,
        ],
    );
    assert!(!ok);
    assert!(
        err.contains("--host-cluster-name") && err.trim().lines().count() == 1,
        "{err}"
    );
    let (ok, _, err) = kubefed_with(
        &kc,
        "kf-defaults",
        &[
            "join",
            "eks",
            "--cluster-context",
            "cluster3",
            "--host-cluster-context",
            arn,
            "--host-cluster-name",
            "host",
        ],
    );
    assert!(ok, "{err}");
    let member3 = common::client("cluster3").await;
    assert!(
        Api::<ClusterRoleBinding>::all(member3.clone())
            .get_opt("kubefed-controller-manager:eks-host")
            .await
            .unwrap()
            .is_some()
    );

    // --error-on-existing refuses to touch what is there.
    let (ok, _, err) = kubefed_with(
        &kc,
        "kf-defaults",
        &["join", "prod.eu", "--error-on-existing"],
    );
    assert!(!ok);
    assert!(
        err.contains("already exists (--error-on-existing)"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    for args in [
        &["unjoin", "prod.eu"][..],
        &[
            "unjoin",
            "eks",
            "--cluster-context",
            "cluster3",
            "--host-cluster-context",
            arn,
            "--host-cluster-name",
            "host",
        ],
    ] {
        let (ok, _, err) = kubefed_with(&kc, "kf-defaults", args);
        assert!(ok, "{args:?}: {err}");
    }
    assert!(clusters.get_opt("prod.eu").await.unwrap().is_none());
    assert!(clusters.get_opt("eks").await.unwrap().is_none());
    assert!(
        Api::<ClusterRoleBinding>::all(member3)
            .get_opt("kubefed-controller-manager:eks-host")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn dry_run_contacts_no_server_and_changes_nothing() {
    let host = common::install_host().await;
    // Every server of this kubeconfig is dead: a dry run must not notice.
    let text = kubeconfig_variant(|d| {
        for c in d["clusters"].as_array_mut().unwrap() {
            c["cluster"]["server"] = "https://127.0.0.1:1".into();
        }
        d["current-context"] = "cluster1".into();
    });
    let kc = common::unique_dir("kubeconfig-dead").join("dead");
    std::fs::write(&kc, text).unwrap();
    let (ok, out, err) = kubefed_with(
        &kc,
        NS,
        &["join", "dry", "--cluster-context", "cluster2", "--dry-run"],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("ServiceAccount kube-federation-system/dry-cluster1")
            && out.contains("KubeFedCluster kube-federation-system/dry"),
        "{out}"
    );
    let (ok, out, err) = kubefed_with(
        &kc,
        NS,
        &[
            "unjoin",
            "dry",
            "--cluster-context",
            "cluster2",
            "--dry-run",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("unjoin would delete"), "{out}");
    let clusters: Api<KubeFedCluster> = Api::namespaced(host, NS);
    assert!(clusters.get_opt("dry").await.unwrap().is_none());
}

#[tokio::test]
async fn unjoin_keeps_the_host_side_when_the_member_is_gone_unless_forced() {
    let host = common::install_host().await;
    let shared = common::federation().state.kubeconfig.clone();
    let join = [
        "join",
        "gone",
        "--cluster-context",
        "cluster3",
        "--host-cluster-context",
        "cluster1",
    ];
    let (ok, _, err) = kubefed_with(&shared, "kf-gone", &join);
    assert!(ok, "{err}");
    // The member's API server is unreachable through this kubeconfig.
    let text = kubeconfig_variant(|d| {
        for c in d["clusters"].as_array_mut().unwrap() {
            if c["name"] == "cluster3" {
                c["cluster"]["server"] = "https://127.0.0.1:1".into();
            }
        }
    });
    let kc = common::unique_dir("kubeconfig-gone").join("gone");
    std::fs::write(&kc, text).unwrap();
    let clusters: Api<KubeFedCluster> = Api::namespaced(host.clone(), "kf-gone");
    let args = [
        "unjoin",
        "gone",
        "--cluster-context",
        "cluster3",
        "--host-cluster-context",
        "cluster1",
    ];
    let (ok, _, err) = kubefed_with(&kc, "kf-gone", &args);
    assert!(!ok);
    assert!(
        err.contains("--force") && err.trim().lines().count() == 1,
        "{err}"
    );
    assert!(
        clusters.get_opt("gone").await.unwrap().is_some(),
        "host side kept"
    );

    let mut forced = args.to_vec();
    forced.push("--force");
    let (ok, out, err) = kubefed_with(&kc, "kf-gone", &forced);
    assert!(ok, "{err}");
    assert!(out.contains("unjoined (forced)"), "{out}");
    assert!(
        err.contains("warning:") && err.contains("gone-cluster1"),
        "{err}"
    );
    assert!(clusters.get_opt("gone").await.unwrap().is_none());
    // What --force left behind is what the warning named; clean it for the other tests.
    let (ok, _, err) = kubefed_with(&shared, "kf-gone", &join);
    assert!(ok, "{err}");
    let (ok, _, err) = kubefed_with(&shared, "kf-gone", &args);
    assert!(ok, "{err}");
}

#[tokio::test]
async fn a_host_without_the_crds_and_api_errors_are_one_line() {
    common::install_host().await;
    // cluster3 never had the kubefed CRDs installed.
    let out = common::kubefed_fed(&[
        "join",
        "nocrd",
        "--cluster-context",
        "cluster2",
        "--host-cluster-context",
        "cluster3",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has no KubeFedCluster CRD"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // An API server refusal is its message, not a Status dump.
    let out = common::kubefed_fed(&[
        "join",
        "badns",
        "--cluster-context",
        "cluster2",
        "--host-cluster-context",
        "cluster1",
        "--kubefed-namespace",
        "Not_A_Namespace",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("Status {") && err.trim().lines().count() == 1,
        "{err}"
    );
    assert!(err.len() < 400, "{} characters: {err}", err.len());
}
