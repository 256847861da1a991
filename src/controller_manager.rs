//! The controller manager: wires the admin endpoint, the host index, the embedded DNS
//! server, leader election, the member-cluster registry and the controllers, and shuts
//! them down in order.
//!
//! ```text
//!  every replica:   /healthz /readyz /metrics ─ host index (one watch per host kind)
//!                                                 └─► embedded DNS (--dns-listen)
//!  the leader only: registry (member clients and stores)
//!                   ├─ cluster-health (prober)      ─► KubeFedCluster status, Events
//!                   ├─ service-dns, ingress-dns     ─► record status, DNSEndpoints
//!                   ├─ dns-endpoint-gc              ─► deletes orphaned DNSEndpoints
//!                   ├─ federatedtypeconfig ─► sync (one per type) ─► member objects
//!                   ├─ replica-scheduling           ─► Federated<Kind> placement/overrides
//!                   └─ skydns writer (--etcd-endpoints) ─► etcd
//! ```
//!
//! Each resource has one writer. Start-up: serve /healthz at once, start the host index
//! and the embedded DNS server, wait for the Lease, then run the controllers until
//! SIGTERM/SIGINT. Losing the Lease stops the controllers and the writer at once and
//! goes back to waiting for it; the process, its host index and its DNS answers stay,
//! so DNS never depends on the host or the Lease. On a signal the lease is released so
//! a standby takes over at once.
//!
//! `/readyz`: with `--dns-listen`, ready once the embedded server has loaded its names
//! (a replica that can answer DNS should receive DNS traffic, leader or not); without
//! it, ready while leading.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use prometheus::Registry;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::admin::http::{self, Readiness};
use crate::admin::leader::{LeaderConfig, LeaderElector};
use crate::cluster::client::{REQUEST_TIMEOUT, WATCH_READ_TIMEOUT};
use crate::cluster::health::{HealthConfig, parse_go_duration};
use crate::cluster::prober::{self, ClusterMetrics};
use crate::cluster::registry::ClusterRegistry;
use crate::dns::controllers::{
    self as dns_controllers, DnsControllerConfig, DnsControllerMetrics, ExternalDnsCopy,
};
use crate::dns::embedded;
use crate::dns::server::{self, DnsMetrics, ServerConfig, Source};
use crate::dns::skydns::security::EtcdSecurity;
use crate::dns::writer::{self, WriterConfig, WriterMetrics};
use crate::federation::sync::SyncMetrics;
use crate::federation::{rsp, supervisor};
use crate::host::HostIndex;
use crate::kube::controller::ControllerMetrics;
use crate::kube::ratelimit::RateLimitLayer;

pub use crate::host::KUBEFED_CONFIG_NAME;

/// Reconciles at once per controller when KubeFedConfig leaves
/// `syncController.maxConcurrentReconciles` unset. KubeFed's default is 1; a member that
/// stops answering holds a reconcile for up to the request timeout, and with one
/// reconcile at a time every other object would wait behind it.
pub const DEFAULT_CONCURRENCY: u16 = 8;

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
    /// TLS and credentials for `etcd_endpoints`.
    pub etcd_security: EtcdSecurity,
    /// Serve the DNSEndpoint names in-process on this address (UDP and TCP).
    pub dns_listen: Option<SocketAddr>,
    /// Zones the embedded server answers besides the Domains' zones.
    pub dns_zones: Vec<String>,
    /// Zone transfers of the embedded server (`None`: AXFR/IXFR NOTIMP). Its metrics are
    /// registered here.
    pub dns_xfr: Option<server::xfr::XfrConfig>,
    /// Requests per second to the host by the controllers (0: no limit), and the burst.
    pub kube_api_qps: u32,
    pub kube_api_burst: u32,
}

/// The host clients of the controller-manager.
pub struct HostClients {
    /// Watches (long polls; a watch silent for `WATCH_READ_TIMEOUT` is restarted).
    pub watch: kube::Client,
    /// The controllers' reads and writes: every request bounded by [`REQUEST_TIMEOUT`],
    /// so a host that stops answering fails requests instead of holding reconciles, and
    /// limited to `--kube-api-qps`/`--kube-api-burst`.
    pub request: kube::Client,
    /// The lease: bounded like `request`, never rate-limited, so a busy controller does
    /// not delay a renewal.
    pub lease: kube::Client,
}

pub async fn host_clients(
    kubeconfig: Option<&PathBuf>,
    context: Option<&str>,
    qps: u32,
    burst: u32,
) -> anyhow::Result<HostClients> {
    let config = host_config(kubeconfig, context).await?;
    let mut watch = config.clone();
    watch.connect_timeout = Some(REQUEST_TIMEOUT);
    watch.read_timeout = Some(WATCH_READ_TIMEOUT);
    let mut bounded = config;
    bounded.connect_timeout = Some(REQUEST_TIMEOUT);
    bounded.read_timeout = Some(REQUEST_TIMEOUT);
    bounded.write_timeout = Some(REQUEST_TIMEOUT);
    let request = match RateLimitLayer::new(qps, burst) {
        Some(layer) => kube::client::ClientBuilder::try_from(bounded.clone())?
            .with_layer(&layer)
            .build(),
        None => kube::Client::try_from(bounded.clone())?,
    };
    Ok(HostClients {
        watch: kube::Client::try_from(watch)?,
        request,
        lease: kube::Client::try_from(bounded)?,
    })
}

async fn host_config(
    kubeconfig: Option<&PathBuf>,
    context: Option<&str>,
) -> anyhow::Result<kube::Config> {
    match crate::kube::kubeconfig::find(kubeconfig.map(PathBuf::as_path))? {
        Some(loaded) => loaded.config(context).await,
        None if context.is_some() => {
            anyhow::bail!(
                "--context given but there is no kubeconfig ($KUBECONFIG, ~/.kube/config)"
            )
        }
        None => kube::Config::incluster().context("no kubeconfig and not in a cluster"),
    }
}

/// Everything the controllers of one leadership term share.
struct Shared {
    opts: Options,
    index: Arc<HostIndex>,
    host: kube::Client,
    cluster_metrics: ClusterMetrics,
    dns_metrics: DnsControllerMetrics,
    controller_metrics: ControllerMetrics,
    sync_metrics: SyncMetrics,
    writer_metrics: Option<WriterMetrics>,
}

pub async fn run(opts: Options, shutdown: CancellationToken) -> anyhow::Result<()> {
    let clients = host_clients(
        opts.kubeconfig.as_ref(),
        opts.context.as_deref(),
        opts.kube_api_qps,
        opts.kube_api_burst,
    )
    .await?;
    let (watch_client, host) = (clients.watch, clients.request);
    let registry = Registry::new();
    crate::admin::build_info::register(&registry)?;
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

    let index = HostIndex::start(
        watch_client.clone(),
        &opts.namespace,
        shutdown.child_token(),
    );

    // Every replica answers DNS, leader or not, from the host index alone.
    let mut dns_tasks = tokio::task::JoinSet::new();
    let dns = match opts.dns_listen {
        None => None,
        Some(listen) => {
            let mut cfg = ServerConfig::new(
                listen,
                vec![],
                Source::InProcess,
                DnsMetrics::register(&registry)?,
            );
            if let Some(x) = &opts.dns_xfr {
                x.metrics.register_into(&registry)?;
                cfg.xfr = Some(x.clone());
            }
            let dns = server::start(cfg)
                .await
                .with_context(|| format!("serving DNS on {listen}"))?;
            info!(addr = %dns.udp_addr, "serving the DNSEndpoint names (embedded DNS)");
            dns_tasks.spawn(embedded::run(
                index.clone(),
                opts.dns_zones.clone(),
                dns.index.clone(),
                ready.clone(),
                shutdown.clone(),
            ));
            Some(dns)
        }
    };

    let shared = Shared {
        cluster_metrics: ClusterMetrics::register(&registry)?,
        dns_metrics: DnsControllerMetrics::register(&registry)?,
        controller_metrics: ControllerMetrics::register(&registry)?,
        sync_metrics: SyncMetrics::register(&registry)?,
        writer_metrics: if opts.etcd_endpoints.is_empty() {
            None
        } else {
            Some(WriterMetrics::register(&registry)?)
        },
        opts: opts.clone(),
        index: index.clone(),
        host: host.clone(),
    };

    // Leader election needs the host; so do its settings.
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = index.configs.ready() => {}
    }
    let elector = LeaderElector::new(
        clients.lease,
        index.watch_client(),
        leader_config(&opts, &index),
        &registry,
    )?;
    let mut held = false;
    while !shutdown.is_cancelled() {
        if opts.leader_elect && !elector.acquire(&shutdown).await {
            break;
        }
        held = opts.leader_elect;
        let term = shutdown.child_token();
        let mut tasks = start_controllers(&shared, term.clone());
        if opts.dns_listen.is_none() {
            ready.set(true);
        }
        let lost = if opts.leader_elect {
            !elector.hold(&term).await
        } else {
            term.cancelled().await;
            false
        };
        if opts.dns_listen.is_none() {
            ready.set(false);
        }
        term.cancel();
        while tasks.join_next().await.is_some() {}
        if !lost {
            break;
        }
        held = false;
        warn!(
            "lost leadership: controllers stopped; DNS keeps answering; waiting for the lease again"
        );
    }
    if held {
        elector.release().await;
    }
    if let Some(dns) = dns {
        dns.stop().await;
    }
    dns_tasks.abort_all();
    let _ = tokio::time::timeout(Duration::from_secs(5), admin.task).await;
    info!("stopped");
    Ok(())
}

fn leader_config(opts: &Options, index: &HostIndex) -> LeaderConfig {
    let mut lcfg = LeaderConfig::new(&opts.namespace, &opts.lease_name, &opts.identity);
    let kfc = index.kubefed_config().flatten();
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
    lcfg
}

/// The controllers of one leadership term, stopped by `term`.
fn start_controllers(s: &Shared, term: CancellationToken) -> tokio::task::JoinSet<()> {
    let kfc = s.index.kubefed_config().flatten();
    let spec = kfc.as_ref().map(|c| &c.spec);
    let health = HealthConfig::from_spec(spec);
    let concurrency = spec
        .and_then(|s| s.sync_controller.as_ref())
        .and_then(|s| s.max_concurrent_reconciles)
        .filter(|n| *n > 0)
        .map(|n| n.min(u16::MAX as i64) as u16)
        .unwrap_or(DEFAULT_CONCURRENCY);
    let registry = ClusterRegistry::new(&s.opts.namespace, health.timeout);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(
        registry
            .clone()
            .run(s.index.clone(), s.host.clone(), term.clone()),
    );
    tasks.spawn(prober::run(
        s.index.clone(),
        registry.clone(),
        s.host.clone(),
        s.opts.identity.clone(),
        s.cluster_metrics.clone(),
        s.controller_metrics.clone(),
        term.clone(),
    ));
    tasks.spawn(dns_controllers::run(
        s.index.clone(),
        registry.clone(),
        s.host.clone(),
        DnsControllerConfig {
            namespace: s.opts.namespace.clone(),
            externaldns_copy: s.opts.externaldns_copy,
            concurrency,
        },
        s.dns_metrics.clone(),
        s.controller_metrics.clone(),
        s.opts.identity.clone(),
        term.clone(),
    ));
    tasks.spawn(supervisor::run(
        s.index.clone(),
        registry.clone(),
        s.host.clone(),
        s.opts.identity.clone(),
        s.sync_metrics.clone(),
        s.controller_metrics.clone(),
        concurrency,
        term.clone(),
    ));
    tasks.spawn(rsp::run(
        s.index.clone(),
        registry,
        s.host.clone(),
        s.controller_metrics.clone(),
        term.clone(),
    ));
    if let Some(m) = &s.writer_metrics {
        tasks.spawn(writer::run(
            s.index.clone(),
            WriterConfig {
                security: s.opts.etcd_security.clone(),
                ..WriterConfig::new(s.opts.etcd_endpoints.clone(), &s.opts.etcd_prefix)
            },
            m.clone(),
            term,
        ));
    }
    tasks
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
