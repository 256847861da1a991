//! The controller-manager's cluster health end to end on the real local control plane:
//! members joined with the binary report Ready, region and zones; a node label change is
//! picked up by watch; a member going offline and coming back; a member reached through
//! its `proxyURL` (tinyproxy). Stopping a member
//! disturbs other tests, so this binary holds one sequential scenario.

mod common;

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kubefed::api::core::{ConditionStatus, KubeFedCluster};
use kubefed::api::{self, DEFAULT_KUBEFED_NAMESPACE as NS};
use serde_json::json;

async fn add_node(cluster: &str, name: &str, labels: serde_json::Value) {
    let client = common::client(cluster).await;
    let nodes: Api<Node> = Api::all(client);
    let node =
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}});
    nodes
        .patch(
            name,
            &PatchParams::apply("test").force(),
            &Patch::Apply(node),
        )
        .await
        .unwrap();
}

fn ready(c: &KubeFedCluster) -> Option<ConditionStatus> {
    c.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status)
}

fn offline(c: &KubeFedCluster) -> Option<ConditionStatus> {
    c.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Offline")
        .map(|c| c.status)
}

async fn wait_cluster(
    api: &Api<KubeFedCluster>,
    name: &str,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&KubeFedCluster) -> bool,
) -> KubeFedCluster {
    common::eventually(timeout, &format!("{name}: {what}"), || async {
        api.get_opt(name).await.ok().flatten().filter(|c| pred(c))
    })
    .await
}

#[tokio::test]
async fn members_report_health_and_topology_and_go_offline_and_back() {
    let host = common::install_host().await;
    // Fast probes so the offline threshold is reached in seconds: 1 s period, 2 failures.
    let kfc = json!({
        "apiVersion": "core.kubefed.io/v1beta1", "kind": "KubeFedConfig",
        "metadata": {"name": "kubefed", "namespace": NS},
        "spec": {"scope": "Cluster", "clusterHealthCheck": {"period": "1s", "timeout": "1s", "failureThreshold": 2, "successThreshold": 1}}
    });
    Api::<api::core::KubeFedConfig>::namespaced(host.clone(), NS)
        .patch(
            "kubefed",
            &PatchParams::apply("test").force(),
            &Patch::Apply(kfc),
        )
        .await
        .unwrap();
    add_node(
        "cluster2",
        "n1",
        json!({"topology.kubernetes.io/region": "eu", "topology.kubernetes.io/zone": "eu-a"}),
    )
    .await;
    add_node(
        "cluster2",
        "n2",
        json!({"topology.kubernetes.io/region": "eu", "topology.kubernetes.io/zone": "eu-b"}),
    )
    .await;
    add_node("cluster3", "n1", json!({"failure-domain.beta.kubernetes.io/region": "us", "failure-domain.beta.kubernetes.io/zone": "us-a"})).await;

    // The host joins itself, and both members join.
    common::join("cluster1", "cluster1");
    common::join("cluster2", "cluster2");
    common::join("cluster3", "cluster3");

    let kc = common::federation().state.kubeconfig.display().to_string();
    let metrics = common::free_addr();
    let _cm = common::Daemon::start(
        &[
            "controller-manager",
            "--kubeconfig",
            &kc,
            "--context",
            "cluster1",
            "--metrics-listen",
            &metrics,
        ],
        "controller-manager",
    );
    let api: Api<KubeFedCluster> = Api::namespaced(host.clone(), NS);
    let t = Duration::from_secs(60);
    for name in ["cluster1", "cluster2", "cluster3"] {
        wait_cluster(&api, name, t, "Ready", |c| {
            ready(c) == Some(ConditionStatus::True)
        })
        .await;
    }
    let c2 = wait_cluster(&api, "cluster2", t, "topology", |c| {
        c.status.as_ref().unwrap().region.is_some()
    })
    .await;
    let st = c2.status.unwrap();
    assert_eq!(st.region.as_deref(), Some("eu"));
    assert_eq!(st.zones, vec!["eu-a".to_string(), "eu-b".to_string()]);
    let c3 = wait_cluster(&api, "cluster3", t, "beta topology", |c| {
        c.status.as_ref().unwrap().region.is_some()
    })
    .await;
    assert_eq!(c3.status.as_ref().unwrap().zones, vec!["us-a".to_string()]);

    // kubectl shows READY True for every cluster.
    let out = std::process::Command::new(common::kubectl())
        .args([
            "--kubeconfig",
            &kc,
            "--context",
            "cluster1",
            "-n",
            NS,
            "get",
            "kubefedclusters",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().next().unwrap().contains("READY"), "{text}");
    for name in ["cluster1", "cluster2", "cluster3"] {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing: {text}"));
        assert!(line.contains("True"), "{line}");
    }

    // No write storm: with nothing changing, the status is not rewritten every probe.
    let before = api.get("cluster2").await.unwrap().metadata.resource_version;
    tokio::time::sleep(Duration::from_secs(4)).await; // an observation window of 4 probe periods
    assert_eq!(
        api.get("cluster2").await.unwrap().metadata.resource_version,
        before,
        "status rewritten without a change"
    );

    // A node label change is picked up by watch.
    add_node(
        "cluster2",
        "n2",
        json!({"topology.kubernetes.io/region": "eu", "topology.kubernetes.io/zone": "eu-c"}),
    )
    .await;
    wait_cluster(&api, "cluster2", t, "zone eu-c", |c| {
        c.status.as_ref().unwrap().zones == vec!["eu-a".to_string(), "eu-c".to_string()]
    })
    .await;

    // Readiness is exported.
    let body = common::eventually(t, "metrics", || async {
        let out = std::process::Command::new("curl")
            .args(["-sf", &format!("http://{metrics}/metrics")])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.contains("kubefed_cluster_ready{cluster=\"cluster2\"} 1")
            .then_some(text)
    })
    .await;
    assert!(
        body.contains("kubefed_cluster_probe_duration_seconds"),
        "{body}"
    );

    // cluster3 goes away: Offline within the threshold, cluster2 stays Ready.
    common::federation()
        .fed
        .lock()
        .await
        .stop_cluster("cluster3")
        .unwrap();
    let off = wait_cluster(&api, "cluster3", Duration::from_secs(30), "Offline", |c| {
        offline(c) == Some(ConditionStatus::True)
    })
    .await;
    assert_eq!(ready(&off), Some(ConditionStatus::False));
    assert_eq!(
        off.status.as_ref().unwrap().region.as_deref(),
        Some("us"),
        "offline keeps topology"
    );
    assert_eq!(
        ready(&api.get("cluster2").await.unwrap()),
        Some(ConditionStatus::True)
    );

    // ... and comes back.
    common::federation()
        .fed
        .lock()
        .await
        .start_cluster("cluster3")
        .await
        .unwrap();
    wait_cluster(
        &api,
        "cluster3",
        Duration::from_secs(60),
        "Ready again",
        |c| ready(c) == Some(ConditionStatus::True),
    )
    .await;

    // proxyURL: cluster2 is reached through an HTTP proxy (tinyproxy, CONNECT), and only
    // through it: with the proxy stopped it goes Offline, and Ready again without it.
    let dir = tempfile::tempdir().unwrap();
    let proxy_addr = common::free_addr();
    let port = proxy_addr.rsplit_once(':').unwrap().1;
    let log = dir.path().join("tinyproxy.log");
    let conf = dir.path().join("tinyproxy.conf");
    std::fs::write(
        &conf,
        format!(
            "Port {port}\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 60\nLogFile \"{}\"\nLogLevel Connect\nMaxClients 50\n",
            log.display()
        ),
    )
    .unwrap();
    let proxy = KillOnDrop(
        std::process::Command::new("tinyproxy")
            .args(["-d", "-c", conf.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("tinyproxy (Debian package tinyproxy; make test installs it)"),
    );
    let set_proxy = |url: Option<String>| {
        let api = api.clone();
        async move {
            api.patch(
                "cluster2",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"proxyURL": url}})),
            )
            .await
            .unwrap();
        }
    };
    set_proxy(Some(format!("http://{proxy_addr}"))).await;
    let member2 = &common::federation()
        .state
        .cluster("cluster2")
        .unwrap()
        .api_url;
    let through_proxy = format!("CONNECT {}", member2.trim_start_matches("https://"));
    common::eventually(t, "probes through the proxy", || async {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains(&through_proxy).then_some(())
    })
    .await;
    wait_cluster(&api, "cluster2", t, "Ready through the proxy", |c| {
        ready(c) == Some(ConditionStatus::True)
    })
    .await;
    drop(proxy);
    wait_cluster(
        &api,
        "cluster2",
        Duration::from_secs(30),
        "Offline without its proxy",
        |c| offline(c) == Some(ConditionStatus::True),
    )
    .await;
    set_proxy(None).await;
    wait_cluster(&api, "cluster2", t, "Ready again, direct", |c| {
        ready(c) == Some(ConditionStatus::True)
    })
    .await;
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
