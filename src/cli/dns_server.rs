//! `kubefed dns-server`: the authoritative DNS server over an etcd skydns prefix.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use prometheus::Registry;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::admin::http::{self, Readiness};
use crate::dns::server::{
    self, DnsMetrics, RrlConfig, ServerConfig, SoaConfig, Source, ZoneConfig,
};

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
    #[command(flatten)]
    pub etcd_security: super::EtcdSecurityArgs,
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
    /// Largest UDP response in bytes, also advertised in OPT (a client's smaller EDNS
    /// size is honoured; 512 without EDNS). 1232 avoids IP fragmentation.
    #[arg(long, default_value_t = server::DEFAULT_MAX_UDP_PAYLOAD, value_parser = clap::value_parser!(u16).range(512..))]
    pub max_udp_payload: u16,
    /// SO_RCVBUF of each UDP socket in bytes (capped by net.core.rmem_max); default:
    /// the system's.
    #[arg(long)]
    pub udp_recv_buffer: Option<usize>,
    /// TCP connections served at once; more are accepted and closed at once.
    #[arg(long, default_value_t = server::DEFAULT_MAX_CONNECTIONS)]
    pub tcp_max_connections: usize,
    /// Seconds an idle TCP connection is kept open.
    #[arg(long, default_value_t = 10)]
    pub tcp_idle_timeout: u64,
    /// Response rate limit: UDP responses per second per source prefix (IPv4 /24,
    /// IPv6 /56). Off when absent.
    #[arg(long)]
    pub rrl_responses_per_second: Option<u32>,
    /// With --rrl-responses-per-second: every n-th response over the limit is sent
    /// truncated (TC=1) instead of dropped; 0 drops them all.
    #[arg(long, default_value_t = 2)]
    pub rrl_slip: u32,
    /// /readyz fails once the etcd watch has been out of touch (no listing, event or
    /// progress notification) for this many seconds.
    #[arg(long, default_value_t = 30)]
    pub ready_max_etcd_disconnect: u64,
    /// SOA fields of every zone, `key=value` pairs separated by commas: mname, rname,
    /// refresh, retry, expire, minimum (also the negative-answer TTL). Defaults:
    /// the first name server, hostmaster.<zone>, 7200, 1800, 1209600, 30.
    #[arg(long, value_parser = parse_soa)]
    pub soa: Option<SoaConfig>,
    /// Like --soa for one zone: `<zone>:key=value,...` (repeatable; wins over --soa).
    #[arg(long = "zone-soa", value_parser = parse_zone_soa)]
    pub zone_soa: Vec<(String, SoaConfig)>,
    #[command(flatten)]
    pub xfr: XfrArgs,
}

/// Zone transfers, NOTIFY and TSIG (see docs/dns-server.md, "Zone transfers").
#[derive(Args, Debug, Clone, Default)]
pub struct XfrArgs {
    /// Who may AXFR/IXFR (repeatable, comma separated): `key=<tsig key name>` or an
    /// address / CIDR prefix. Default: nobody (every transfer is REFUSED).
    #[arg(long = "allow-transfer", value_delimiter = ',')]
    pub allow_transfer: Vec<String>,
    /// A secondary to NOTIFY when a zone's serial changes (repeatable):
    /// `ip:port[,key=<tsig key name>]`.
    #[arg(long = "notify")]
    pub notify: Vec<String>,
    /// A TSIG key `name:algorithm:base64secret` (repeatable; hmac-sha256 or
    /// hmac-sha512). Prefer --tsig-key-file: arguments are visible to every local user.
    #[arg(long = "tsig-key")]
    pub tsig_keys: Vec<String>,
    /// A file of TSIG keys in BIND's format (`tsig-keygen` output; repeatable), e.g. a
    /// Kubernetes Secret mounted as a file.
    #[arg(long = "tsig-key-file")]
    pub tsig_key_files: Vec<std::path::PathBuf>,
    /// Serial changes kept per zone for IXFR; an older client gets the whole zone.
    #[arg(long = "ixfr-journal", default_value_t = server::journal::DEFAULT_JOURNAL)]
    pub ixfr_journal: usize,
    /// Zone transfers served at once; one more is answered SERVFAIL.
    #[arg(long = "max-transfers", default_value_t = server::xfr::DEFAULT_MAX_TRANSFERS)]
    pub max_transfers: usize,
}

impl XfrArgs {
    /// The transfer configuration; every key named by a rule or target must exist.
    pub fn config(&self, registry: &Registry) -> anyhow::Result<server::xfr::XfrConfig> {
        let cfg = self.config_unregistered()?;
        cfg.metrics
            .register_into(registry)
            .context("registering transfer metrics")?;
        Ok(cfg)
    }

    /// Like [`XfrArgs::config`], the metrics left for the caller to register.
    pub fn config_unregistered(&self) -> anyhow::Result<server::xfr::XfrConfig> {
        use server::{acl::Acl, notify::Target, tsig};
        let metrics = server::xfr::XfrMetrics::unregistered();
        let mut cfg = server::xfr::XfrConfig::new(metrics);
        let mut keys = Vec::new();
        for spec in &self.tsig_keys {
            keys.push(tsig::Key::parse_spec(spec)?);
        }
        for path in &self.tsig_key_files {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading TSIG keys from {}", path.display()))?;
            keys.extend(
                tsig::parse_key_file(&text).with_context(|| format!("in {}", path.display()))?,
            );
        }
        cfg.keys = tsig::KeyRing::new(keys);
        cfg.acl = Acl::parse(&self.allow_transfer)?;
        cfg.notify = self
            .notify
            .iter()
            .map(|s| Target::parse(s))
            .collect::<Result<_, _>>()?;
        for name in self
            .allow_transfer
            .iter()
            .filter_map(|r| r.strip_prefix("key="))
            .map(str::to_string)
            .chain(
                cfg.notify
                    .iter()
                    .filter_map(|t| t.key.as_ref().map(|k| k.to_ascii())),
            )
        {
            let mut n = hickory_proto::rr::Name::from_ascii(&name)?;
            n.set_fqdn(true);
            anyhow::ensure!(
                cfg.keys.get(&n).is_some(),
                "TSIG key {name:?} is used but not defined (--tsig-key, --tsig-key-file)"
            );
        }
        cfg.journal = self.ixfr_journal;
        cfg.max_transfers = self.max_transfers.max(1);
        Ok(cfg)
    }
}

/// `refresh=3600,expire=604800,...` over the defaults.
fn parse_soa(s: &str) -> Result<SoaConfig, String> {
    let mut soa = SoaConfig::default();
    for pair in s.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?} is not key=value"))?;
        let num = || {
            v.parse::<u32>()
                .ok()
                .filter(|n| *n <= i32::MAX as u32)
                .ok_or_else(|| format!("{k}: {v:?} is not a number of seconds below 2^31"))
        };
        match k {
            "mname" => soa.mname = v.to_string(),
            "rname" => soa.rname = v.to_string(),
            "refresh" => soa.refresh = num()?,
            "retry" => soa.retry = num()?,
            "expire" => soa.expire = num()?,
            "minimum" => soa.minimum = num()?,
            _ => return Err(format!("unknown SOA field {k:?}")),
        }
    }
    Ok(soa)
}

fn parse_zone_soa(s: &str) -> Result<(String, SoaConfig), String> {
    let (zone, rest) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not <zone>:key=value,..."))?;
    Ok((zone.trim_end_matches('.').to_lowercase(), parse_soa(rest)?))
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
        .map(|z| {
            let key = z.trim_end_matches('.').to_lowercase();
            let soa = args
                .zone_soa
                .iter()
                .rev()
                .find(|(name, _)| *name == key)
                .map(|(_, soa)| soa.clone())
                .or_else(|| args.soa.clone())
                .unwrap_or_default();
            ZoneConfig {
                name: z.clone(),
                nameservers: args.nameservers.clone(),
                soa,
            }
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
    cfg.etcd_security = args.etcd_security.security(&args.etcd_endpoints)?;
    cfg.default_ttl = args.default_ttl;
    cfg.readiness = readiness.clone();
    if let Some(n) = args.udp_sockets {
        cfg.udp_sockets = n;
    }
    cfg.max_udp_payload = args.max_udp_payload;
    cfg.udp_recv_buffer = args.udp_recv_buffer;
    cfg.tcp_max_connections = args.tcp_max_connections;
    cfg.tcp_timeout = Duration::from_secs(args.tcp_idle_timeout.max(1));
    cfg.rrl = args.rrl_responses_per_second.map(|n| RrlConfig {
        responses_per_second: n,
        slip: args.rrl_slip,
    });
    cfg.max_etcd_disconnect = Duration::from_secs(args.ready_max_etcd_disconnect);
    cfg.xfr = Some(args.xfr.config(&registry)?);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soa_flags_override_the_defaults_field_by_field() {
        let soa = parse_soa("refresh=3600,expire=604800,mname=ns1.example.com.").unwrap();
        assert_eq!(soa.refresh, 3600);
        assert_eq!(soa.expire, 604_800);
        assert_eq!(soa.mname, "ns1.example.com.");
        assert_eq!(soa.retry, SoaConfig::default().retry);
        assert!(parse_soa("expire=-1").is_err());
        assert!(parse_soa("expire=4294967295").is_err());
        assert!(parse_soa("serial=1").is_err());
        let (zone, soa) = parse_zone_soa("Example.com.:minimum=60").unwrap();
        assert_eq!(zone, "example.com");
        assert_eq!(soa.minimum, 60);
    }
}
