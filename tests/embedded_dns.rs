//! `kubefed controller-manager --dns-listen`: the DNSEndpoint names served in-process with
//! no etcd. Zones follow the Domains (REFUSED before a Domain exists, its nameServer as
//! NS after); an endpoint change is in the next answer; a standby replica answers too;
//! an event that changes nothing served keeps the index (its SOA serial).

mod common;

use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use kubefed::api::multiclusterdns::{DNSEndpoint, Domain};
use kubefed::api::{self, DEFAULT_KUBEFED_NAMESPACE as NS};
use kubefed::kube::apply as kubeutil;
use serde_json::json;

async fn endpoint(api: &Api<DNSEndpoint>, ip: &str) {
    let ep = json!({"apiVersion": "multiclusterdns.kubefed.io/v1alpha1", "kind": "DNSEndpoint",
        "metadata": {"name": "service-web", "namespace": "embedded"},
        "spec": {"endpoints": [{"dnsName": "web.embedded.test", "recordType": "A", "recordTTL": 30, "targets": [ip]},
                               {"dnsName": "web6.embedded.test", "recordType": "AAAA", "targets": ["2001:db8::1"]}]}});
    api.patch(
        "service-web",
        &PatchParams::apply("test").force(),
        &Patch::Apply(ep),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn embedded_server_follows_domains_and_endpoints() {
    let host = common::client(common::host()).await;
    kubeutil::ensure_namespace(&host, NS).await.unwrap();
    kubeutil::ensure_namespace(&host, "embedded").await.unwrap();
    kubeutil::apply_crds(&host, &api::crds(), Duration::from_secs(60))
        .await
        .unwrap();
    let eps: Api<DNSEndpoint> = Api::namespaced(host.clone(), "embedded");
    endpoint(&eps, "10.1.0.1").await;

    let kc = common::federation().state.kubeconfig.display().to_string();
    let (dns_a, dns_b) = (common::free_addr(), common::free_addr());
    let start = |id: &str, dns: &str| {
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
                "--dns-listen",
                dns,
            ],
            id,
        )
    };
    let _a = start("embedded-a", &dns_a);
    let _b = start("embedded-b", &dns_b);

    // No Domain yet: the name is outside every zone.
    common::eventually(
        Duration::from_secs(30),
        "REFUSED before the Domain",
        || async {
            common::dig(&dns_a, &["web.embedded.test", "A"])
                .contains("status: REFUSED")
                .then_some(())
        },
    )
    .await;

    let dom = json!({"apiVersion": "multiclusterdns.kubefed.io/v1alpha1", "kind": "Domain",
        "metadata": {"name": "embedded", "namespace": NS}, "domain": "embedded.test", "nameServer": "ns1.embedded.test"});
    Api::<Domain>::namespaced(host.clone(), NS)
        .patch(
            "embedded",
            &PatchParams::apply("test").force(),
            &Patch::Apply(dom),
        )
        .await
        .unwrap();
    for dns in [&dns_a, &dns_b] {
        common::eventually(
            Duration::from_secs(30),
            "the A record on both replicas",
            || async {
                (common::dig(dns, &["web.embedded.test", "A", "+short"]).trim() == "10.1.0.1")
                    .then_some(())
            },
        )
        .await;
    }
    assert_eq!(
        common::dig(&dns_a, &["web6.embedded.test", "AAAA", "+short"]).trim(),
        "2001:db8::1"
    );
    assert_eq!(
        common::dig(&dns_a, &["embedded.test", "NS", "+short"]).trim(),
        "ns1.embedded.test."
    );
    let nx = common::dig(&dns_a, &["nothing.embedded.test", "A"]);
    assert!(
        nx.contains("status: NXDOMAIN") && nx.contains("SOA"),
        "{nx}"
    );

    // A label changes nothing served: no new snapshot. It is processed before the next
    // change (one watch, in order), which then moves the serial by exactly one.
    let serial = || {
        let soa = common::dig(&dns_a, &["embedded.test", "SOA", "+short"]);
        let fields: Vec<&str> = soa.split_whitespace().collect();
        fields
            .get(2)
            .and_then(|s| s.parse::<u32>().ok())
            .unwrap_or_else(|| panic!("no SOA serial in {soa:?}"))
    };
    let before = serial();
    eps.patch(
        "service-web",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
    )
    .await
    .unwrap();
    // Longer than the loop's 10 ms debounce, so the label and the change below are two
    // rebuilds if the label caused one.
    tokio::time::sleep(Duration::from_millis(500)).await;
    endpoint(&eps, "10.1.0.2").await;
    common::eventually(Duration::from_secs(30), "the updated address", || async {
        (common::dig(&dns_a, &["web.embedded.test", "A", "+short"]).trim() == "10.1.0.2")
            .then_some(())
    })
    .await;
    assert_eq!(
        serial(),
        before + 1,
        "only the address change made a new index"
    );
}
