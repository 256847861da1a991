//! The fault-injection suite: real processes killed, frozen and cut off on a local
//! federation (a host and two members), with the workload of `docs/reliability.md`:
//! 50 ServiceDNSRecords over LoadBalancer Services in both members, a FederatedNamespace
//! and a FederatedDeployment placed in both, the controller-manager (as its
//! least-privilege ServiceAccount) serving the names in-process and writing them into
//! etcd, and `kubefed dns-server` answering from that etcd.
//!
//! Each fault starts from a converged federation, takes a baseline (DNSEndpoints,
//! skydns keys, both servers' answers, member objects with their UIDs), injects the
//! fault, heals it and waits until everything equals the baseline again. It asserts and
//! prints, per fault:
//! - lost: answers missing an address that `docs/dns-names.md` promises during that
//!   fault, sampled from both DNS servers throughout;
//! - wrongly deleted: member objects deleted or recreated (their UIDs changed);
//! - churn: writes that changed nothing, counted from watches;
//! - recovery: from healing until everything equals the baseline.
//!
//! Faults interfere, so they share one federation and run one at a time (a lock).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hickory_net::client::{Client, ClientHandle};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::udp::UdpClientStream;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kubefed::api::core::KubeFedCluster;
use kubefed::api::multiclusterdns::DNSEndpoint;
use kubefed::api::{self, DEFAULT_KUBEFED_NAMESPACE as NS};
use kubefed::kube::apply as kubeutil;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

const RECORDS: usize = 50;
const APP_NS: &str = "faults";
const SYNC_NS: &str = "syncns";
const ZONE: &str = "example.com";
const MEMBERS: [&str; 2] = ["cluster2", "cluster3"];
/// The lease timings of the suite's KubeFedConfig (short, so faults take seconds).
const LEASE: Duration = Duration::from_secs(4);
const RETRY: Duration = Duration::from_millis(500);
const CONVERGE: Duration = Duration::from_secs(90);

fn apply() -> PatchParams {
    PatchParams::apply("faults").force()
}

fn global_name(i: usize) -> String {
    format!("svc-{i}.{APP_NS}.fed.svc.{ZONE}")
}

fn lb_ip(cluster: &str, i: usize) -> IpAddr {
    let c = if cluster == "cluster2" { 2 } else { 3 };
    format!("10.{c}.{}.{}", i / 250, i % 250 + 1)
        .parse()
        .unwrap()
}

fn federated(kind: &str) -> ApiResource {
    ApiResource {
        group: "types.kubefed.io".into(),
        version: "v1beta1".into(),
        api_version: "types.kubefed.io/v1beta1".into(),
        kind: kind.into(),
        plural: format!("{}s", kind.to_lowercase()),
    }
}

// ---------------------------------------------------------------------------------------
// The fixture: processes only (clients belong to each test's runtime).

struct Fx {
    cm: common::Daemon,
    cm_args: Vec<String>,
    cm_metrics: String,
    cm_dns: SocketAddr,
    _dns: common::Daemon,
    dns: SocketAddr,
    sa_kubeconfig: PathBuf,
    restarts: u32,
}

static FX: Mutex<Option<Fx>> = Mutex::const_new(None);

fn cm_args(kubeconfig: &str, metrics: &str, dns: &str, etcd: &str, identity: &str) -> Vec<String> {
    [
        "controller-manager",
        "--kubeconfig",
        kubeconfig,
        "--context",
        "host",
        "--metrics-listen",
        metrics,
        "--dns-listen",
        dns,
        "--etcd-endpoints",
        etcd,
        "--identity",
        identity,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn start_daemon(args: &[String], log: &str) -> common::Daemon {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    common::Daemon::start(&a, log)
}

impl Fx {
    /// Restarts the controller-manager with its arguments and a new identity (as a new
    /// pod would have).
    fn restart_cm(&mut self) {
        self.restarts += 1;
        let id = format!("fault-cm-{}", self.restarts);
        let n = self.cm_args.len();
        self.cm_args[n - 1] = id.clone();
        self.cm = start_daemon(&self.cm_args, &id);
    }
}

/// The fixture, set up on first use; held for the whole fault.
async fn fixture() -> tokio::sync::MutexGuard<'static, Option<Fx>> {
    let mut fx = FX.lock().await;
    if fx.is_none() {
        *fx = Some(setup().await);
    }
    fx
}

async fn setup() -> Fx {
    let fed = common::federation();
    let host = common::install_host().await;
    Api::<api::core::KubeFedConfig>::namespaced(host.clone(), NS)
        .patch("kubefed", &apply(), &Patch::Apply(json!({
            "apiVersion": "core.kubefed.io/v1beta1", "kind": "KubeFedConfig",
            "metadata": {"name": "kubefed", "namespace": NS},
            "spec": {"scope": "Cluster",
                "clusterHealthCheck": {"period": "1s", "timeout": "1s", "failureThreshold": 3, "successThreshold": 1},
                "leaderElect": {"leaseDuration": "4s", "renewDeadline": "3s", "retryPeriod": "500ms"}}})))
        .await
        .unwrap();
    // The controller-manager runs as its ServiceAccount with the shipped RBAC.
    let rbac = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/manifests/10-controller-manager-rbac.yaml"),
    )
    .unwrap();
    kubeutil::apply_yaml(&host, &rbac, NS).await.unwrap();
    let token = common::run_kubectl(
        "cluster1",
        &[
            "create",
            "token",
            "kubefed-controller-manager",
            "-n",
            NS,
            "--duration=2h",
        ],
    );
    let h = fed.state.cluster("cluster1").unwrap();
    let dir = common::unique_dir("faults");
    let sa_kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &sa_kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: host\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: sa\n  user:\n    token: {}\ncontexts:\n- name: host\n  context: {{cluster: host, user: sa}}\ncurrent-context: host\n",
            h.api_url,
            h.ca_file.display(),
            token.trim()
        ),
    )
    .unwrap();

    for m in MEMBERS {
        common::join(m, m);
    }
    for t in ["namespaces", "deployments.apps"] {
        let out = common::kubefed_fed(&["enable", t, "--host-cluster-context", "cluster1"]);
        assert!(
            out.status.success(),
            "enable {t}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    apply_domain(&host).await;
    for ns in [APP_NS, SYNC_NS] {
        kubeutil::ensure_namespace(&host, ns).await.unwrap();
    }
    for (m, region) in MEMBERS.iter().zip(["eu", "us"]) {
        let c = common::client(m).await;
        kubeutil::ensure_namespace(&c, APP_NS).await.unwrap();
        Api::<Node>::all(c.clone())
            .patch(
                "n1",
                &apply(),
                &Patch::Apply(json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": "n1", "labels": {"topology.kubernetes.io/region": region,
                    "topology.kubernetes.io/zone": format!("{region}-a")}}})),
            )
            .await
            .unwrap();
        let svcs: Api<Service> = Api::namespaced(c.clone(), APP_NS);
        let slices: Api<EndpointSlice> = Api::namespaced(c.clone(), APP_NS);
        futures::stream::iter(0..RECORDS)
            .for_each_concurrent(16, |i| {
                let (svcs, slices) = (svcs.clone(), slices.clone());
                async move {
                    let name = format!("svc-{i}");
                    svcs.patch(&name, &apply(), &Patch::Apply(json!({"apiVersion": "v1", "kind": "Service",
                        "metadata": {"name": name, "namespace": APP_NS},
                        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "selector": {"app": name}}})))
                        .await
                        .unwrap();
                    svcs.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({
                        "status": {"loadBalancer": {"ingress": [{"ip": lb_ip(m, i).to_string()}]}}})))
                        .await
                        .unwrap();
                    slices.patch(&name, &apply(), &Patch::Apply(json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                        "metadata": {"name": name, "namespace": APP_NS, "labels": {"kubernetes.io/service-name": name}},
                        "addressType": "IPv4",
                        "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": true}}],
                        "ports": [{"port": 80, "protocol": "TCP"}]})))
                        .await
                        .unwrap();
                }
            })
            .await;
    }
    let records: Api<DynamicObject> = Api::namespaced_with(
        host.clone(),
        APP_NS,
        &ApiResource::erase::<api::multiclusterdns::ServiceDNSRecord>(&()),
    );
    futures::stream::iter(0..RECORDS)
        .for_each_concurrent(16, |i| {
            let records = records.clone();
            async move {
                let name = format!("svc-{i}");
                records
                    .patch(&name, &apply(), &Patch::Apply(json!({
                        "apiVersion": "multiclusterdns.kubefed.io/v1alpha1", "kind": "ServiceDNSRecord",
                        "metadata": {"name": name, "namespace": APP_NS},
                        "spec": {"domainRef": "fed", "recordTTL": 30}})))
                    .await
                    .unwrap();
            }
        })
        .await;
    let placement = json!({"clusters": [{"name": "cluster2"}, {"name": "cluster3"}]});
    Api::<DynamicObject>::namespaced_with(host.clone(), SYNC_NS, &federated("FederatedNamespace"))
        .patch(
            SYNC_NS,
            &apply(),
            &Patch::Apply(json!({
            "apiVersion": "types.kubefed.io/v1beta1", "kind": "FederatedNamespace",
            "metadata": {"name": SYNC_NS, "namespace": SYNC_NS},
            "spec": {"placement": placement}})),
        )
        .await
        .unwrap();
    apply_deployment(&host, "web", 1, "v1").await;

    let etcd = fed.state.etcd.url.clone();
    let dns = common::free_addr();
    let dns_daemon = common::Daemon::start(
        &[
            "dns-server",
            "--zone",
            ZONE,
            "--etcd-endpoints",
            &etcd,
            "--listen",
            &dns,
        ],
        "dns-server",
    );
    let (cm_metrics, cm_dns) = (common::free_addr(), common::free_addr());
    let args = cm_args(
        &sa_kubeconfig.display().to_string(),
        &cm_metrics,
        &cm_dns,
        &etcd,
        "fault-cm-0",
    );
    let cm = start_daemon(&args, "fault-cm-0");
    let fx = Fx {
        cm,
        cm_args: args,
        cm_metrics,
        cm_dns: cm_dns.parse().unwrap(),
        _dns: dns_daemon,
        dns: dns.parse().unwrap(),
        sa_kubeconfig,
        restarts: 0,
    };
    let world = World::new(&fx).await;
    world
        .converged(&fx, CONVERGE, "the workload to converge")
        .await;
    fx
}

async fn apply_domain(host: &kube::Client) {
    kubeutil::apply_yaml(
        host,
        &format!(
            "apiVersion: multiclusterdns.kubefed.io/v1alpha1\nkind: Domain\nmetadata: {{name: fed, namespace: {NS}}}\ndomain: {ZONE}\n"
        ),
        NS,
    )
    .await
    .unwrap();
}

async fn apply_deployment(host: &kube::Client, name: &str, replicas: i64, version: &str) {
    Api::<DynamicObject>::namespaced_with(host.clone(), SYNC_NS, &federated("FederatedDeployment"))
        .patch(name, &apply(), &Patch::Apply(json!({
            "apiVersion": "types.kubefed.io/v1beta1", "kind": "FederatedDeployment",
            "metadata": {"name": name, "namespace": SYNC_NS},
            "spec": {
                "template": {"metadata": {"labels": {"app": name}}, "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name, "version": version}},
                        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}}},
                "placement": {"clusters": [{"name": "cluster2"}, {"name": "cluster3"}]}}})))
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------
// What the federation looks like.

#[derive(Clone, Debug, PartialEq)]
struct Snapshot {
    /// DNSEndpoint name -> (dnsName, type, targets), sorted.
    endpoints: BTreeMap<String, Vec<(String, String, Vec<String>)>>,
    /// skydns key -> value under the zone.
    skydns: BTreeMap<String, String>,
    /// Answers of the embedded server and of `kubefed dns-server`.
    embedded: BTreeMap<String, Vec<IpAddr>>,
    etcd_path: BTreeMap<String, Vec<IpAddr>>,
}

/// Member objects the federation manages: "cluster/kind/name" -> UID.
type Uids = BTreeMap<String, String>;

struct World {
    host: kube::Client,
    members: BTreeMap<&'static str, kube::Client>,
    etcd: String,
}

async fn ask(server: SocketAddr, name: &str) -> Result<Vec<IpAddr>, String> {
    let conn = UdpClientStream::builder(server, TokioRuntimeProvider::default())
        .with_timeout(Some(Duration::from_secs(1)))
        .build();
    let (mut client, bg) = Client::<TokioRuntimeProvider>::from_sender(conn);
    tokio::spawn(bg);
    let resp = client
        .query(Name::from_ascii(name).unwrap(), DNSClass::IN, RecordType::A)
        .await
        .map_err(|e| e.to_string())?;
    if resp.response_code != ResponseCode::NoError {
        return Err(resp.response_code.to_string());
    }
    let mut ips: Vec<IpAddr> = resp
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        })
        .collect();
    ips.sort();
    Ok(ips)
}

async fn answers(server: SocketAddr) -> BTreeMap<String, Vec<IpAddr>> {
    let names: Vec<String> = (0..RECORDS).map(global_name).collect();
    futures::stream::iter(names)
        .map(|n| async move {
            // A resolver retries a UDP query that timed out; so does the sampler, so that
            // a starved machine is not mistaken for a server without the name. An answer
            // that is wrong, empty or an error code counts at once.
            let mut got = ask(server, &n).await;
            for _ in 0..2 {
                match &got {
                    Err(e) if e.contains("timed out") || e.contains("timeout") => {
                        got = ask(server, &n).await
                    }
                    _ => break,
                }
            }
            (n, got.unwrap_or_default())
        })
        .buffer_unordered(25)
        .collect()
        .await
}

impl World {
    async fn new(_fx: &Fx) -> World {
        let mut members = BTreeMap::new();
        for m in MEMBERS {
            members.insert(m, common::client(m).await);
        }
        World {
            host: common::client("cluster1").await,
            members,
            etcd: common::federation().state.etcd.url.clone(),
        }
    }

    async fn snapshot(&self, fx: &Fx) -> Option<Snapshot> {
        let eps: Api<DNSEndpoint> = Api::namespaced(self.host.clone(), APP_NS);
        let mut endpoints = BTreeMap::new();
        for e in eps.list(&Default::default()).await.ok()?.items {
            let mut v: Vec<_> = e
                .spec
                .endpoints
                .iter()
                .map(|x| (x.dns_name.clone(), x.record_type.clone(), x.targets.clone()))
                .collect();
            v.sort();
            endpoints.insert(e.metadata.name.unwrap_or_default(), v);
        }
        let mut etcd = etcd_client::Client::connect([self.etcd.as_str()], None)
            .await
            .ok()?;
        let resp = etcd
            .get(
                "/skydns/com/example/",
                Some(etcd_client::GetOptions::new().with_prefix()),
            )
            .await
            .ok()?;
        let skydns = resp
            .kvs()
            .iter()
            .map(|kv| {
                (
                    kv.key_str().unwrap_or_default().to_string(),
                    kv.value_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        Some(Snapshot {
            endpoints,
            skydns,
            embedded: answers(fx.cm_dns).await,
            etcd_path: answers(fx.dns).await,
        })
    }

    /// UIDs of the managed member objects (the namespace and the deployment).
    async fn uids(&self) -> Option<Uids> {
        let mut out = BTreeMap::new();
        for (m, c) in &self.members {
            let ns = Api::<Namespace>::all(c.clone()).get(SYNC_NS).await.ok()?;
            out.insert(format!("{m}/Namespace/{SYNC_NS}"), ns.metadata.uid?);
            let d = Api::<Deployment>::namespaced(c.clone(), SYNC_NS)
                .get("web")
                .await
                .ok()?;
            out.insert(format!("{m}/Deployment/web"), d.metadata.uid?);
        }
        Some(out)
    }

    /// Every record answers both members' addresses on both servers, every cluster is
    /// Ready and the FederatedDeployment is propagated.
    async fn healthy(&self, fx: &Fx) -> bool {
        let want: BTreeMap<String, Vec<IpAddr>> = (0..RECORDS)
            .map(|i| {
                let mut v: Vec<IpAddr> = MEMBERS.iter().map(|m| lb_ip(m, i)).collect();
                v.sort();
                (global_name(i), v)
            })
            .collect();
        let clusters: Api<KubeFedCluster> = Api::namespaced(self.host.clone(), NS);
        let Ok(cs) = clusters.list(&Default::default()).await else {
            return false;
        };
        if cs.items.len() != MEMBERS.len() || !cs.items.iter().all(|c| c.is_ready()) {
            return false;
        }
        if !self.propagated("web").await {
            return false;
        }
        answers(fx.cm_dns).await == want && answers(fx.dns).await == want
    }

    async fn propagated(&self, name: &str) -> bool {
        let fd: Api<DynamicObject> = Api::namespaced_with(
            self.host.clone(),
            SYNC_NS,
            &federated("FederatedDeployment"),
        );
        let Ok(o) = fd.get(name).await else {
            return false;
        };
        let st = &o.data["status"];
        let ok = st["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Propagation"))
            .is_some_and(|c| c["status"] == "True");
        ok && st["observedGeneration"] == o.metadata.generation.map(Value::from).unwrap_or_default()
    }

    async fn converged(&self, fx: &Fx, timeout: Duration, what: &str) {
        common::eventually(timeout, what, || async {
            self.healthy(fx).await.then_some(())
        })
        .await;
    }
}

// ---------------------------------------------------------------------------------------
// Churn: writes seen by watches, and writes that changed nothing.

#[derive(Clone, Default)]
struct Churn {
    writes: Arc<AtomicU64>,
    churn: Arc<AtomicU64>,
    /// The objects of the first churned writes.
    examples: Arc<std::sync::Mutex<Vec<String>>>,
    /// The objects of the first writes of any kind.
    written: Arc<std::sync::Mutex<Vec<String>>>,
}

/// Up to three JSON paths where `a` and `b` differ.
fn changed_paths(a: &Value, b: &Value) -> Vec<String> {
    fn walk(a: &Value, b: &Value, path: String, out: &mut Vec<String>) {
        if out.len() >= 3 || a == b {
            return;
        }
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                    walk(
                        x.get(k).unwrap_or(&Value::Null),
                        y.get(k).unwrap_or(&Value::Null),
                        format!("{path}/{k}"),
                        out,
                    );
                }
            }
            _ => out.push(path),
        }
    }
    let mut out = vec![];
    walk(a, b, String::new(), &mut out);
    out
}

/// An object's content without what every write changes.
fn content(o: &DynamicObject) -> Value {
    let mut v = serde_json::to_value(o).unwrap();
    if let Some(m) = v["metadata"].as_object_mut() {
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    // Objects from a list carry no apiVersion and kind, watch events do.
    if let Some(o) = v.as_object_mut() {
        o.remove("apiVersion");
        o.remove("kind");
    }
    v
}

impl Churn {
    fn watch(
        &self,
        client: kube::Client,
        ar: ApiResource,
        ns: Option<&str>,
        label: String,
        cancel: CancellationToken,
    ) {
        let api: Api<DynamicObject> = match ns {
            Some(ns) => Api::namespaced_with(client, ns, &ar),
            None => Api::all_with(client, &ar),
        };
        let this = self.clone();
        tokio::spawn(async move {
            let mut seen: BTreeMap<String, (String, Value)> = BTreeMap::new();
            let mut events =
                std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
            loop {
                let e = tokio::select! {
                    _ = cancel.cancelled() => return,
                    e = events.next() => e,
                };
                let obj = match e {
                    Some(Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o))) => o,
                    Some(Ok(watcher::Event::Delete(o))) => {
                        this.writes.fetch_add(1, Ordering::SeqCst);
                        seen.remove(&o.metadata.uid.clone().unwrap_or_default());
                        continue;
                    }
                    Some(_) => continue,
                    None => return,
                };
                let uid = obj.metadata.uid.clone().unwrap_or_default();
                let rv = obj.metadata.resource_version.clone().unwrap_or_default();
                let c = content(&obj);
                if let Some((old_rv, old)) = seen.get(&uid)
                    && *old_rv != rv
                {
                    this.writes.fetch_add(1, Ordering::SeqCst);
                    let mut w = this.written.lock().unwrap();
                    if w.len() < 8 {
                        w.push(format!(
                            "{label} {} {:?}",
                            obj.metadata.name.clone().unwrap_or_default(),
                            changed_paths(old, &c)
                        ));
                    }
                    drop(w);
                    if *old == c {
                        this.churn.fetch_add(1, Ordering::SeqCst);
                        this.examples.lock().unwrap().push(format!(
                            "{label} {}/{}",
                            obj.metadata.namespace.clone().unwrap_or_default(),
                            obj.metadata.name.clone().unwrap_or_default()
                        ));
                    }
                }
                seen.insert(uid, (rv, c));
            }
        });
    }

    /// Watches everything the controllers write.
    fn start(world: &World, cancel: &CancellationToken) -> Churn {
        let churn = Churn::default();
        let c = cancel.clone();
        let ep = ApiResource::erase::<DNSEndpoint>(&());
        let rec = ApiResource::erase::<api::multiclusterdns::ServiceDNSRecord>(&());
        churn.watch(
            world.host.clone(),
            ep,
            Some(APP_NS),
            "DNSEndpoint".into(),
            c.clone(),
        );
        churn.watch(
            world.host.clone(),
            rec,
            Some(APP_NS),
            "ServiceDNSRecord".into(),
            c.clone(),
        );
        churn.watch(
            world.host.clone(),
            federated("FederatedDeployment"),
            Some(SYNC_NS),
            "FederatedDeployment".into(),
            c.clone(),
        );
        churn.watch(
            world.host.clone(),
            federated("FederatedNamespace"),
            Some(SYNC_NS),
            "FederatedNamespace".into(),
            c.clone(),
        );
        for (m, client) in &world.members {
            churn.watch(
                client.clone(),
                ApiResource::erase::<Deployment>(&()),
                Some(SYNC_NS),
                format!("{m} Deployment"),
                c.clone(),
            );
            churn.watch(
                client.clone(),
                ApiResource::erase::<Namespace>(&()),
                None,
                format!("{m} Namespace"),
                c.clone(),
            );
        }
        churn
    }
}

// ---------------------------------------------------------------------------------------
// Lost answers, sampled while a fault lasts.

struct Sampler {
    lost: Arc<AtomicU64>,
    samples: Arc<AtomicU64>,
    examples: Arc<std::sync::Mutex<Vec<String>>>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// Samples `servers` until stopped: every answer must hold the addresses of `up`
/// (members whose addresses are promised during the fault) and nothing else than
/// the baseline's.
fn sample(servers: Vec<(&'static str, SocketAddr)>, up: Vec<&'static str>) -> Sampler {
    let lost = Arc::new(AtomicU64::new(0));
    let samples = Arc::new(AtomicU64::new(0));
    let examples = Arc::new(std::sync::Mutex::new(Vec::new()));
    let cancel = CancellationToken::new();
    let (l, s, ex, c) = (
        lost.clone(),
        samples.clone(),
        examples.clone(),
        cancel.clone(),
    );
    let task = tokio::spawn(async move {
        while !c.is_cancelled() {
            for (label, server) in &servers {
                let got = answers(*server).await;
                s.fetch_add(1, Ordering::SeqCst);
                for (i, name) in (0..RECORDS).map(|i| (i, global_name(i))) {
                    let a = got.get(&name).cloned().unwrap_or_default();
                    let all: BTreeSet<IpAddr> = MEMBERS.iter().map(|m| lb_ip(m, i)).collect();
                    let need = up.iter().all(|m| a.contains(&lb_ip(m, i)));
                    let only_known = a.iter().all(|ip| all.contains(ip));
                    if a.is_empty() || !need || !only_known {
                        l.fetch_add(1, Ordering::SeqCst);
                        let mut ex = ex.lock().unwrap();
                        if ex.len() < 5 {
                            ex.push(format!("{label} {name}: {a:?}"));
                        }
                    }
                }
            }
            tokio::select! {
                _ = c.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    });
    Sampler {
        lost,
        samples,
        examples,
        cancel,
        task,
    }
}

impl Sampler {
    async fn stop(self) -> (u64, u64, Vec<String>) {
        self.cancel.cancel();
        let _ = self.task.await;
        (
            self.lost.load(Ordering::SeqCst),
            self.samples.load(Ordering::SeqCst),
            self.examples.lock().unwrap().clone(),
        )
    }
}

// ---------------------------------------------------------------------------------------
// One fault, measured.

struct Measure {
    name: &'static str,
    base: Snapshot,
    uids: Uids,
    churn: Churn,
    cancel: CancellationToken,
    sampler: Option<Sampler>,
    /// Lost answers and samples of samplers already stopped.
    lost: (u64, u64, Vec<String>),
}

async fn begin(world: &World, fx: &Fx, name: &'static str) -> Measure {
    world
        .converged(
            fx,
            CONVERGE,
            &format!("{name}: a converged federation first"),
        )
        .await;
    // Settled: two snapshots a second apart agree (topology, region and zone names).
    let base = common::eventually(CONVERGE, &format!("{name}: a settled baseline"), || async {
        let a = world.snapshot(fx).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let b = world.snapshot(fx).await?;
        (a == b && world.healthy(fx).await).then_some(b)
    })
    .await;
    let uids = world.uids().await.expect("the managed member objects");
    let cancel = CancellationToken::new();
    let churn = Churn::start(world, &cancel);
    // Let the watches list before anything happens.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Measure {
        name,
        base,
        uids,
        churn,
        cancel,
        sampler: None,
        lost: (0, 0, vec![]),
    }
}

impl Measure {
    fn sample(&mut self, servers: Vec<(&'static str, SocketAddr)>, up: Vec<&'static str>) {
        self.sampler = Some(sample(servers, up));
    }

    /// Stops the current sampler, keeping what it found.
    async fn stop_sampling(&mut self) {
        if let Some(s) = self.sampler.take() {
            let (l, n, ex) = s.stop().await;
            self.lost.0 += l;
            self.lost.1 += n;
            self.lost.2.extend(ex);
        }
    }

    /// Waits until everything equals the baseline again, then asserts and prints.
    async fn finish(mut self, world: &World, fx: &Fx, healed: Instant, max_writes: Option<u64>) {
        let deadline = Instant::now() + CONVERGE;
        loop {
            let s = world.snapshot(fx).await;
            let leading = metric(&scrape(&fx.cm_metrics), "kubefed_leader", &[]) == 1.0;
            if s.as_ref() == Some(&self.base) && leading && world.healthy(fx).await {
                break;
            }
            if Instant::now() > deadline {
                panic!(
                    "{}: no recovery to the baseline within {CONVERGE:?}: leading={leading}, {}",
                    self.name,
                    s.map(|s| diff(&self.base, &s))
                        .unwrap_or_else(|| "no snapshot".into())
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let recovery = healed.elapsed();
        // Quiet time: a controller that writes after converging is churning.
        tokio::time::sleep(Duration::from_secs(2)).await;
        self.stop_sampling().await;
        let (lost, samples, lost_examples) = self.lost.clone();
        let uids = world.uids().await.expect("member objects after the fault");
        let wrongly_deleted = self
            .uids
            .iter()
            .filter(|(k, v)| uids.get(*k) != Some(*v))
            .count();
        self.cancel.cancel();
        let churn = self.churn.churn.load(Ordering::SeqCst);
        let writes = self.churn.writes.load(Ordering::SeqCst);
        let line = format!(
            "fault {}: lost={lost} (of {} answers sampled) wrongly_deleted={wrongly_deleted} churn={churn} writes={writes} {:?} recovery={:.1}s",
            self.name,
            samples * RECORDS as u64,
            self.churn.written.lock().unwrap(),
            recovery.as_secs_f64()
        );
        println!("{line}");
        report(&line);
        assert_eq!(lost, 0, "{line}: {lost_examples:?}");
        assert_eq!(wrongly_deleted, 0, "{line}: {:?} then {uids:?}", self.uids);
        assert_eq!(
            churn,
            0,
            "{line}: {:?}",
            self.churn.examples.lock().unwrap()
        );
        if let Some(max) = max_writes {
            assert!(writes <= max, "{line}: at most {max} writes expected");
        }
    }
}

/// What differs between two snapshots, briefly.
fn diff(a: &Snapshot, b: &Snapshot) -> String {
    fn keys<V: PartialEq>(x: &BTreeMap<String, V>, y: &BTreeMap<String, V>) -> Vec<String> {
        let mut out: Vec<String> = x
            .iter()
            .filter(|(k, v)| y.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .chain(y.keys().filter(|k| !x.contains_key(*k)).cloned())
            .collect();
        out.truncate(5);
        out
    }
    format!(
        "endpoints differ: {:?}; skydns differ: {:?}; embedded answers differ: {:?}; etcd-path answers differ: {:?}",
        keys(&a.endpoints, &b.endpoints),
        keys(&a.skydns, &b.skydns),
        keys(&a.embedded, &b.embedded),
        keys(&a.etcd_path, &b.etcd_path)
    )
}

fn report(line: &str) {
    use std::io::Write;
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("faults-report.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

async fn label_member_deployment(world: &World, member: &str, value: &str) {
    Api::<Deployment>::namespaced(world.members[member].clone(), SYNC_NS)
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"touched": value}}})),
        )
        .await
        .unwrap();
}

async fn cluster_ready(world: &World, name: &str) -> Option<bool> {
    let c = Api::<KubeFedCluster>::namespaced(world.host.clone(), NS)
        .get(name)
        .await
        .ok()?;
    Some(c.is_ready())
}

/// The sum of the samples of `name` whose labels include every one of `labels`.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| {
            let Some(rest) = l.strip_prefix(name) else {
                return false;
            };
            (rest.starts_with('{') || rest.starts_with(' '))
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `/readyz` answers 200 (with `--dns-listen`: the embedded names are loaded).
fn ready(addr: &str) -> bool {
    std::process::Command::new("curl")
        .args(["-sf", "--max-time", "2", &format!("http://{addr}/readyz")])
        .status()
        .is_ok_and(|s| s.success())
}

fn scrape(addr: &str) -> String {
    let out = std::process::Command::new("curl")
        .args(["-sf", "--max-time", "2", &format!("http://{addr}/metrics")])
        .output()
        .expect("curl is installed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---------------------------------------------------------------------------------------
// The faults.

/// (a) A member apiserver SIGKILLed, then restarted.
#[tokio::test]
async fn a_member_apiserver_killed_and_restarted() {
    let guard = fixture().await;
    let fx = guard.as_ref().unwrap();
    let world = World::new(fx).await;
    let mut m = begin(&world, fx, "(a) member apiserver SIGKILL + restart").await;
    m.sample(
        vec![("embedded", fx.cm_dns), ("dns-server", fx.dns)],
        vec!["cluster3"],
    );
    common::federation()
        .fed
        .lock()
        .await
        .kill_cluster("cluster2")
        .unwrap();
    common::eventually(Duration::from_secs(30), "cluster2 not Ready", || async {
        (cluster_ready(&world, "cluster2").await == Some(false)).then_some(())
    })
    .await;
    common::federation()
        .fed
        .lock()
        .await
        .start_cluster("cluster2")
        .await
        .unwrap();
    let healed = Instant::now();
    m.finish(&world, fx, healed, None).await;
    // Both transitions are Events on the KubeFedCluster.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(world.host.clone(), NS);
    let reasons: BTreeSet<String> = events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("cluster2"))
        .filter_map(|e| e.reason)
        .collect();
    assert!(
        reasons.contains("ClusterOffline") && reasons.contains("ClusterReady"),
        "health Events on cluster2: {reasons:?}"
    );
}

/// (b) The host apiserver SIGKILLed, and separately SIGSTOPped, for longer than the
/// probe threshold and the lease, with a member-side change during the outage.
#[tokio::test]
async fn b_host_apiserver_killed_or_frozen() {
    let guard = fixture().await;
    let fx = guard.as_ref().unwrap();
    let world = World::new(fx).await;
    for (how, freeze) in [("SIGKILL", false), ("SIGSTOP", true)] {
        let name = if freeze {
            "(b) host apiserver SIGSTOP"
        } else {
            "(b) host apiserver SIGKILL"
        };
        let mut m = begin(&world, fx, name).await;
        m.sample(
            vec![("embedded", fx.cm_dns), ("dns-server", fx.dns)],
            MEMBERS.to_vec(),
        );
        {
            let mut fed = common::federation().fed.lock().await;
            if freeze {
                fed.pause_cluster("cluster1").unwrap();
            } else {
                fed.kill_cluster("cluster1").unwrap();
            }
        }
        // The repro of the defect: a member-side event while the host is away.
        label_member_deployment(&world, "cluster3", &format!("during-{how}")).await;
        // Longer than the renew deadline, the lease and three failed probes.
        tokio::time::sleep(LEASE * 3).await;
        {
            let mut fed = common::federation().fed.lock().await;
            if freeze {
                fed.resume_cluster("cluster1").unwrap();
            } else {
                fed.start_cluster("cluster1").await.unwrap();
            }
        }
        let healed = Instant::now();
        m.finish(&world, fx, healed, None).await;
        // The member-side change is a field the template does not set: it stays.
        let d = Api::<Deployment>::namespaced(world.members["cluster3"].clone(), SYNC_NS)
            .get("web")
            .await
            .unwrap();
        assert_eq!(
            d.metadata
                .labels
                .unwrap_or_default()
                .get("touched")
                .map(String::as_str),
            Some(format!("during-{how}").as_str())
        );
    }
}

/// (c) etcd (every cluster's storage and the skydns data) killed and restarted.
#[tokio::test]
async fn c_etcd_killed_and_restarted() {
    let guard = fixture().await;
    let fx = guard.as_ref().unwrap();
    let world = World::new(fx).await;
    let mut m = begin(&world, fx, "(c) etcd SIGKILL + restart").await;
    m.sample(
        vec![("embedded", fx.cm_dns), ("dns-server", fx.dns)],
        MEMBERS.to_vec(),
    );
    common::federation().fed.lock().await.kill_etcd().unwrap();
    tokio::time::sleep(LEASE * 2).await;
    common::federation()
        .fed
        .lock()
        .await
        .start_etcd()
        .await
        .unwrap();
    let healed = Instant::now();
    m.finish(&world, fx, healed, None).await;
}

/// (d) The controller-manager SIGKILLed and restarted: it writes nothing at all.
#[tokio::test]
async fn d_controller_manager_killed_and_restarted_writes_nothing() {
    let mut guard = fixture().await;
    let fx = guard.as_mut().unwrap();
    let world = World::new(fx).await;
    let mut m = begin(&world, fx, "(d) controller-manager SIGKILL + restart").await;
    // The embedded server is the process that dies; the etcd path answers throughout.
    m.sample(vec![("dns-server", fx.dns)], MEMBERS.to_vec());
    fx.cm.kill();
    fx.restart_cm();
    let healed = Instant::now();
    // The new process leads after the old lease expires and reconciles everything.
    let metrics = fx.cm_metrics.clone();
    common::eventually(
        CONVERGE,
        "the restarted controller-manager reconciles",
        || async {
            let text = scrape(&metrics);
            let reconciles = |c| {
                metric(
                    &text,
                    "kubefed_controller_reconciles_total",
                    &[("controller", c)],
                )
            };
            (metric(&text, "kubefed_leader", &[]) == 1.0
                && reconciles("service-dns") >= RECORDS as f64
                && reconciles("sync") >= 2.0)
                .then_some(())
        },
    )
    .await;
    // Not even a no-op write: a replace with identical content changes no
    // resourceVersion, so watches cannot see it, but the controller's counters do.
    let text = scrape(&fx.cm_metrics);
    for c in [
        "cluster-health",
        "service-dns",
        "dns-endpoint-gc",
        "federatedtypeconfig",
        "sync",
    ] {
        for name in [
            "kubefed_controller_reconciles_total",
            "kubefed_controller_reconcile_duration_seconds_count",
        ] {
            assert!(
                metric(&text, name, &[("controller", c)]) > 0.0,
                "{name} of {c}"
            );
        }
        assert!(
            text.contains(&format!(
                "kubefed_controller_queue_depth{{controller=\"{c}\"}}"
            )),
            "the queue depth of {c}"
        );
    }
    let ops = metric(&text, "kubefed_propagation_operations_total", &[]);
    let dns_writes = metric(&text, "kubefed_dns_writes_total", &[]);
    assert_eq!(
        (ops, dns_writes),
        (0.0, 0.0),
        "the restarted controller-manager wrote to members or the host"
    );
    m.finish(&world, fx, healed, Some(0)).await;
}

/// (e) The leader SIGKILLed: one leader at a time and takeover within the lease
/// duration, also from a holder whose renewTime is in the future.
#[tokio::test]
async fn e_leader_killed_and_a_clock_ahead_keeps_its_lease() {
    let mut guard = fixture().await;
    let fx = guard.as_mut().unwrap();
    let world = World::new(fx).await;
    let mut m = begin(&world, fx, "(e) leader SIGKILL, standby takes over").await;
    let leases: Api<Lease> = Api::namespaced(world.host.clone(), NS);
    let holder = || async {
        leases
            .get_opt("kubefed-controller-manager")
            .await
            .ok()??
            .spec?
            .holder_identity
            .filter(|h| !h.is_empty())
    };
    let leader_of = |addr: &str| metric(&scrape(addr), "kubefed_leader", &[]);
    let (b_metrics, b_dns) = (common::free_addr(), common::free_addr());
    let etcd = common::federation().state.etcd.url.clone();
    let mut b = start_daemon(
        &cm_args(
            &fx.sa_kubeconfig.display().to_string(),
            &b_metrics,
            &b_dns,
            &etcd,
            "fault-standby",
        ),
        "fault-standby",
    );
    // A standby promises its answers once it is ready (its names loaded); before that
    // it may refuse to answer, which a load balancer in front of it would see.
    common::eventually(Duration::from_secs(60), "the standby is ready", || async {
        ready(&b_metrics).then_some(())
    })
    .await;
    m.sample(
        vec![
            ("standby embedded", b_dns.parse().unwrap()),
            ("dns-server", fx.dns),
        ],
        MEMBERS.to_vec(),
    );
    // One leader: the running one; the standby waits.
    common::eventually(
        Duration::from_secs(30),
        "the standby is up and waiting",
        || async {
            b.log_text()
                .contains("waiting for leadership")
                .then_some(())
        },
    )
    .await;
    for _ in 0..10 {
        let (a, s) = (leader_of(&fx.cm_metrics), leader_of(&b_metrics));
        assert_eq!((a, s), (1.0, 0.0), "exactly one leader");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    fx.cm.kill();
    let killed = Instant::now();
    common::eventually(Duration::from_secs(30), "the standby leads", || async {
        (holder().await.as_deref() == Some("fault-standby") && leader_of(&b_metrics) == 1.0)
            .then_some(())
    })
    .await;
    let took = killed.elapsed();
    println!(
        "fault (e): takeover after the leader's SIGKILL took {:.1}s",
        took.as_secs_f64()
    );
    report(&format!(
        "fault (e): takeover after SIGKILL {:.1}s (lease {LEASE:?})",
        took.as_secs_f64()
    ));
    assert!(
        took <= LEASE + RETRY + Duration::from_secs(3),
        "takeover took {took:?}"
    );

    // A holder whose clock runs ahead: its renewTime is an hour in the future, and it
    // keeps renewing. The new controller-manager (a standby now) must not take over.
    fx.restart_cm();
    common::eventually(
        Duration::from_secs(30),
        "the new standby waits, its DNS loaded",
        || async {
            (fx.cm.log_text().contains("waiting for leadership") && ready(&fx.cm_metrics))
                .then_some(())
        },
    )
    .await;
    m.stop_sampling().await;
    m.sample(
        vec![("embedded", fx.cm_dns), ("dns-server", fx.dns)],
        MEMBERS.to_vec(),
    );
    b.kill();
    let stop_ghost = CancellationToken::new();
    let ghost = {
        let leases = leases.clone();
        let stop = stop_ghost.clone();
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                if let Ok(Some(mut l)) = leases.get_opt("kubefed-controller-manager").await {
                    let ahead = k8s_openapi::jiff::Timestamp::now()
                        + k8s_openapi::jiff::SignedDuration::from_hours(1);
                    let spec = l.spec.get_or_insert_with(Default::default);
                    spec.holder_identity = Some("ghost-with-a-fast-clock".into());
                    spec.renew_time = Some(
                        k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(ahead),
                    );
                    spec.lease_duration_seconds = Some(LEASE.as_secs() as i32);
                    let _ = leases
                        .replace("kubefed-controller-manager", &PostParams::default(), &l)
                        .await;
                }
                tokio::time::sleep(Duration::from_millis(700)).await;
            }
        })
    };
    let watch_from = Instant::now();
    while watch_from.elapsed() < LEASE * 2 + Duration::from_secs(1) {
        assert_eq!(
            leader_of(&fx.cm_metrics),
            0.0,
            "a live lease with a renewTime in the future was taken over"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stop_ghost.cancel();
    let _ = ghost.await;
    let silent = Instant::now();
    common::eventually(
        Duration::from_secs(30),
        "the controller-manager takes the silent lease",
        || async { (leader_of(&fx.cm_metrics) == 1.0).then_some(()) },
    )
    .await;
    let took = silent.elapsed();
    report(&format!(
        "fault (e): takeover of a silent lease with a future renewTime {:.1}s",
        took.as_secs_f64()
    ));
    assert!(
        took <= LEASE + RETRY + Duration::from_secs(3),
        "takeover of the silent lease took {took:?}"
    );
    let healed = Instant::now();
    m.finish(&world, fx, healed, None).await;
}

/// (f) A member SIGSTOPped: the other member still converges within seconds.
#[tokio::test]
async fn f_frozen_member_does_not_hold_the_others() {
    let guard = fixture().await;
    let fx = guard.as_ref().unwrap();
    let world = World::new(fx).await;
    let mut m = begin(&world, fx, "(f) member apiserver SIGSTOP").await;
    m.sample(
        vec![("embedded", fx.cm_dns), ("dns-server", fx.dns)],
        vec!["cluster3"],
    );
    common::federation()
        .fed
        .lock()
        .await
        .pause_cluster("cluster2")
        .unwrap();
    // Right away, before health notices: the reconcile meets a member that does not
    // answer at all.
    apply_deployment(&world.host, "web", 2, "v2").await;
    let changed = Instant::now();
    let c3: Api<Deployment> = Api::namespaced(world.members["cluster3"].clone(), SYNC_NS);
    // Well below the member request timeout (10 s) that a serial loop would wait out.
    common::eventually(
        Duration::from_secs(6),
        "cluster3 gets the new template",
        || async {
            let d = c3.get("web").await.ok()?;
            (d.spec?.replicas == Some(2)).then_some(())
        },
    )
    .await;
    report(&format!(
        "fault (f): the unfrozen member had the change after {:.1}s",
        changed.elapsed().as_secs_f64()
    ));
    // The status says what happened to cluster2.
    let fd: Api<DynamicObject> = Api::namespaced_with(
        world.host.clone(),
        SYNC_NS,
        &federated("FederatedDeployment"),
    );
    common::eventually(
        Duration::from_secs(30),
        "cluster2 reported ClusterNotReady",
        || async {
            let o = fd.get("web").await.ok()?;
            o.data["status"]["clusters"]
                .as_array()?
                .iter()
                .any(|c| c["name"] == "cluster2" && c["status"] == "ClusterNotReady")
                .then_some(())
        },
    )
    .await;
    common::federation()
        .fed
        .lock()
        .await
        .resume_cluster("cluster2")
        .unwrap();
    let healed = Instant::now();
    // The baseline had the old template; the members converge to the new one.
    let c2: Api<Deployment> = Api::namespaced(world.members["cluster2"].clone(), SYNC_NS);
    common::eventually(CONVERGE, "cluster2 catches up", || async {
        (c2.get("web").await.ok()?.spec?.replicas == Some(2)).then_some(())
    })
    .await;
    apply_deployment(&world.host, "web", 1, "v1").await;
    m.finish(&world, fx, healed, None).await;
}

/// (g) A federated object deleted while a member is down: the other member's copy goes
/// at once, the down member's when it is back, and then the object.
#[tokio::test]
async fn g_deleted_while_a_member_is_down() {
    let guard = fixture().await;
    let fx = guard.as_ref().unwrap();
    let world = World::new(fx).await;
    apply_deployment(&world.host, "doomed", 1, "v1").await;
    common::eventually(CONVERGE, "doomed in both members", || async {
        for c in world.members.values() {
            Api::<Deployment>::namespaced(c.clone(), SYNC_NS)
                .get_opt("doomed")
                .await
                .ok()??;
        }
        world.propagated("doomed").await.then_some(())
    })
    .await;
    let mut m = begin(&world, fx, "(g) delete while a member is down").await;
    m.sample(
        vec![("embedded", fx.cm_dns), ("dns-server", fx.dns)],
        vec!["cluster3"],
    );
    common::federation()
        .fed
        .lock()
        .await
        .kill_cluster("cluster2")
        .unwrap();
    common::eventually(Duration::from_secs(30), "cluster2 not Ready", || async {
        (cluster_ready(&world, "cluster2").await == Some(false)).then_some(())
    })
    .await;
    let fd: Api<DynamicObject> = Api::namespaced_with(
        world.host.clone(),
        SYNC_NS,
        &federated("FederatedDeployment"),
    );
    fd.delete("doomed", &DeleteParams::default()).await.unwrap();
    let c3: Api<Deployment> = Api::namespaced(world.members["cluster3"].clone(), SYNC_NS);
    common::eventually(
        Duration::from_secs(15),
        "cluster3's copy deleted at once",
        || async { c3.get_opt("doomed").await.ok()?.is_none().then_some(()) },
    )
    .await;
    assert!(
        fd.get_opt("doomed").await.unwrap().is_some(),
        "the finalizer waits for cluster2's copy"
    );
    common::federation()
        .fed
        .lock()
        .await
        .start_cluster("cluster2")
        .await
        .unwrap();
    let healed = Instant::now();
    let c2: Api<Deployment> = Api::namespaced(world.members["cluster2"].clone(), SYNC_NS);
    common::eventually(
        CONVERGE,
        "cluster2's copy and the federated object gone",
        || async {
            (c2.get_opt("doomed").await.ok()?.is_none()
                && fd.get_opt("doomed").await.ok()?.is_none())
            .then_some(())
        },
    )
    .await;
    m.finish(&world, fx, healed, None).await;
}

/// (h) A permanently invalid object: retries back off, and an Event carries the API's
/// message.
#[tokio::test]
async fn h_invalid_object_backs_off_and_says_why() {
    let guard = fixture().await;
    let fx = guard.as_ref().unwrap();
    let world = World::new(fx).await;
    let m = begin(&world, fx, "(h) permanently invalid object").await;
    // Negative replicas: every member refuses the Deployment.
    apply_deployment(&world.host, "invalid", -1, "v1").await;
    let attempts = || {
        metric(
            &scrape(&fx.cm_metrics),
            "kubefed_propagation_operations_total",
            &[
                ("cluster", "cluster3"),
                ("kind", "FederatedDeployment"),
                ("op", "create"),
                ("result", "error"),
            ],
        )
    };
    let start = attempts();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let first = attempts() - start;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let second = attempts() - start - first;
    report(&format!(
        "fault (h): create attempts in cluster3: {first} in the first 10 s, {second} in the next 10 s"
    ));
    assert!(first >= 2.0, "retried: {first}");
    assert!(
        second < first && first + second <= 10.0,
        "backoff grows: {first} then {second}"
    );
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(world.host.clone(), SYNC_NS);
    let evs = events.list(&Default::default()).await.unwrap();
    let ev = evs
        .items
        .iter()
        .find(|e| {
            e.reason.as_deref() == Some("CreateInClusterFailed")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("invalid")
        })
        .expect("an Event for the failed creation");
    let note = ev.note.clone().unwrap_or_default();
    assert!(
        note.contains("greater than or equal to 0"),
        "the API's message: {note}"
    );
    let fd: Api<DynamicObject> = Api::namespaced_with(
        world.host.clone(),
        SYNC_NS,
        &federated("FederatedDeployment"),
    );
    let o = fd.get("invalid").await.unwrap();
    let st = o.data["status"]["clusters"].to_string();
    assert!(
        st.contains("CreationFailed") && st.contains("greater than or equal to 0"),
        "{st}"
    );
    fd.delete("invalid", &DeleteParams::default())
        .await
        .unwrap();
    common::eventually(CONVERGE, "the invalid object deleted", || async {
        fd.get_opt("invalid").await.ok()?.is_none().then_some(())
    })
    .await;
    m.finish(&world, fx, Instant::now(), None).await;
}

/// (i) The controller-manager's RBAC on the host revoked for a while: 403s everywhere,
/// nothing deleted.
#[tokio::test]
async fn i_rbac_revoked_deletes_nothing() {
    let guard = fixture().await;
    let fx = guard.as_ref().unwrap();
    let world = World::new(fx).await;
    let mut m = begin(&world, fx, "(i) host RBAC revoked").await;
    m.sample(
        vec![("embedded", fx.cm_dns), ("dns-server", fx.dns)],
        MEMBERS.to_vec(),
    );
    let crbs: Api<ClusterRoleBinding> = Api::all(world.host.clone());
    let rbs: Api<RoleBinding> = Api::namespaced(world.host.clone(), NS);
    let crb = crbs.get("kubefed-controller-manager").await.unwrap();
    let rb = rbs.get("kubefed-controller-manager").await.unwrap();
    crbs.delete("kubefed-controller-manager", &DeleteParams::default())
        .await
        .unwrap();
    rbs.delete("kubefed-controller-manager", &DeleteParams::default())
        .await
        .unwrap();
    // Member-side events while every host read and write is refused.
    label_member_deployment(&world, "cluster2", "during-403").await;
    tokio::time::sleep(LEASE * 2).await;
    let strip = |mut v: Value| {
        v["metadata"] = json!({"name": v["metadata"]["name"], "labels": v["metadata"]["labels"]});
        v
    };
    crbs.create(
        &PostParams::default(),
        &serde_json::from_value(strip(serde_json::to_value(&crb).unwrap())).unwrap(),
    )
    .await
    .unwrap();
    let mut rbv = strip(serde_json::to_value(&rb).unwrap());
    rbv["metadata"]["namespace"] = json!(NS);
    rbs.create(
        &PostParams::default(),
        &serde_json::from_value(rbv).unwrap(),
    )
    .await
    .unwrap();
    let healed = Instant::now();
    m.finish(&world, fx, healed, None).await;
}

/// Deleting the Domain withdraws no name, on either path, also across a restart of the
/// controller-manager; recreating it resumes updates.
#[tokio::test]
async fn j_deleting_the_domain_keeps_the_names_on_both_paths() {
    let mut guard = fixture().await;
    let fx = guard.as_mut().unwrap();
    let world = World::new(fx).await;
    let mut m = begin(&world, fx, "(j) Domain deleted").await;
    m.sample(
        vec![("embedded", fx.cm_dns), ("dns-server", fx.dns)],
        MEMBERS.to_vec(),
    );
    let domains: Api<api::multiclusterdns::Domain> = Api::namespaced(world.host.clone(), NS);
    domains
        .delete("fed", &DeleteParams::default())
        .await
        .unwrap();
    let records: Api<api::multiclusterdns::ServiceDNSRecord> =
        Api::namespaced(world.host.clone(), APP_NS);
    let all_domain_not_found = || async {
        let rs = records.list(&Default::default()).await.ok()?;
        rs.items
            .iter()
            .all(|r| {
                r.status.as_ref().is_some_and(|s| {
                    s.domain == ZONE
                        && s.conditions
                            .iter()
                            .any(|c| c.type_ == "Ready" && c.reason == "DomainNotFound")
                })
            })
            .then_some(())
    };
    common::eventually(
        CONVERGE,
        "every record says DomainNotFound",
        all_domain_not_found,
    )
    .await;
    let s = world.snapshot(fx).await.unwrap();
    assert_eq!(s, m.base, "{}", diff(&m.base, &s));
    // A restarted controller-manager keeps serving the zone: it follows from the
    // records, not from memory.
    m.stop_sampling().await;
    m.sample(vec![("dns-server", fx.dns)], MEMBERS.to_vec());
    fx.cm.kill();
    fx.restart_cm();
    common::eventually(
        CONVERGE,
        "the restarted embedded server answers",
        || async {
            (ready(&fx.cm_metrics) && answers(fx.cm_dns).await == m.base.embedded).then_some(())
        },
    )
    .await;
    m.stop_sampling().await;
    m.sample(
        vec![("embedded", fx.cm_dns), ("dns-server", fx.dns)],
        MEMBERS.to_vec(),
    );
    apply_domain(&world.host).await;
    common::eventually(CONVERGE, "every record Ready again", || async {
        let rs = records.list(&Default::default()).await.ok()?;
        rs.items
            .iter()
            .all(|r| {
                r.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                })
            })
            .then_some(())
    })
    .await;
    let healed = Instant::now();
    m.finish(&world, fx, healed, None).await;
}
