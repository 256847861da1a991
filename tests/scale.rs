//! The scale benchmark (`make bench-scale`, docs/benchmarks.md "Scale"): our
//! controller-manager and KubeFed v0.6.1's, one after the other, each on a fresh local
//! federation of the same shape (a host, N members, S LoadBalancer Services with ready
//! endpoints per member, one ServiceDNSRecord per Service name, F FederatedDeployments
//! placed in every member).
//!
//! Measured per run: the time from the controller's start to every record being complete
//! (status with every member's address, DNSEndpoint with every target) and every
//! federated Deployment being in every member, with p50/p90/p100 of the records; the
//! controller's peak RSS and CPU seconds; API writes per record, counted by watches;
//! CPU and writes per minute in the steady state after convergence; the latency of one
//! load balancer change to its DNSEndpoint (and, for ours, to the embedded server's
//! answer); and the writes after a controller restart.
//!
//! It is a benchmark, not a test: ignored by `cargo test`, run by `make bench-scale`
//! (`cargo test --release --test scale -- --ignored --nocapture`). Knobs (environment):
//! BENCH_MEMBERS (3), BENCH_SERVICES ("100,1000", a list), BENCH_FEDS (100),
//! BENCH_CONTROLLERS ("kubefed,kubefed-go"), BENCH_STEADY_S (60), BENCH_CHANGES (20),
//! BENCH_CSV (target/bench-scale.csv, appended).

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hickory_net::client::{Client, ClientHandle};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::udp::UdpClientStream;
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kubefed::api::DEFAULT_KUBEFED_NAMESPACE as NS;
use kubefed::api::multiclusterdns::DNSEndpoint;
use kubefed::kube::apply as kubeutil;
use kubefed::localup::{LocalFederation, Options};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const APP_NS: &str = "bench";
const ZONE: &str = "example.com";
const CONCURRENCY: usize = 64;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ctl {
    Ours,
    Go,
}

impl Ctl {
    fn name(self) -> &'static str {
        match self {
            Ctl::Ours => "kubefed",
            Ctl::Go => "kubefed-go v0.6.1",
        }
    }
}

fn apply() -> PatchParams {
    PatchParams::apply("bench").force()
}

fn lb_ip(member: usize, svc: usize) -> String {
    format!("10.{}.{}.{}", member + 10, svc / 250, svc % 250 + 1)
}

fn global(svc: usize) -> String {
    format!("svc-{svc}.{APP_NS}.fed.svc.{ZONE}")
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

#[derive(Clone, Debug, Default)]
struct Row {
    controller: String,
    members: usize,
    services: usize,
    feds: usize,
    converge: f64,
    p50: f64,
    p90: f64,
    p100: f64,
    feds_done: f64,
    rss_mib: f64,
    cpu_s: f64,
    status_writes_per_record: f64,
    endpoint_writes_per_record: f64,
    member_writes_per_copy: f64,
    steady_cpu_per_min: f64,
    steady_writes_per_min: f64,
    change_endpoint_p50_ms: f64,
    change_endpoint_p99_ms: f64,
    change_dns_p50_ms: Option<f64>,
    change_dns_p99_ms: Option<f64>,
    restart_writes: u64,
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

/// CPU seconds (user + system) and peak RSS (MiB) of a process.
fn usage(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields after the command: state is 0, utime 11, stime 12; 100 ticks per second.
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    (cpu, hwm / 1024.0)
}

/// Writes seen by watches of the host's records and DNSEndpoints and the members'
/// Deployments, with the time each record became complete and each Deployment appeared.
#[derive(Default)]
struct Seen {
    writes: u64,
    /// Writes by what was written: "record", "endpoint", "member".
    by: HashMap<&'static str, u64>,
    record_done: HashMap<String, Instant>,
    deployments: HashMap<String, usize>,
    feds_done: HashMap<String, Instant>,
    endpoint_targets: HashMap<String, Vec<String>>,
    record_complete: HashMap<String, bool>,
}

fn watch_writes<F>(
    what: &'static str,
    api: Api<DynamicObject>,
    seen: Arc<Mutex<Seen>>,
    cancel: CancellationToken,
    mut f: F,
) where
    F: FnMut(&mut Seen, &DynamicObject) + Send + 'static,
{
    tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
        loop {
            let e = tokio::select! { _ = cancel.cancelled() => return, e = events.next() => e };
            match e {
                Some(Ok(watcher::Event::Apply(o))) => {
                    let mut s = seen.lock().unwrap();
                    s.writes += 1;
                    *s.by.entry(what).or_default() += 1;
                    f(&mut s, &o);
                }
                Some(Ok(watcher::Event::InitApply(o))) => f(&mut seen.lock().unwrap(), &o),
                Some(Ok(watcher::Event::Delete(_))) => seen.lock().unwrap().writes += 1,
                Some(_) => {}
                None => return,
            }
        }
    });
}

async fn ask(server: SocketAddr, name: &str) -> Vec<String> {
    let conn = UdpClientStream::builder(server, TokioRuntimeProvider::default())
        .with_timeout(Some(Duration::from_secs(1)))
        .build();
    let (mut client, bg) = Client::<TokioRuntimeProvider>::from_sender(conn);
    tokio::spawn(bg);
    match client
        .query(Name::from_ascii(name).unwrap(), DNSClass::IN, RecordType::A)
        .await
    {
        Ok(r) => r
            .answers
            .iter()
            .filter_map(|a| match &a.data {
                RData::A(a) => Some(a.0.to_string()),
                _ => None,
            })
            .collect(),
        Err(_) => vec![],
    }
}

fn kubefed_go_crds() -> PathBuf {
    let gopath = std::env::var("GOPATH")
        .map(PathBuf::from)
        .unwrap_or_else(|_| kubefed::localup::default_bin_dir().join("../go"));
    gopath.join(
        "pkg/mod/sigs.k8s.io/kubefed@v0.6.1/charts/kubefed/charts/controllermanager/crds/crds.yaml",
    )
}

struct Controller {
    child: std::process::Child,
    dns: Option<SocketAddr>,
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_controller(ctl: Ctl, kubeconfig: &Path, dir: &Path, generation: u32) -> Controller {
    let metrics = common::free_addr();
    let log = std::fs::File::create(dir.join(format!("controller-{generation}.log"))).unwrap();
    let mut cmd;
    let mut dns = None;
    match ctl {
        Ctl::Ours => {
            let d = common::free_addr();
            cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kubefed"));
            cmd.args([
                "controller-manager",
                "--kubeconfig",
                &kubeconfig.display().to_string(),
                "--context",
                "cluster1",
                "--metrics-listen",
                &metrics,
                "--dns-listen",
                &d,
                "--identity",
                &format!("bench-{generation}"),
            ])
            .env("KUBEFED_LOG", "warn");
            dns = Some(d.parse().unwrap());
        }
        Ctl::Go => {
            cmd = std::process::Command::new(
                kubefed::localup::default_bin_dir().join("kubefed-go-controller-manager"),
            );
            cmd.args([
                "--kubeconfig",
                &kubeconfig.display().to_string(),
                "--kubefed-namespace",
                NS,
                "--metrics-addr",
                &metrics,
                "--healthz-addr",
                &common::free_addr(),
                "-v=1",
            ]);
        }
    }
    cmd.stdout(log.try_clone().unwrap()).stderr(log);
    Controller {
        child: kubefed::localup::spawn_owned(cmd).expect("the controller starts"),
        dns,
    }
}

async fn run(ctl: Ctl, members: usize, services: usize, feds: usize) -> Row {
    let dir = common::unique_dir("scale");
    let mut opts = Options::new(dir.join("fed"), members + 1);
    opts.ready_timeout = Duration::from_secs(300);
    let fed = LocalFederation::start(opts)
        .await
        .expect("a local federation");
    let kc = fed.kubeconfig_path().to_path_buf();
    let host = fed.client("cluster1").await.unwrap();
    kubeutil::ensure_namespace(&host, NS).await.unwrap();
    kubeutil::ensure_namespace(&host, APP_NS).await.unwrap();
    match ctl {
        Ctl::Ours => kubeutil::apply_crds(&host, &kubefed::api::crds(), Duration::from_secs(120))
            .await
            .unwrap(),
        Ctl::Go => {
            let out = std::process::Command::new(common::kubectl())
                .args([
                    "--kubeconfig",
                    &kc.display().to_string(),
                    "--context",
                    "cluster1",
                ])
                .args([
                    "apply",
                    "--server-side",
                    "-f",
                    &kubefed_go_crds().display().to_string(),
                ])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            // Our CRDs for the DNS kinds' printer columns are not needed; KubeFed's are
            // what it expects.
        }
    }
    kubeutil::apply_yaml(
        &host,
        &format!(
            "apiVersion: core.kubefed.io/v1beta1\nkind: KubeFedConfig\nmetadata: {{name: kubefed, namespace: {NS}}}\nspec:\n  scope: Cluster\n  featureGates:\n  - {{name: CrossClusterServiceDiscovery, configuration: Enabled}}\n  - {{name: FederatedIngress, configuration: Enabled}}\n  - {{name: PushReconciler, configuration: Enabled}}\n  - {{name: SchedulerPreferences, configuration: Enabled}}\n  - {{name: RawResourceStatusCollection, configuration: Disabled}}\n  controllerDuration: {{availableDelay: 20s, unavailableDelay: 60s}}\n  leaderElect: {{leaseDuration: 15s, renewDeadline: 10s, retryPeriod: 5s, resourceLock: configmaps}}\n  clusterHealthCheck: {{period: 10s, timeout: 3s, failureThreshold: 3, successThreshold: 1}}\n  syncController: {{adoptResources: Enabled}}\n---\napiVersion: multiclusterdns.kubefed.io/v1alpha1\nkind: Domain\nmetadata: {{name: fed, namespace: {NS}}}\ndomain: {ZONE}\n"
        ),
        NS,
    )
    .await
    .unwrap();
    let names: Vec<String> = (2..=members + 1).map(|i| format!("cluster{i}")).collect();
    let kcs = kc.display().to_string();
    std::thread::scope(|s| {
        for m in &names {
            let kcs = kcs.clone();
            s.spawn(move || {
                let out = common::kubefed(&[
                    "join",
                    m,
                    "--cluster-context",
                    m,
                    "--host-cluster-context",
                    "cluster1",
                    "--kubeconfig",
                    &kcs,
                ]);
                assert!(
                    out.status.success(),
                    "join {m}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            });
        }
    });
    for t in ["namespaces", "deployments.apps"] {
        let out = common::kubefed(&[
            "enable",
            t,
            "--host-cluster-context",
            "cluster1",
            "--kubeconfig",
            &kcs,
        ]);
        assert!(
            out.status.success(),
            "enable {t}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The members' workload.
    let setup = Instant::now();
    for (mi, m) in names.iter().enumerate() {
        let c = fed.client(m).await.unwrap();
        kubeutil::ensure_namespace(&c, APP_NS).await.unwrap();
        Api::<Node>::all(c.clone())
            .patch("n1", &apply(), &Patch::Apply(json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": "n1", "labels": {"topology.kubernetes.io/region": format!("r{mi}"),
                    "topology.kubernetes.io/zone": format!("r{mi}-a"),
                    // KubeFed v0.6 reads only the beta labels.
                    "failure-domain.beta.kubernetes.io/region": format!("r{mi}"),
                    "failure-domain.beta.kubernetes.io/zone": format!("r{mi}-a")}}})))
            .await
            .unwrap();
        futures::stream::iter(0..services)
            .for_each_concurrent(CONCURRENCY, |i| {
                let c = c.clone();
                async move {
                    let name = format!("svc-{i}");
                    let svcs: Api<Service> = Api::namespaced(c.clone(), APP_NS);
                    svcs.patch(&name, &apply(), &Patch::Apply(json!({"apiVersion": "v1", "kind": "Service",
                        "metadata": {"name": name, "namespace": APP_NS, "labels": {"kubefed.io/managed": "true"}},
                        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "selector": {"app": name}}})))
                        .await
                        .unwrap();
                    svcs.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({
                        "status": {"loadBalancer": {"ingress": [{"ip": lb_ip(mi, i)}]}}})))
                        .await
                        .unwrap();
                    Api::<EndpointSlice>::namespaced(c.clone(), APP_NS)
                        .patch(&name, &apply(), &Patch::Apply(json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                            "metadata": {"name": name, "namespace": APP_NS, "labels": {"kubernetes.io/service-name": name}},
                            "addressType": "IPv4",
                            "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": true}}],
                            "ports": [{"port": 80, "protocol": "TCP"}]})))
                        .await
                        .unwrap();
                    // KubeFed v0.6 reads Endpoints, not EndpointSlices, and sees member
                    // objects only when labelled as managed (as if a FederatedService
                    // had propagated them).
                    Api::<Endpoints>::namespaced(c, APP_NS)
                        .patch(&name, &apply(), &Patch::Apply(json!({"apiVersion": "v1", "kind": "Endpoints",
                            "metadata": {"name": name, "namespace": APP_NS, "labels": {"kubefed.io/managed": "true"}},
                            "subsets": [{"addresses": [{"ip": "10.244.0.5"}], "ports": [{"port": 80}]}]})))
                        .await
                        .unwrap();
                }
            })
            .await;
    }
    let records: Api<DynamicObject> = Api::namespaced_with(
        host.clone(),
        APP_NS,
        &ApiResource::erase::<kubefed::api::multiclusterdns::ServiceDNSRecord>(&()),
    );
    futures::stream::iter(0..services)
        .for_each_concurrent(CONCURRENCY, |i| {
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
    let placement = json!({"clusterSelector": {}});
    Api::<DynamicObject>::namespaced_with(host.clone(), APP_NS, &federated("FederatedNamespace"))
        .patch(
            APP_NS,
            &apply(),
            &Patch::Apply(json!({"apiVersion": "types.kubefed.io/v1beta1",
            "kind": "FederatedNamespace", "metadata": {"name": APP_NS, "namespace": APP_NS},
            "spec": {"placement": placement}})),
        )
        .await
        .unwrap();
    let fdeps: Api<DynamicObject> =
        Api::namespaced_with(host.clone(), APP_NS, &federated("FederatedDeployment"));
    futures::stream::iter(0..feds)
        .for_each_concurrent(CONCURRENCY, |i| {
            let fdeps = fdeps.clone();
            let placement = placement.clone();
            async move {
                let name = format!("dep-{i}");
                fdeps
                    .patch(&name, &apply(), &Patch::Apply(json!({"apiVersion": "types.kubefed.io/v1beta1",
                        "kind": "FederatedDeployment", "metadata": {"name": name, "namespace": APP_NS},
                        "spec": {"template": {"spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                            "template": {"metadata": {"labels": {"app": name}},
                                "spec": {"containers": [{"name": "c", "image": "pause"}]}}}},
                            "placement": placement}})))
                    .await
                    .unwrap();
            }
        })
        .await;
    eprintln!(
        "  {}: {members} members x {services} services, {feds} federated deployments set up in {:.0}s",
        ctl.name(),
        setup.elapsed().as_secs_f64()
    );

    // Watches first, then the controller.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let cancel = CancellationToken::new();
    let want = members;
    watch_writes(
        "record",
        records.clone(),
        seen.clone(),
        cancel.clone(),
        move |s, o| {
            let name = o.metadata.name.clone().unwrap_or_default();
            let full = o.data["status"]["dns"].as_array().is_some_and(|d| {
                d.len() == want
                    && d.iter().all(|c| {
                        c["loadBalancer"]["ingress"]
                            .as_array()
                            .is_some_and(|i| !i.is_empty())
                    })
            });
            s.record_complete.insert(name, full);
        },
    );
    let eps: Api<DynamicObject> = Api::namespaced_with(
        host.clone(),
        APP_NS,
        &ApiResource::erase::<DNSEndpoint>(&()),
    );
    watch_writes(
        "endpoint",
        eps.clone(),
        seen.clone(),
        cancel.clone(),
        move |s, o| {
            let name = o.metadata.name.clone().unwrap_or_default();
            let record = name.trim_start_matches("service-").to_string();
            let i: usize = record
                .trim_start_matches("svc-")
                .parse()
                .unwrap_or(usize::MAX);
            let targets: Vec<String> = o.data["spec"]["endpoints"]
                .as_array()
                .and_then(|es| {
                    es.iter()
                        .find(|e| e["dnsName"].as_str() == Some(&global(i)))
                })
                .and_then(|e| e["targets"].as_array())
                .map(|t| {
                    t.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            s.endpoint_targets.insert(record, targets);
        },
    );
    for m in &names {
        let c = fed.client(m).await.unwrap();
        let m2 = m.clone();
        let api: Api<DynamicObject> =
            Api::namespaced_with(c, APP_NS, &ApiResource::erase::<Deployment>(&()));
        let members_n = members;
        watch_writes("member", api, seen.clone(), cancel.clone(), move |s, o| {
            let name = o.metadata.name.clone().unwrap_or_default();
            if s.feds_done.contains_key(&name) {
                return;
            }
            let n = s.deployments.entry(format!("{m2}/{name}")).or_insert(0);
            *n = 1;
            let have = (2..=members_n + 1)
                .filter(|k| s.deployments.contains_key(&format!("cluster{k}/{name}")))
                .count();
            if have == members_n {
                s.feds_done.insert(name, Instant::now());
            }
        });
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes_before = seen.lock().unwrap().by.clone();

    let mut controller = start_controller(ctl, &kc, &dir, 0);
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(env("BENCH_TIMEOUT_S", 1800));
    let mut rss_peak: f64 = 0.0;
    loop {
        {
            let mut s = seen.lock().unwrap();
            let now = Instant::now();
            let done: Vec<String> = s
                .record_complete
                .iter()
                .filter(|(k, full)| {
                    **full
                        && s.endpoint_targets
                            .get(*k)
                            .is_some_and(|t| t.len() == members)
                        && !s.record_done.contains_key(*k)
                })
                .map(|(k, _)| k.clone())
                .collect();
            for k in done {
                s.record_done.insert(k, now);
            }
            if s.record_done.len() == services && s.feds_done.len() == feds {
                break;
            }
        }
        rss_peak = rss_peak.max(usage(controller.child.id()).1);
        if let Ok(Some(status)) = controller.child.try_wait() {
            let log = std::fs::read_to_string(dir.join("controller-0.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            panic!("{} exited with {status}: {}", ctl.name(), tail.join("\n"));
        }
        assert!(
            Instant::now() < deadline,
            "{} did not converge: {} of {services} records, {} of {feds} deployments",
            ctl.name(),
            seen.lock().unwrap().record_done.len(),
            seen.lock().unwrap().feds_done.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let converge = t0.elapsed().as_secs_f64();
    let (cpu, rss) = usage(controller.child.id());
    let (mut times, feds_done, writes) = {
        let s = seen.lock().unwrap();
        let times: Vec<f64> = s
            .record_done
            .values()
            .map(|t| t.duration_since(t0).as_secs_f64())
            .collect();
        let feds_done = s
            .feds_done
            .values()
            .map(|t| t.duration_since(t0).as_secs_f64())
            .fold(0.0, f64::max);
        let delta = |k: &str| {
            s.by.get(k).copied().unwrap_or(0) - writes_before.get(k).copied().unwrap_or(0)
        };
        (
            times,
            feds_done,
            (delta("record"), delta("endpoint"), delta("member")),
        )
    };
    let mut row = Row {
        controller: ctl.name().into(),
        members,
        services,
        feds,
        converge,
        p50: pct(&mut times, 0.5),
        p90: pct(&mut times, 0.9),
        p100: pct(&mut times, 1.0),
        feds_done,
        rss_mib: rss.max(rss_peak),
        cpu_s: cpu,
        status_writes_per_record: writes.0 as f64 / services as f64,
        endpoint_writes_per_record: writes.1 as f64 / services as f64,
        member_writes_per_copy: writes.2 as f64 / (feds * members).max(1) as f64,
        ..Default::default()
    };

    // Steady state.
    let steady = Duration::from_secs(env("BENCH_STEADY_S", 60));
    let (cpu0, _) = usage(controller.child.id());
    let w0 = seen.lock().unwrap().writes;
    tokio::time::sleep(steady).await;
    let (cpu1, _) = usage(controller.child.id());
    let w1 = seen.lock().unwrap().writes;
    let minutes = steady.as_secs_f64() / 60.0;
    row.steady_cpu_per_min = (cpu1 - cpu0) / minutes;
    row.steady_writes_per_min = (w1 - w0) as f64 / minutes;

    // Single load balancer changes in the first member.
    let c2 = fed.client("cluster2").await.unwrap();
    let svcs: Api<Service> = Api::namespaced(c2, APP_NS);
    let (mut to_ep, mut to_dns) = (vec![], vec![]);
    for k in 0..env("BENCH_CHANGES", 20).min(services) {
        let ip = format!("10.99.{}.{}", k / 250, k % 250 + 1);
        let started = Instant::now();
        svcs.patch_status(
            &format!("svc-{k}"),
            &PatchParams::default(),
            &Patch::Merge(json!({
            "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}})),
        )
        .await
        .unwrap();
        let (mut ep_at, mut dns_at) = (None, None);
        while ep_at.is_none() || (controller.dns.is_some() && dns_at.is_none()) {
            if ep_at.is_none()
                && seen
                    .lock()
                    .unwrap()
                    .endpoint_targets
                    .get(&format!("svc-{k}"))
                    .is_some_and(|t| t.contains(&ip))
            {
                ep_at = Some(started.elapsed());
            }
            if let Some(d) = controller.dns
                && dns_at.is_none()
                && ask(d, &global(k)).await.contains(&ip)
            {
                dns_at = Some(started.elapsed());
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "change {k} never arrived"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        to_ep.push(ep_at.unwrap().as_secs_f64() * 1000.0);
        if let Some(d) = dns_at {
            to_dns.push(d.as_secs_f64() * 1000.0);
        }
    }
    row.change_endpoint_p50_ms = pct(&mut to_ep, 0.5);
    row.change_endpoint_p99_ms = pct(&mut to_ep, 0.99);
    if !to_dns.is_empty() {
        row.change_dns_p50_ms = Some(pct(&mut to_dns, 0.5));
        row.change_dns_p99_ms = Some(pct(&mut to_dns, 0.99));
    }

    // A restart: writes in the lease duration plus 30 s after it.
    drop(controller);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let w0 = seen.lock().unwrap().writes;
    controller = start_controller(ctl, &kc, &dir, 1);
    tokio::time::sleep(Duration::from_secs(15 + 30)).await;
    row.restart_writes = seen.lock().unwrap().writes - w0;
    drop(controller);
    cancel.cancel();
    drop(fed);
    let _ = std::fs::remove_dir_all(dir.join("fed"));
    row
}

fn print(rows: &[Row]) {
    println!(
        "| controller | members x services | converge (s) | records p50/p90/p100 (s) | {} federated deployments (s) | peak RSS (MiB) | CPU (s) | writes per record (status + DNSEndpoint) | writes per member copy | steady CPU (s/min) | steady writes/min | LB change to DNSEndpoint p50/p99 (ms) | to DNS answer p50/p99 (ms) | writes after restart |",
        rows.first().map(|r| r.feds).unwrap_or(0)
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let dns = match (r.change_dns_p50_ms, r.change_dns_p99_ms) {
            (Some(a), Some(b)) => format!("{a:.0} / {b:.0}"),
            _ => "–".into(),
        };
        println!(
            "| {} | {} x {} | {:.1} | {:.1} / {:.1} / {:.1} | {:.1} | {:.0} | {:.1} | {:.2} + {:.2} | {:.2} | {:.2} | {:.1} | {:.0} / {:.0} | {} | {} |",
            r.controller,
            r.members,
            r.services,
            r.converge,
            r.p50,
            r.p90,
            r.p100,
            r.feds_done,
            r.rss_mib,
            r.cpu_s,
            r.status_writes_per_record,
            r.endpoint_writes_per_record,
            r.member_writes_per_copy,
            r.steady_cpu_per_min,
            r.steady_writes_per_min,
            r.change_endpoint_p50_ms,
            r.change_endpoint_p99_ms,
            dns,
            r.restart_writes
        );
    }
}

fn csv(rows: &[Row]) {
    use std::io::Write;
    let path = std::env::var("BENCH_CSV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-scale.csv")
        });
    let new = !path.exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    if new {
        writeln!(f, "controller,members,services,feds,converge_s,p50_s,p90_s,p100_s,feds_s,rss_mib,cpu_s,status_writes_per_record,endpoint_writes_per_record,member_writes_per_copy,steady_cpu_s_per_min,steady_writes_per_min,change_ep_p50_ms,change_ep_p99_ms,change_dns_p50_ms,change_dns_p99_ms,restart_writes").unwrap();
    }
    for r in rows {
        let opt = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_default();
        writeln!(
            f,
            "{},{},{},{},{:.2},{:.2},{:.2},{:.2},{:.2},{:.1},{:.2},{:.3},{:.3},{:.3},{:.3},{:.2},{:.1},{:.1},{},{},{}",
            r.controller,
            r.members,
            r.services,
            r.feds,
            r.converge,
            r.p50,
            r.p90,
            r.p100,
            r.feds_done,
            r.rss_mib,
            r.cpu_s,
            r.status_writes_per_record,
            r.endpoint_writes_per_record,
            r.member_writes_per_copy,
            r.steady_cpu_per_min,
            r.steady_writes_per_min,
            r.change_endpoint_p50_ms,
            r.change_endpoint_p99_ms,
            opt(r.change_dns_p50_ms),
            opt(r.change_dns_p99_ms),
            r.restart_writes
        )
        .unwrap();
    }
    eprintln!("appended to {}", path.display());
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a benchmark: make bench-scale"]
async fn scale_benchmark() {
    let members: usize = env("BENCH_MEMBERS", 3);
    let feds: usize = env("BENCH_FEDS", 100);
    let services: Vec<usize> = std::env::var("BENCH_SERVICES")
        .unwrap_or_else(|_| "100,1000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let controllers: Vec<Ctl> = std::env::var("BENCH_CONTROLLERS")
        .unwrap_or_else(|_| "kubefed,kubefed-go".into())
        .split(',')
        .map(|c| match c.trim() {
            "kubefed-go" => Ctl::Go,
            _ => Ctl::Ours,
        })
        .collect();
    let mut rows = vec![];
    for s in &services {
        for c in &controllers {
            let row = run(*c, members, *s, feds).await;
            print(std::slice::from_ref(&row));
            csv(std::slice::from_ref(&row));
            rows.push(row);
        }
    }
    println!();
    print(&rows);
}
