//! The skydns writer end to end: DNSEndpoints in the host become etcd keys in the
//! ExternalDNS coredns layout, `kubefed dns-server` answers them over real DNS (dig),
//! another writer's keys are never touched, removed targets disappear, a restart writes
//! nothing, and a host API server that goes away does not empty etcd (the writer stops
//! with the lease and resumes with it, in the same process).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{Client, GetOptions};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kubefed::api::multiclusterdns::DNSEndpoint;
use kubefed::api::{self, DEFAULT_KUBEFED_NAMESPACE as NS};
use kubefed::kube::apply as kubeutil;
use serde_json::json;

const APP_NS: &str = "bridge";

fn dig(addr: &str, name: &str, qtype: &str) -> Vec<String> {
    let mut v: Vec<String> = common::dig(addr, &[name, qtype, "+short"])
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

async fn skydns(etcd: &mut Client) -> BTreeMap<String, (String, i64)> {
    let r = etcd
        .get("/skydns/", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    r.kvs()
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(kv.key()).into_owned(),
                (
                    String::from_utf8_lossy(kv.value()).into_owned(),
                    kv.mod_revision(),
                ),
            )
        })
        .collect()
}

async fn put_endpoint(api: &Api<DNSEndpoint>, targets: &[&str]) {
    let ep = json!({"apiVersion": "multiclusterdns.kubefed.io/v1alpha1", "kind": "DNSEndpoint",
    "metadata": {"name": "service-a", "namespace": APP_NS},
    "spec": {"endpoints": [
        {"dnsName": "a.example.com", "recordType": "A", "recordTTL": 60, "targets": targets},
        {"dnsName": "alias.example.com", "recordType": "CNAME", "recordTTL": 60, "targets": ["a.example.com"]}
    ]}});
    api.patch(
        "service-a",
        &PatchParams::apply("test").force(),
        &Patch::Apply(ep),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn dns_endpoints_are_written_to_etcd_and_served() {
    let host = common::client(common::host()).await;
    kubeutil::ensure_namespace(&host, NS).await.unwrap();
    kubeutil::ensure_namespace(&host, APP_NS).await.unwrap();
    kubeutil::apply_crds(&host, &api::crds(), Duration::from_secs(60))
        .await
        .unwrap();
    let shared = common::federation();
    let etcd_url = shared.state.etcd.url.clone();
    let mut etcd = Client::connect([etcd_url.as_str()], None).await.unwrap();
    // Another writer's records: one on a name we also write, one of its own.
    etcd.put(
        "/skydns/com/example/a/foreign",
        r#"{"host":"192.0.2.9"}"#,
        None,
    )
    .await
    .unwrap();
    etcd.put(
        "/skydns/com/example/other/x",
        r#"{"host":"192.0.2.1"}"#,
        None,
    )
    .await
    .unwrap();

    let eps: Api<DNSEndpoint> = Api::namespaced(host.clone(), APP_NS);
    put_endpoint(&eps, &["10.0.0.1", "10.0.0.2"]).await;

    let kc = shared.state.kubeconfig.display().to_string();
    let cm_args = |m: &str| {
        vec![
            "controller-manager".to_string(),
            "--kubeconfig".into(),
            kc.clone(),
            "--context".into(),
            "cluster1".into(),
            "--metrics-listen".into(),
            m.to_string(),
            "--etcd-endpoints".into(),
            etcd_url.clone(),
        ]
    };
    let metrics = common::free_addr();
    let args = cm_args(&metrics);
    let mut cm = common::Daemon::start(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        "controller-manager",
    );
    let dns = common::free_addr();
    let _server = common::Daemon::start(
        &[
            "dns-server",
            "--zone",
            "example.com",
            "--etcd-endpoints",
            &etcd_url,
            "--listen",
            &dns,
        ],
        "dns-server",
    );

    common::eventually(
        Duration::from_secs(60),
        "both targets and the foreign one served",
        || async {
            (dig(&dns, "a.example.com", "A") == ["10.0.0.1", "10.0.0.2", "192.0.2.9"]).then_some(())
        },
    )
    .await;
    assert_eq!(dig(&dns, "alias.example.com", "CNAME"), ["a.example.com."]);
    let keys = skydns(&mut etcd).await;
    let ours: Vec<_> = keys
        .iter()
        .filter(|(k, _)| k.starts_with("/skydns/com/example/a/") && !k.ends_with("/foreign"))
        .collect();
    assert_eq!(ours.len(), 2, "{keys:?}");
    assert!(
        ours.iter().all(|(_, (v, _))| v.contains("\"ttl\":60")),
        "{ours:?}"
    );

    // A target goes: its key goes; the other writer's keys stay.
    put_endpoint(&eps, &["10.0.0.1"]).await;
    common::eventually(Duration::from_secs(30), "10.0.0.2 gone", || async {
        (dig(&dns, "a.example.com", "A") == ["10.0.0.1", "192.0.2.9"]).then_some(())
    })
    .await;
    let before = skydns(&mut etcd).await;
    assert!(
        before.contains_key("/skydns/com/example/a/foreign")
            && before.contains_key("/skydns/com/example/other/x")
    );

    // A restart writes nothing.
    cm.kill();
    let metrics2 = common::free_addr();
    let args = cm_args(&metrics2);
    let mut cm = common::Daemon::start(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        "controller-manager-2",
    );
    common::eventually(
        Duration::from_secs(60),
        "the restarted writer in sync",
        || async { cm.log_text().contains("skydns in sync").then_some(()) },
    )
    .await;
    assert_eq!(
        skydns(&mut etcd).await,
        before,
        "a restart rewrote skydns keys"
    );

    // The host API server goes away: nothing is deleted.
    shared.fed.lock().await.stop_cluster("cluster1").unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await; // an observation window, not a wait
    assert_eq!(
        skydns(&mut etcd).await,
        before,
        "skydns keys changed while the host was away"
    );
    assert_eq!(dig(&dns, "a.example.com", "A"), ["10.0.0.1", "192.0.2.9"]);
    shared
        .fed
        .lock()
        .await
        .start_cluster("cluster1")
        .await
        .unwrap();
    // Without the host it could not renew its lease: it stopped writing, kept running,
    // and leads again once the host is back, picking up from etcd as it is.
    common::eventually(
        Duration::from_secs(60),
        "the controller-manager leads again",
        || async {
            let log = cm.log_text();
            (log.contains("lost leadership") && log.matches("acquired leadership").count() >= 2)
                .then_some(())
        },
    )
    .await;
    assert!(
        cm.child.try_wait().unwrap().is_none(),
        "losing the lease must not end the process"
    );

    // The DNSEndpoint goes: our keys go, the other writer's stay.
    let host = common::client(common::host()).await;
    let eps: Api<DNSEndpoint> = Api::namespaced(host.clone(), APP_NS);
    eps.delete("service-a", &DeleteParams::default())
        .await
        .unwrap();
    common::eventually(Duration::from_secs(60), "our keys deleted", || async {
        (dig(&dns, "a.example.com", "A") == ["192.0.2.9"]).then_some(())
    })
    .await;
    let after = skydns(&mut etcd).await;
    assert_eq!(
        after.keys().cloned().collect::<Vec<_>>(),
        [
            "/skydns/com/example/a/foreign",
            "/skydns/com/example/other/x"
        ]
    );
    cm.kill();
}
