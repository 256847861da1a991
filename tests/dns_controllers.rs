//! The DNS controllers end to end on a host and two members: Services with load
//! balancer status and EndpointSlices in the members become ServiceDNSRecord status and a
//! DNSEndpoint; removing ready endpoints, changing an IP, a member going offline and
//! deleting the record each change them as expected; a restarted controller-manager
//! writes nothing. One sequential scenario: it stops a member.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kubefed::api::multiclusterdns::{DNSEndpoint, IngressDNSRecord, ServiceDNSRecord};
use kubefed::api::{self, DEFAULT_KUBEFED_NAMESPACE as NS};
use kubefed::kube::apply as kubeutil;
use serde_json::json;

const APP_NS: &str = "test-namespace";
const GLOBAL: &str = "test-service.test-namespace.test-domain.svc.example.com";
const EU: &str = "test-service.test-namespace.test-domain.svc.eu.example.com";
const EU_A: &str = "test-service.test-namespace.test-domain.svc.eu-a.eu.example.com";
const US: &str = "test-service.test-namespace.test-domain.svc.us.example.com";

fn apply() -> PatchParams {
    PatchParams::apply("test").force()
}

async fn member_service(cluster: &str, ips: &[&str], ready: bool) {
    let c = common::client(cluster).await;
    kubeutil::ensure_namespace(&c, APP_NS).await.unwrap();
    let svcs: Api<Service> = Api::namespaced(c.clone(), APP_NS);
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "test-service", "namespace": APP_NS},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "targetPort": 8080}], "selector": {"app": "x"}}});
    svcs.patch("test-service", &apply(), &Patch::Apply(svc))
        .await
        .unwrap();
    let ingress: Vec<_> = ips.iter().map(|ip| json!({"ip": ip})).collect();
    svcs.patch_status(
        "test-service",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": ingress}}})),
    )
    .await
    .unwrap();
    let slices: Api<EndpointSlice> = Api::namespaced(c, APP_NS);
    let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "test-service-abc", "namespace": APP_NS, "labels": {"kubernetes.io/service-name": "test-service"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": ready}}],
        "ports": [{"port": 8080, "protocol": "TCP"}]});
    slices
        .patch("test-service-abc", &apply(), &Patch::Apply(slice))
        .await
        .unwrap();
}

async fn node(cluster: &str, region: &str, zone: &str) {
    let nodes: Api<Node> = Api::all(common::client(cluster).await);
    let n = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "labels": {
        "topology.kubernetes.io/region": region, "topology.kubernetes.io/zone": zone}}});
    nodes.patch("n1", &apply(), &Patch::Apply(n)).await.unwrap();
}

fn targets(ep: &DNSEndpoint) -> BTreeMap<String, (String, Vec<String>)> {
    ep.spec
        .endpoints
        .iter()
        .map(|e| {
            (
                e.dns_name.clone(),
                (e.record_type.clone(), e.targets.clone()),
            )
        })
        .collect()
}

fn is(t: &BTreeMap<String, (String, Vec<String>)>, name: &str, rtype: &str, want: &[&str]) -> bool {
    t.get(name).is_some_and(|(ty, tg)| {
        ty == rtype && tg.iter().map(String::as_str).eq(want.iter().copied())
    })
}

async fn wait_endpoint(
    api: &Api<DNSEndpoint>,
    name: &str,
    what: &str,
    pred: impl Fn(&BTreeMap<String, (String, Vec<String>)>) -> bool,
) -> DNSEndpoint {
    common::eventually(Duration::from_secs(60), what, || async {
        api.get_opt(name)
            .await
            .ok()
            .flatten()
            .filter(|e| pred(&targets(e)))
    })
    .await
}

fn start_cm(kc: &str, metrics: &str) -> common::Daemon {
    common::Daemon::start(
        &[
            "controller-manager",
            "--kubeconfig",
            kc,
            "--context",
            "cluster1",
            "--metrics-listen",
            metrics,
        ],
        "controller-manager",
    )
}

#[tokio::test]
async fn service_and_ingress_records_follow_the_members() {
    let host = common::client(common::host()).await;
    kubeutil::ensure_namespace(&host, NS).await.unwrap();
    kubeutil::ensure_namespace(&host, APP_NS).await.unwrap();
    kubeutil::apply_crds(&host, &api::crds(), Duration::from_secs(60))
        .await
        .unwrap();
    Api::<api::core::KubeFedConfig>::namespaced(host.clone(), NS)
        .patch("kubefed", &apply(), &Patch::Apply(json!({
            "apiVersion": "core.kubefed.io/v1beta1", "kind": "KubeFedConfig",
            "metadata": {"name": "kubefed", "namespace": NS},
            "spec": {"scope": "Cluster", "clusterHealthCheck": {"period": "1s", "timeout": "1s", "failureThreshold": 2}}})))
        .await
        .unwrap();
    node("cluster2", "eu", "eu-a").await;
    node("cluster3", "us", "us-a").await;
    for (name, ctx) in [("cluster2", "cluster2"), ("cluster3", "cluster3")] {
        let out = common::kubefed_fed(&[
            "join",
            name,
            "--cluster-context",
            ctx,
            "--host-cluster-context",
            "cluster1",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    member_service("cluster2", &["10.0.0.2"], true).await;
    member_service("cluster3", &["10.0.0.3"], true).await;
    let dom = json!({"apiVersion": "multiclusterdns.kubefed.io/v1alpha1", "kind": "Domain",
        "metadata": {"name": "test-domain", "namespace": NS}, "domain": "example.com"});
    Api::<kubefed::api::multiclusterdns::Domain>::namespaced(host.clone(), NS)
        .patch("test-domain", &apply(), &Patch::Apply(dom))
        .await
        .unwrap();
    let records: Api<ServiceDNSRecord> = Api::namespaced(host.clone(), APP_NS);
    records
        .patch(
            "test-service",
            &apply(),
            &Patch::Apply(json!({
            "apiVersion": "multiclusterdns.kubefed.io/v1alpha1", "kind": "ServiceDNSRecord",
            "metadata": {"name": "test-service", "namespace": APP_NS},
            "spec": {"domainRef": "test-domain", "recordTTL": 300}})),
        )
        .await
        .unwrap();

    let kc = common::federation().state.kubeconfig.display().to_string();
    let metrics = common::free_addr();
    let mut cm = start_cm(&kc, &metrics);
    let eps: Api<DNSEndpoint> = Api::namespaced(host.clone(), APP_NS);

    // Both members' addresses, by level.
    let ep = wait_endpoint(
        &eps,
        "service-test-service",
        "both clusters in the DNSEndpoint",
        |t| {
            is(t, GLOBAL, "A", &["10.0.0.2", "10.0.0.3"])
                && is(t, EU_A, "A", &["10.0.0.2"])
                && is(t, US, "A", &["10.0.0.3"])
        },
    )
    .await;
    assert!(ep.spec.endpoints.iter().all(|e| e.record_ttl == 300));
    let owner = &ep.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("ServiceDNSRecord", "test-service", Some(true))
    );
    let rec = records.get("test-service").await.unwrap();
    let st = rec.status.as_ref().unwrap();
    assert_eq!(st.domain, "example.com");
    assert_eq!(
        st.dns
            .iter()
            .map(|d| d.cluster.as_str())
            .collect::<Vec<_>>(),
        ["cluster2", "cluster3"]
    );
    assert_eq!(st.dns[0].region, "eu");
    assert_eq!(st.dns[0].zones, vec!["eu-a".to_string()]);
    assert!(
        st.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"),
        "{:?}",
        st.conditions
    );
    // The pure path (`kubefed render`) gives the same DNSEndpoint from the stored record.
    let rendered = kubefed::dns::records::render_service(&rec, &Default::default()).unwrap();
    assert_eq!(rendered.object.spec, ep.spec);

    // A restarted controller-manager changes nothing.
    let rv = (
        rec.metadata.resource_version.clone(),
        ep.metadata.resource_version.clone(),
    );
    cm.kill();
    // The old lease must expire (15 s) before the new one leads; then let it reconcile.
    let cm = start_cm(&kc, &metrics);
    common::eventually(
        Duration::from_secs(60),
        "the new controller-manager reconciles",
        || async {
            let out = std::process::Command::new("curl")
                .args(["-sf", &format!("http://{metrics}/metrics")])
                .output()
                .ok()?;
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            text.lines()
                .any(|l| {
                    l.starts_with(
                        "kubefed_controller_reconciles_total{controller=\"service-dns\",result=\"success\"}",
                    )
                })
                .then_some(())
        },
    )
    .await;
    let after = (
        records
            .get("test-service")
            .await
            .unwrap()
            .metadata
            .resource_version,
        eps.get("service-test-service")
            .await
            .unwrap()
            .metadata
            .resource_version,
    );
    assert_eq!(
        after, rv,
        "a restart rewrote the record status or the DNSEndpoint"
    );

    // cluster3 loses its ready endpoints: its entry empties and its region falls back to a CNAME.
    member_service("cluster3", &["10.0.0.3"], false).await;
    wait_endpoint(
        &eps,
        "service-test-service",
        "cluster3 without ready endpoints",
        |t| is(t, GLOBAL, "A", &["10.0.0.2"]) && is(t, US, "CNAME", &[GLOBAL]),
    )
    .await;
    member_service("cluster3", &["10.0.0.3"], true).await;

    // cluster2's load balancer IP changes.
    member_service("cluster2", &["10.0.0.22"], true).await;
    wait_endpoint(&eps, "service-test-service", "the new IP", |t| {
        is(t, GLOBAL, "A", &["10.0.0.22", "10.0.0.3"]) && is(t, EU, "A", &["10.0.0.22"])
    })
    .await;

    // An Ingress in cluster2 gives the IngressDNSRecord its A record.
    let ing_api: Api<Ingress> = Api::namespaced(common::client("cluster2").await, APP_NS);
    ing_api
        .patch(
            "test-ingress",
            &apply(),
            &Patch::Apply(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "test-ingress", "namespace": APP_NS},
            "spec": {"rules": [{"host": "ingress.example.com"}]}})),
        )
        .await
        .unwrap();
    ing_api
        .patch_status(
            "test-ingress",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": [{"ip": "10.0.1.2"}]}}})),
        )
        .await
        .unwrap();
    Api::<IngressDNSRecord>::namespaced(host.clone(), APP_NS)
        .patch(
            "test-ingress",
            &apply(),
            &Patch::Apply(json!({
            "apiVersion": "multiclusterdns.kubefed.io/v1alpha1", "kind": "IngressDNSRecord",
            "metadata": {"name": "test-ingress", "namespace": APP_NS},
            "spec": {"hosts": ["ingress.example.com"], "recordTTL": 60}})),
        )
        .await
        .unwrap();
    wait_endpoint(&eps, "ingress-test-ingress", "the ingress host", |t| {
        is(t, "ingress.example.com", "A", &["10.0.1.2"])
    })
    .await;

    // An unknown domainRef is a condition, not a crash.
    records
        .patch("orphan", &apply(), &Patch::Apply(json!({
            "apiVersion": "multiclusterdns.kubefed.io/v1alpha1", "kind": "ServiceDNSRecord",
            "metadata": {"name": "orphan", "namespace": APP_NS}, "spec": {"domainRef": "no-such-domain"}})))
        .await
        .unwrap();
    common::eventually(Duration::from_secs(30), "DomainNotFound", || async {
        let r = records.get("orphan").await.ok()?;
        r.status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready" && c.reason == "DomainNotFound")
            .map(|_| ())
    })
    .await;

    // cluster2 goes offline: its entry stays, without addresses.
    common::federation()
        .fed
        .lock()
        .await
        .stop_cluster("cluster2")
        .unwrap();
    wait_endpoint(&eps, "service-test-service", "cluster2 offline", |t| {
        is(t, GLOBAL, "A", &["10.0.0.3"]) && is(t, EU, "CNAME", &[GLOBAL])
    })
    .await;
    let st = records.get("test-service").await.unwrap().status.unwrap();
    let c2 = st
        .dns
        .iter()
        .find(|d| d.cluster == "cluster2")
        .expect("offline cluster keeps its entry");
    assert_eq!(c2.region, "eu");
    assert!(
        c2.load_balancer
            .ingress
            .as_ref()
            .is_none_or(|i| i.is_empty())
    );
    common::federation()
        .fed
        .lock()
        .await
        .start_cluster("cluster2")
        .await
        .unwrap();
    wait_endpoint(&eps, "service-test-service", "cluster2 back", |t| {
        is(t, GLOBAL, "A", &["10.0.0.22", "10.0.0.3"])
    })
    .await;

    // Deleting the record removes its DNSEndpoint.
    records
        .delete("test-service", &DeleteParams::default())
        .await
        .unwrap();
    common::eventually(Duration::from_secs(30), "DNSEndpoint deleted", || async {
        eps.get_opt("service-test-service")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        cm.log_text()
            .contains("DNSEndpoint deleted with its record")
    );
}
