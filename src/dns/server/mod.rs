//! The authoritative DNS server: an immutable in-memory index (`index`, pure), the
//! protocol layer answering one message from it (`answer`, UDP and TCP alike), the UDP
//! receive loops with their store of encoded responses and optional rate limiting
//! (`udp`, `wire`), the TCP accept loop with its connection limit (`tcp`), and the feeds
//! that keep the index current (`feed`: an etcd skydns watch, or entries handed over
//! in-process). Zone transfers, NOTIFY and TSIG are `xfr`'s, over the pure `flat`
//! (skydns tree -> RRsets), `journal` (IXFR differences), `serial` (per-zone SOA
//! serials), `acl`, `tsig` and `notify` (sending NOTIFY with retries).
//!
//! ```text
//!  etcd prefix ──list+watch──► feed ──build──► Snapshot ──ArcSwap──► answer ◄── tcp ◄── TCP
//!  controller-manager ──replace_entries──┘          │         └──► udp (store, RRL) ◄── UDP
//!                                                   └──► xfr (journal, NOTIFY) ◄── AXFR/IXFR/TSIG
//! ```
//!
//! [`start`] binds UDP (several `SO_REUSEPORT` sockets, one blocking receive loop thread
//! each) and TCP on the same port, and returns a [`Handle`]; dropping the handle stops
//! the server and its feed. The limits (answer size, lookup budget, CNAME chase, TCP
//! connections, RRL) are described in `docs/dns-server.md`.

pub mod acl;
pub mod answer;
pub mod feed;
pub mod flat;
pub mod index;
pub mod journal;
pub mod metrics;
pub mod notify;
pub mod serial;
pub mod tcp;
pub mod tsig;
pub mod udp;
pub mod wire;
pub mod xfr;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use thiserror::Error;
use tokio_util::sync::CancellationToken;

pub use answer::DEFAULT_MAX_UDP_PAYLOAD;
pub use feed::IndexHandle;
pub use index::{DEFAULT_TTL, IndexConfig, IndexError, Snapshot, SoaConfig, ZoneConfig};
pub use metrics::DnsMetrics;
pub use tcp::DEFAULT_MAX_CONNECTIONS;
pub use udp::RrlConfig;

use crate::admin::http::Readiness;
use crate::dns::skydns::codec::DEFAULT_PREFIX;
use crate::dns::skydns::security::EtcdSecurity;

#[derive(Debug, Error)]
pub enum ServerError {
    #[error("invalid configuration: {0}")]
    Config(#[from] IndexError),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the UDP receive loops: {0}")]
    Threads(std::io::Error),
    #[error("at least one --zone is required")]
    NoZones,
}

/// Where the served records come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// Follow the skydns prefix of this etcd cluster.
    Etcd { endpoints: Vec<String> },
    /// Entries are handed over with [`IndexHandle::replace_entries`] (no etcd).
    InProcess,
}

pub struct ServerConfig {
    /// UDP and TCP listen address; port 0 picks a free port (the same for both).
    pub listen: SocketAddr,
    pub zones: Vec<ZoneConfig>,
    /// etcd key prefix of the skydns layout (default `/skydns`).
    pub prefix: String,
    /// TTL of records whose value has none.
    pub default_ttl: u32,
    pub source: Source,
    /// Number of UDP sockets (receive loops); default: available parallelism.
    pub udp_sockets: usize,
    /// Idle TCP connections are closed after this long.
    pub tcp_timeout: Duration,
    /// TCP connections served at once; more are closed on accept.
    pub tcp_max_connections: usize,
    /// Largest UDP response (and the size advertised in OPT).
    pub max_udp_payload: u16,
    /// `SO_RCVBUF` of each UDP socket, in bytes; `None` keeps the system default.
    pub udp_recv_buffer: Option<usize>,
    /// Response rate limiting per source prefix (UDP); off when `None`.
    pub rrl: Option<RrlConfig>,
    /// `/readyz` fails once the etcd watch has been out of touch this long.
    pub max_etcd_disconnect: Duration,
    /// TLS and credentials for [`Source::Etcd`].
    pub etcd_security: EtcdSecurity,
    pub metrics: DnsMetrics,
    /// Set once the index holds data; share it with `/readyz`.
    pub readiness: Readiness,
    /// Zone transfers, NOTIFY and TSIG; `None`: AXFR/IXFR are NOTIMP, signed requests
    /// BADKEY, as before.
    pub xfr: Option<xfr::XfrConfig>,
}

impl ServerConfig {
    pub fn new(
        listen: SocketAddr,
        zones: Vec<ZoneConfig>,
        source: Source,
        metrics: DnsMetrics,
    ) -> Self {
        ServerConfig {
            listen,
            zones,
            prefix: DEFAULT_PREFIX.into(),
            default_ttl: DEFAULT_TTL,
            source,
            udp_sockets: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            tcp_timeout: Duration::from_secs(10),
            tcp_max_connections: DEFAULT_MAX_CONNECTIONS,
            max_udp_payload: DEFAULT_MAX_UDP_PAYLOAD,
            udp_recv_buffer: None,
            rrl: None,
            max_etcd_disconnect: Duration::from_secs(30),
            etcd_security: EtcdSecurity::default(),
            metrics,
            readiness: Readiness::default(),
            xfr: None,
        }
    }
}

/// A running server; stops (sockets closed, feed ended) when dropped or on [`Handle::stop`].
pub struct Handle {
    pub udp_addr: SocketAddr,
    pub tcp_addr: SocketAddr,
    pub index: IndexHandle,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    udp: Option<udp::UdpLoops>,
}

impl Handle {
    /// Stops serving and waits until the sockets are closed.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        if let Some(udp) = self.udp.take() {
            let _ = tokio::task::spawn_blocking(move || udp.join()).await;
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn udp_socket(
    addr: SocketAddr,
    recv_buffer: Option<usize>,
) -> std::io::Result<std::net::UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_port(true)?;
    if let Some(bytes) = recv_buffer {
        // The kernel caps it at net.core.rmem_max (and doubles it for bookkeeping).
        s.set_recv_buffer_size(bytes)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

fn tcp_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}

type Bound = (Vec<std::net::UdpSocket>, std::net::TcpListener, SocketAddr);

/// Binds every UDP socket and the TCP listener on one port.
fn bind(
    listen: SocketAddr,
    udp_sockets: usize,
    recv_buffer: Option<usize>,
) -> Result<Bound, ServerError> {
    let err = |addr| move |source| ServerError::Bind { addr, source };
    // With port 0, the port the first UDP socket got may be taken for TCP: try again.
    let attempts = if listen.port() == 0 { 20 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let first = udp_socket(listen, recv_buffer).map_err(err(listen))?;
        let addr = first.local_addr().map_err(err(listen))?;
        let tcp = match tcp_listener(addr) {
            Ok(t) => t,
            Err(e) => {
                last = Some(ServerError::Bind { addr, source: e });
                continue;
            }
        };
        let mut udp = vec![first];
        for _ in 1..udp_sockets.max(1) {
            udp.push(udp_socket(addr, recv_buffer).map_err(err(addr))?);
        }
        return Ok((udp, tcp, addr));
    }
    Err(last.expect("at least one attempt"))
}

/// Starts the server and its feed. Must be called inside a tokio runtime.
pub async fn start(cfg: ServerConfig) -> Result<Handle, ServerError> {
    // In-process, zones may arrive later (the embedded server follows the Domains).
    if cfg.zones.is_empty() && matches!(cfg.source, Source::Etcd { .. }) {
        return Err(ServerError::NoZones);
    }
    let index_cfg = Arc::new(IndexConfig::new(&cfg.prefix, &cfg.zones, cfg.default_ttl)?);
    let index = IndexHandle::new(index_cfg, cfg.metrics.clone(), cfg.readiness.clone());
    let (udp, tcp, addr) = bind(cfg.listen, cfg.udp_sockets, cfg.udp_recv_buffer)?;
    let transfers = cfg.xfr.clone().map(|x| Arc::new(xfr::Transfers::new(x)));
    let responder = Arc::new(
        udp::Responder::with_limits(
            index.shared(),
            cfg.metrics.clone(),
            cfg.max_udp_payload,
            cfg.rrl,
        )
        .with_transfers(transfers.clone()),
    );
    let udp = udp::UdpLoops::start(udp, responder.clone()).map_err(ServerError::Threads)?;
    let tcp = tokio::net::TcpListener::from_std(tcp)
        .map_err(|source| ServerError::Bind { addr, source })?;
    let tcp_server = Arc::new(tcp::TcpServer {
        responder,
        index: index.shared(),
        metrics: cfg.metrics.clone(),
        max_connections: cfg.tcp_max_connections,
        idle_timeout: cfg.tcp_timeout,
        max_udp_payload: cfg.max_udp_payload,
        xfr: transfers.clone(),
    });

    let shutdown = CancellationToken::new();
    if let Source::Etcd { endpoints } = cfg.source {
        index.watch_readiness(cfg.max_etcd_disconnect);
        tokio::spawn(feed::run_etcd(
            endpoints,
            cfg.etcd_security.clone(),
            index.clone(),
            shutdown.clone(),
        ));
    }
    if let Some(t) = transfers.filter(|t| t.has_secondaries()) {
        tokio::spawn(t.run(index.clone(), shutdown.clone()));
    }
    let task = tokio::spawn(tcp::serve(tcp, tcp_server, shutdown.clone()));
    tracing::info!(%addr, "serving DNS on UDP and TCP");
    Ok(Handle {
        udp_addr: addr,
        tcp_addr: addr,
        index,
        shutdown,
        task: Some(task),
        udp: Some(udp),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_udp_receive_buffer_is_the_one_asked_for() {
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let size = |s: &std::net::UdpSocket| socket2::SockRef::from(s).recv_buffer_size().unwrap();
        let default = size(&udp_socket(addr, None).unwrap());
        // Linux doubles what it is given (bookkeeping) and caps it at rmem_max.
        let asked = size(&udp_socket(addr, Some(100_000)).unwrap());
        assert_ne!(asked, default);
        assert!(asked >= 100_000, "{asked}");
        let small = size(&udp_socket(addr, Some(4096)).unwrap());
        assert!(small < default, "{small} < {default}");
    }
}
