//! Two controller-managers against one host: exactly one holds the Lease; killing it
//! (SIGKILL, no release) lets the other take over within the lease duration; a graceful
//! stop releases the lease at once.

mod common;

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams};
use kubefed::api::{self, DEFAULT_KUBEFED_NAMESPACE as NS};
use kubefed::kube::apply as kubeutil;
use serde_json::json;

const LEASE: Duration = Duration::from_secs(4);

async fn holder(api: &Api<Lease>) -> Option<String> {
    api.get_opt("kubefed-controller-manager")
        .await
        .ok()??
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

#[tokio::test]
async fn one_leader_and_the_standby_takes_over_within_the_lease_duration() {
    let host = common::client(common::host()).await;
    kubeutil::ensure_namespace(&host, NS).await.unwrap();
    kubeutil::apply_crds(&host, &api::crds(), Duration::from_secs(60))
        .await
        .unwrap();
    let kfc = json!({
        "apiVersion": "core.kubefed.io/v1beta1", "kind": "KubeFedConfig",
        "metadata": {"name": "kubefed", "namespace": NS},
        "spec": {"scope": "Cluster", "leaderElect": {"leaseDuration": "4s", "renewDeadline": "3s", "retryPeriod": "500ms"}}
    });
    Api::<api::core::KubeFedConfig>::namespaced(host.clone(), NS)
        .patch(
            "kubefed",
            &PatchParams::apply("test").force(),
            &Patch::Apply(kfc),
        )
        .await
        .unwrap();

    let kc = common::federation().state.kubeconfig.display().to_string();
    let start = |id: &str| {
        common::Daemon::start(
            &[
                "controller-manager",
                "--kubeconfig",
                &kc,
                "--context",
                "cluster1",
                "--metrics-listen",
                &common::free_addr(),
                "--identity",
                id,
            ],
            id,
        )
    };
    let mut a = start("cm-a");
    let leases: Api<Lease> = Api::namespaced(host.clone(), NS);
    common::eventually(Duration::from_secs(30), "cm-a leads", || async {
        (holder(&leases).await.as_deref() == Some("cm-a")).then_some(())
    })
    .await;
    let mut b = start("cm-b");
    // b stays a standby while a renews.
    common::eventually(Duration::from_secs(30), "cm-b waiting", || async {
        b.log_text()
            .contains("waiting for leadership")
            .then_some(())
    })
    .await;
    assert_eq!(holder(&leases).await.as_deref(), Some("cm-a"));
    assert!(
        !b.log_text().contains("acquired leadership"),
        "{}",
        b.log_text()
    );

    // A crash: no release, so b must wait for the lease to expire, and no longer.
    a.kill();
    let killed = Instant::now();
    common::eventually(Duration::from_secs(30), "cm-b leads", || async {
        (holder(&leases).await.as_deref() == Some("cm-b")).then_some(())
    })
    .await;
    let took = killed.elapsed();
    assert!(
        took <= LEASE + Duration::from_secs(3),
        "takeover took {took:?}"
    );

    // A graceful stop releases the lease and exits 0.
    let status = b.terminate();
    assert!(status.success(), "{}", b.log_text());
    assert_eq!(holder(&leases).await, None);
}
