//! `kubefed dns-server`: the authoritative DNS server over an etcd skydns prefix.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Args;
use prometheus::Registry;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::admin::http::{self, Readiness};
use crate::dns::server::{self, DnsMetrics, ServerConfig, Source, ZoneConfig};

#[derive(Args, Debug)]
pub struct DnsServerArgs {
    /// A zone to answer for authoritatively (repeatable); everything else is REFUSED.
    #[arg(long = "zone", required = true)]
    pub zones: Vec<String>,
    /// etcd client URLs, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        required = true,
        env = "KUBEFED_ETCD_ENDPOINTS"
    )]
    pub etcd_endpoints: Vec<String>,
    /// Key prefix of the skydns layout (as CoreDNS's `path` and ExternalDNS's `--coredns-prefix`).
    #[arg(long, default_value = "/skydns")]
    pub etcd_prefix: String,
    /// UDP and TCP address to serve DNS on.
    #[arg(long, default_value = "0.0.0.0:53")]
    pub listen: SocketAddr,
    /// Address for /metrics, /healthz and /readyz (off when absent).
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// Name server names for the synthesised NS records of every zone (repeatable);
    /// default `ns.dns.<zone>`. Entries under `<zone>/dns/ns` in etcd take precedence.
    #[arg(long = "nameserver")]
    pub nameservers: Vec<String>,
    /// TTL of records whose value has none.
    #[arg(long, default_value_t = server::DEFAULT_TTL)]
    pub default_ttl: u32,
    /// UDP sockets (receive loops) on the listen port; default: one per CPU.
    #[arg(long)]
    pub udp_sockets: Option<usize>,
}

pub async fn run(args: DnsServerArgs) -> anyhow::Result<()> {
    let registry = Registry::new();
    crate::admin::build_info::register(&registry)?;
    let metrics = DnsMetrics::register(&registry).context("registering DNS metrics")?;
    metrics
        .register_etcd(&registry)
        .context("registering DNS metrics")?;
    let readiness = Readiness::default();
    let zones = args
        .zones
        .iter()
        .map(|z| ZoneConfig {
            name: z.clone(),
            nameservers: args.nameservers.clone(),
        })
        .collect();
    let mut cfg = ServerConfig::new(
        args.listen,
        zones,
        Source::Etcd {
            endpoints: args.etcd_endpoints.clone(),
        },
        metrics,
    );
    cfg.prefix = args.etcd_prefix.clone();
    cfg.default_ttl = args.default_ttl;
    cfg.readiness = readiness.clone();
    if let Some(n) = args.udp_sockets {
        cfg.udp_sockets = n;
    }
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;

    let handle = server::start(cfg)
        .await
        .with_context(|| format!("starting the DNS server on {}", args.listen))?;
    let admin_stop = CancellationToken::new();
    let admin = match args.metrics_listen {
        Some(addr) => Some(
            http::serve(addr, registry, readiness, admin_stop.clone())
                .await
                .with_context(|| format!("serving metrics on {addr}"))?,
        ),
        None => None,
    };
    tracing::info!(
        dns = %handle.udp_addr,
        metrics = ?admin.as_ref().map(|a| a.local_addr),
        zones = ?args.zones,
        "kubefed dns-server running"
    );
    tokio::select! {
        _ = sigterm.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = sigint.recv() => tracing::info!("SIGINT: shutting down"),
    }
    handle.stop().await;
    admin_stop.cancel();
    if let Some(a) = admin {
        let _ = a.task.await;
    }
    Ok(())
}
