//! The controller manager: wires the admin endpoint, leader election, the member-cluster
//! registry and the controllers, and shuts them down in order.
//!
//! Start-up: serve /healthz at once (/readyz once leading and the registry has synced),
//! wait for the Lease, then run the controllers until SIGTERM/SIGINT or until leadership
//! is lost. On a signal the lease is released so a standby takes over at once; on a lost
//! lease the process exits non-zero without touching anything more.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use kube::api::Api;
use kube::runtime::watcher;
use prometheus::Registry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::admin::http::{self, Readiness};
use crate::admin::leader::{LeaderConfig, LeaderElector};
use crate::api::core::KubeFedConfig;
use crate::cluster::controller::{self as cluster_controller, ClusterMetrics};
use crate::cluster::health::{HealthConfig, parse_go_duration};
use crate::cluster::registry::ClusterRegistry;
use crate::dns::controllers::{
    self as dns_controllers, DnsControllerConfig, DnsControllerMetrics, ExternalDnsCopy,
};
use crate::dns::embedded;
use crate::dns::server::{self, DnsMetrics, ServerConfig, Source};
use crate::dns::writer::{self, WriterConfig, WriterMetrics};

/// Name of the KubeFedConfig the controller manager reads, as in KubeFed.
pub const KUBEFED_CONFIG_NAME: &str = "kubefed";

#[derive(Clone, Debug)]
pub struct Options {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub namespace: String,
    pub metrics_listen: SocketAddr,
    pub leader_elect: bool,
    pub lease_name: String,
    pub identity: String,
    pub externaldns_copy: ExternalDnsCopy,
    /// Write DNSEndpoints into this etcd in the skydns layout (empty: don't).
    pub etcd_endpoints: Vec<String>,
    pub etcd_prefix: String,
    /// Serve the DNSEndpoint names in-process on this address (UDP and TCP).
    pub dns_listen: Option<SocketAddr>,
    /// Zones the embedded server answers besides the Domains' zones.
    pub dns_zones: Vec<String>,
}

pub async fn host_client(
    kubeconfig: Option<&PathBuf>,
    context: Option<&str>,
) -> anyhow::Result<kube::Client> {
    let opts = kube::config::KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = match kubeconfig {
        Some(p) => {
            let kc = kube::config::Kubeconfig::read_from(p)
                .with_context(|| format!("reading {}", p.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &opts).await?
        }
        None => kube::Config::infer()
            .await
            .context("no kubeconfig and not in a cluster")?,
    };
    Ok(kube::Client::try_from(config)?)
}

pub async fn run(opts: Options, shutdown: CancellationToken) -> anyhow::Result<()> {
    let host = host_client(opts.kubeconfig.as_ref(), opts.context.as_deref()).await?;
    let registry = Registry::new();
    let ready = Readiness::default();
    let admin = http::serve(
        opts.metrics_listen,
        registry.clone(),
        ready.clone(),
        shutdown.clone(),
    )
    .await
    .with_context(|| format!("listening on {}", opts.metrics_listen))?;
    info!(addr = %admin.local_addr, "serving /metrics, /healthz, /readyz");

    let kfc_api: Api<KubeFedConfig> = Api::namespaced(host.clone(), &opts.namespace);
    let kfc = match kfc_api.get_opt(KUBEFED_CONFIG_NAME).await {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "reading KubeFedConfig; using defaults");
            None
        }
    };
    let health_cfg = HealthConfig::from_spec(kfc.as_ref().map(|c| &c.spec));
    let (health_tx, health_rx) = watch::channel(health_cfg);

    let mut lcfg = LeaderConfig::new(&opts.namespace, &opts.lease_name, &opts.identity);
    if let Some(le) = kfc.as_ref().and_then(|c| c.spec.leader_elect.as_ref()) {
        let d = |s: &Option<String>| {
            s.as_deref()
                .and_then(parse_go_duration)
                .filter(|d| !d.is_zero())
        };
        lcfg.lease_duration = d(&le.lease_duration).unwrap_or(lcfg.lease_duration);
        lcfg.renew_deadline = d(&le.renew_deadline).unwrap_or(lcfg.renew_deadline);
        lcfg.retry_period = d(&le.retry_period).unwrap_or(lcfg.retry_period);
    }
    // Every replica answers DNS, leader or not: serving only reads the host.
    let mut dns_tasks = tokio::task::JoinSet::new();
    let dns = match opts.dns_listen {
        None => None,
        Some(listen) => {
            let dns = server::start(ServerConfig::new(
                listen,
                vec![],
                Source::InProcess,
                DnsMetrics::register(&registry)?,
            ))
            .await
            .with_context(|| format!("serving DNS on {listen}"))?;
            info!(addr = %dns.udp_addr, "serving the DNSEndpoint names (embedded DNS)");
            dns_tasks.spawn(embedded::run(
                host.clone(),
                opts.namespace.clone(),
                opts.dns_zones.clone(),
                dns.index.clone(),
                shutdown.clone(),
            ));
            Some(dns)
        }
    };
    let elector = LeaderElector::new(host.clone(), lcfg);
    if opts.leader_elect && !elector.acquire(&shutdown).await {
        return Ok(());
    }

    let work = shutdown.child_token();
    let clusters = ClusterRegistry::new(&opts.namespace, health_cfg.timeout);
    let cluster_metrics = ClusterMetrics::register(&registry)?;
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(clusters.clone().run(host.clone(), work.clone()));
    tasks.spawn(cluster_controller::run(
        clusters.clone(),
        host.clone(),
        opts.namespace.clone(),
        health_rx,
        cluster_metrics,
        work.clone(),
    ));
    tasks.spawn(follow_kubefed_config(kfc_api, health_tx, work.clone()));
    tasks.spawn(dns_controllers::run(
        host.clone(),
        clusters.clone(),
        DnsControllerConfig {
            namespace: opts.namespace.clone(),
            externaldns_copy: opts.externaldns_copy,
        },
        DnsControllerMetrics::register(&registry)?,
        opts.identity.clone(),
        work.clone(),
    ));
    tasks.spawn(crate::propagation::run_replica_scheduling(
        host.clone(),
        clusters.clone(),
        opts.namespace.clone(),
        work.clone(),
    ));
    tasks.spawn(crate::propagation::run(
        host.clone(),
        clusters.clone(),
        opts.namespace.clone(),
        work.clone(),
    ));
    if !opts.etcd_endpoints.is_empty() {
        tasks.spawn(writer::run(
            host.clone(),
            WriterConfig::new(opts.etcd_endpoints.clone(), &opts.etcd_prefix),
            WriterMetrics::register(&registry)?,
            work.clone(),
        ));
    }
    ready.set(true);

    let lost = if opts.leader_elect {
        !elector.hold(&work).await
    } else {
        work.cancelled().await;
        false
    };
    ready.set(false);
    work.cancel();
    while tasks.join_next().await.is_some() {}
    if let Some(dns) = dns {
        dns.stop().await;
    }
    dns_tasks.abort_all();
    if lost {
        anyhow::bail!("lost leadership; exiting so that a restart starts clean");
    }
    if opts.leader_elect {
        elector.release().await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), admin.task).await;
    info!("stopped");
    Ok(())
}

/// Applies KubeFedConfig changes to the health settings without a restart.
async fn follow_kubefed_config(
    api: Api<KubeFedConfig>,
    tx: watch::Sender<HealthConfig>,
    cancel: CancellationToken,
) {
    let cfg = watcher::Config::default().fields(&format!("metadata.name={KUBEFED_CONFIG_NAME}"));
    let mut stream = std::pin::pin!(kube::runtime::WatchStreamExt::default_backoff(
        watcher::watcher(api, cfg)
    ));
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => return,
            n = stream.next() => n,
        };
        match next {
            Some(Ok(watcher::Event::Apply(c) | watcher::Event::InitApply(c))) => {
                let h = HealthConfig::from_spec(Some(&c.spec));
                tx.send_if_modified(|cur| {
                    let changed = *cur != h;
                    *cur = h;
                    changed
                });
            }
            Some(Ok(watcher::Event::Delete(_))) => {
                tx.send_if_modified(|cur| {
                    let changed = *cur != HealthConfig::default();
                    *cur = HealthConfig::default();
                    changed
                });
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => warn!(error = %e, "watching KubeFedConfig"),
            None => return,
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn signalled() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: shutting down"),
        _ = int.recv() => info!("SIGINT: shutting down"),
    }
}
