//! The authoritative DNS server: an immutable in-memory index (`index`, pure), the hickory
//! request handler answering from it (`handler`, all of TCP), the UDP receive loops with
//! their store of encoded responses (`udp`, `wire`), and the feeds that keep the index
//! current (`feed`: an etcd skydns watch, or entries handed over in-process).
//!
//! ```text
//!  etcd prefix ──list+watch──► feed ──build──► Snapshot ──ArcSwap──► handler ◄── TCP
//!  controller-manager ──replace_entries──┘                    └──► udp (cache) ◄── UDP
//! ```
//!
//! [`start`] binds UDP (several `SO_REUSEPORT` sockets, one blocking receive loop thread
//! each) and TCP on the same port, and returns a [`Handle`]; dropping the handle stops
//! the server and its feed.

pub mod feed;
pub mod handler;
pub mod index;
pub mod metrics;
pub mod udp;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;
use socket2::{Domain, Protocol, Socket, Type};
use thiserror::Error;
use tokio_util::sync::CancellationToken;

pub use feed::IndexHandle;
pub use index::{DEFAULT_TTL, IndexConfig, IndexError, Snapshot, ZoneConfig};
pub use metrics::DnsMetrics;

use crate::admin::http::Readiness;
use crate::dns::skydns::codec::DEFAULT_PREFIX;

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
    pub metrics: DnsMetrics,
    /// Set once the index holds data; share it with `/readyz`.
    pub readiness: Readiness,
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
            metrics,
            readiness: Readiness::default(),
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

fn udp_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_port(true)?;
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
fn bind(listen: SocketAddr, udp_sockets: usize) -> Result<Bound, ServerError> {
    let err = |addr| move |source| ServerError::Bind { addr, source };
    // With port 0, the port the first UDP socket got may be taken for TCP: try again.
    let attempts = if listen.port() == 0 { 20 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let first = udp_socket(listen).map_err(err(listen))?;
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
            udp.push(udp_socket(addr).map_err(err(addr))?);
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
    let (udp, tcp, addr) = bind(cfg.listen, cfg.udp_sockets)?;
    let mut server = Server::new(handler::DnsHandler::new(
        index.shared(),
        cfg.metrics.clone(),
    ));
    let responder = Arc::new(udp::Responder::new(index.shared(), cfg.metrics.clone()));
    let udp = udp::UdpLoops::start(udp, responder).map_err(ServerError::Threads)?;
    let tcp = tokio::net::TcpListener::from_std(tcp)
        .map_err(|source| ServerError::Bind { addr, source })?;
    server.register_listener(tcp, cfg.tcp_timeout, 64);

    let shutdown = CancellationToken::new();
    if let Source::Etcd { endpoints } = cfg.source {
        tokio::spawn(feed::run_etcd(endpoints, index.clone(), shutdown.clone()));
    }
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        stop.cancelled().await;
        if let Err(error) = server.shutdown_gracefully().await {
            tracing::warn!(%error, "DNS server stopped with an error");
        }
    });
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
