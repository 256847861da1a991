//! `kubefed demo`: seed 004's multi-cluster DNS workflow on a local federation, every
//! component real. A host and two members (regions and zones from node labels), the
//! CRDs, `join`, member Services with load balancer status and ready EndpointSlices
//! (there is no cloud to assign them), the Domain and ServiceDNSRecord from `examples/`,
//! the controller-manager writing skydns into etcd and `kubefed dns-server` answering,
//! then `dig` for the global, region and zone names.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::api::{self, DEFAULT_KUBEFED_NAMESPACE};
use crate::cluster::join::{self, JoinOptions};
use crate::controller_manager;
use crate::dns::controllers::ExternalDnsCopy;
use crate::dns::server::{self, DnsMetrics, ServerConfig, Source, ZoneConfig};
use crate::kube::apply::FIELD_MANAGER;
use crate::localup::{self, LocalFederation, Options};

/// A member of the demo: where it is and its load balancer address.
struct Member {
    name: &'static str,
    region: &'static str,
    zone: &'static str,
    lb_ip: &'static str,
}

const MEMBERS: [Member; 2] = [
    Member {
        name: "cluster2",
        region: "europe-west1",
        zone: "europe-west1-b",
        lb_ip: "203.0.113.10",
    },
    Member {
        name: "cluster3",
        region: "us-east1",
        zone: "us-east1-c",
        lb_ip: "198.51.100.20",
    },
];
const ZONE: &str = "example.com";
const PREFIX: &str = "test-service.test-namespace.test-domain.svc";

pub struct DemoOptions {
    pub state_dir: PathBuf,
    pub once: bool,
    /// Where the example Domain and ServiceDNSRecord are read from.
    pub examples_dir: PathBuf,
    /// Where the logs go (announced first, so a user knows where to look).
    pub log_file: Option<PathBuf>,
}

/// The questions the demo asks and the answers it expects.
pub fn expected_answers() -> Vec<(String, Vec<String>)> {
    let mut out = vec![(format!("{PREFIX}.{ZONE}"), {
        let mut v: Vec<String> = MEMBERS.iter().map(|m| m.lb_ip.to_string()).collect();
        v.sort();
        v
    })];
    for m in &MEMBERS {
        out.push((
            format!("{PREFIX}.{}.{ZONE}", m.region),
            vec![m.lb_ip.to_string()],
        ));
        out.push((
            format!("{PREFIX}.{}.{}.{ZONE}", m.zone, m.region),
            vec![m.lb_ip.to_string()],
        ));
    }
    out
}

fn step(msg: &str) {
    println!("==> {msg}");
}

pub async fn run(opts: DemoOptions, shutdown: CancellationToken) -> anyhow::Result<()> {
    if let Some(f) = &opts.log_file {
        step(&format!("logging to {}", f.display()));
    }
    step("starting etcd and three kube-apiservers (cluster1 = host, cluster2/cluster3 = members)");
    std::fs::create_dir_all(&opts.state_dir)?;
    let fed = LocalFederation::start(Options::new(&opts.state_dir, 3))
        .await
        .context("starting the federation")?;
    let kubeconfig = fed.kubeconfig_path().to_path_buf();
    step("installing the kube-federation-system namespace and the kubefed CRDs on cluster1");
    let host = fed.client("cluster1").await?;
    crate::kube::apply::ensure_namespace(&host, DEFAULT_KUBEFED_NAMESPACE).await?;
    crate::kube::apply::apply_crds(&host, &api::crds(), Duration::from_secs(60)).await?;

    for m in &MEMBERS {
        step(&format!(
            "{}: node in {}/{}, Service test-namespace/test-service with load balancer {}",
            m.name, m.region, m.zone, m.lb_ip
        ));
        member_setup(&fed.client(m.name).await?, m).await?;
        join::join(&JoinOptions {
            host_context: Some("cluster1".into()),
            kubeconfig: Some(kubeconfig.clone()),
            ..JoinOptions::new(m.name)
        })
        .await?;
        println!(
            "    kubefed join {} --cluster-context {} --host-cluster-context cluster1",
            m.name, m.name
        );
    }

    step("applying examples/domain.yaml and examples/servicednsrecord.yaml on the host");
    crate::kube::apply::ensure_namespace(&host, "test-namespace").await?;
    for f in ["domain.yaml", "servicednsrecord.yaml"] {
        let path = opts.examples_dir.join(f);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        crate::kube::apply::apply_yaml(&host, &text, "default").await?;
    }

    step("running the controller-manager (writing skydns into etcd) and kubefed dns-server");
    let work = shutdown.child_token();
    let cm_opts = controller_manager::Options {
        kubeconfig: Some(kubeconfig.clone()),
        context: Some("cluster1".into()),
        namespace: DEFAULT_KUBEFED_NAMESPACE.into(),
        metrics_listen: "127.0.0.1:0".parse()?,
        leader_elect: true,
        lease_name: "kubefed-controller-manager".into(),
        identity: "demo".into(),
        externaldns_copy: ExternalDnsCopy::Auto,
        etcd_endpoints: vec![fed.etcd_url().to_string()],
        etcd_prefix: "/skydns".into(),
        etcd_security: Default::default(),
        dns_listen: None,
        dns_zones: vec![],
        kube_api_qps: 100,
        kube_api_burst: 200,
        dns_xfr: None,
    };
    let cm = tokio::spawn(controller_manager::run(cm_opts, work.clone()));
    let dns_listen: SocketAddr = format!("127.0.0.1:{}", localup::free_port()?).parse()?;
    let registry = prometheus::Registry::new();
    let dns = server::start(ServerConfig::new(
        dns_listen,
        vec![ZoneConfig::new(ZONE)],
        Source::Etcd {
            endpoints: vec![fed.etcd_url().to_string()],
        },
        DnsMetrics::register(&registry)?,
    ))
    .await?;
    let addr = dns.udp_addr;
    println!("    DNS on {addr} (UDP and TCP), zone {ZONE}");

    step("asking with dig");
    let expected = expected_answers();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut answers;
    loop {
        answers = Vec::new();
        for (name, _) in &expected {
            answers.push(dig(addr, name).await?);
        }
        let good = answers
            .iter()
            .zip(&expected)
            .all(|(got, (_, want))| got == want);
        if good || Instant::now() > deadline || shutdown.is_cancelled() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut all_good = true;
    for ((name, want), got) in expected.iter().zip(&answers) {
        let ok = got == want;
        all_good &= ok;
        println!("$ dig @{} -p {} {name} +short", addr.ip(), addr.port());
        for a in got {
            println!("{a}");
        }
        if !ok {
            println!("    (expected {})", want.join(" "));
        }
    }

    let result = if opts.once {
        if all_good {
            Ok(())
        } else {
            Err(anyhow::anyhow!(
                "the DNS answers were not the expected ones"
            ))
        }
    } else {
        println!();
        println!("The federation stays up until Ctrl-C. Try:");
        println!("  dig @{} -p {} {PREFIX}.{ZONE}", addr.ip(), addr.port());
        println!(
            "  {} --kubeconfig {} --context cluster1 get kubefedclusters,servicednsrecords,dnsendpoints -A",
            localup::default_bin_dir().join("kubectl").display(),
            kubeconfig.display()
        );
        shutdown.cancelled().await;
        println!("stopping");
        Ok(())
    };
    work.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), cm).await;
    dns.stop().await;
    drop(fed);
    if result.is_ok() && opts.once {
        println!("demo ok");
    }
    result
}

async fn member_setup(c: &kube::Client, m: &Member) -> anyhow::Result<()> {
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": format!("{}-node", m.name), "labels": {
        "topology.kubernetes.io/region": m.region, "topology.kubernetes.io/zone": m.zone}}});
    Api::<Node>::all(c.clone())
        .patch(&format!("{}-node", m.name), &pp, &Patch::Apply(node))
        .await?;
    crate::kube::apply::ensure_namespace(c, "test-namespace").await?;
    let svcs: Api<Service> = Api::namespaced(c.clone(), "test-namespace");
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "test-service", "namespace": "test-namespace"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "test"}, "ports": [{"port": 80, "targetPort": 8080}]}});
    svcs.patch("test-service", &pp, &Patch::Apply(svc)).await?;
    svcs.patch_status(
        "test-service",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": [{"ip": m.lb_ip}]}}})),
    )
    .await?;
    let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "test-service-1", "namespace": "test-namespace", "labels": {"kubernetes.io/service-name": "test-service"}},
        "addressType": "IPv4", "endpoints": [{"addresses": ["10.244.1.10"], "conditions": {"ready": true}}],
        "ports": [{"port": 8080, "protocol": "TCP"}]});
    Api::<EndpointSlice>::namespaced(c.clone(), "test-namespace")
        .patch("test-service-1", &pp, &Patch::Apply(slice))
        .await?;
    Ok(())
}

/// `dig +short` answers, sorted.
async fn dig(addr: SocketAddr, name: &str) -> anyhow::Result<Vec<String>> {
    let out = tokio::process::Command::new("dig")
        .args([
            &format!("@{}", addr.ip()),
            "-p",
            &addr.port().to_string(),
            name,
            "A",
            "+short",
            "+time=1",
            "+tries=1",
        ])
        .output()
        .await;
    let out = match out {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!(
                "dig not found: install it with `apt-get install bind9-dnsutils` (make deps does)"
            )
        }
        Err(e) => return Err(e.into()),
    };
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    Ok(v)
}
