//! TCP serving: our own accept loop, so that the number of connections is bounded and
//! a failing accept backs off instead of spinning.
//!
//! - At most `max_connections` connections are served at once. One over the limit is
//!   accepted and closed at once (counted in `kubefed_dns_tcp_rejected_total`): left in
//!   the backlog, it would hold a kernel slot and time out at the client instead.
//! - An accept error (EMFILE or ENFILE when descriptors run out, ECONNABORTED, ...) is
//!   counted, logged at most once per 10 s, and followed by a pause doubling from 5 ms
//!   to 1 s, reset by the next success. hickory-server's loop retried at once, which
//!   with a full descriptor table is a busy loop at 100 % CPU.
//! - Each connection reads length-prefixed messages one after the other and answers
//!   each (from the response store, as UDP does, else `answer`; 65 535-byte limit)
//!   before reading the next; it is closed after
//!   `idle_timeout` without a complete message, or when the server stops.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::index::Snapshot;
use super::metrics::{DnsMetrics, LogLimit};
use super::udp::Responder;

/// Default connection limit: well below the usual 1 024 descriptors per process.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

pub(crate) struct TcpServer {
    /// The UDP loops' responder: its store of encoded responses serves TCP too.
    pub responder: Arc<Responder>,
    pub metrics: DnsMetrics,
    pub max_connections: usize,
    pub idle_timeout: Duration,
    /// The snapshot a zone transfer reads from start to end.
    pub index: Arc<ArcSwap<Snapshot>>,
    pub max_udp_payload: u16,
    /// Transfers, NOTIFY and signed requests, when configured (`xfr`).
    pub xfr: Option<Arc<super::xfr::Transfers>>,
}

/// Accepts until `stop`; connections end with it too.
pub(crate) async fn serve(listener: TcpListener, server: Arc<TcpServer>, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(server.max_connections.max(1)));
    let accept_log = LogLimit::new(Duration::from_secs(10));
    let reject_log = LogLimit::new(Duration::from_secs(10));
    let mut backoff = Duration::ZERO;
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = Duration::ZERO;
                match slots.clone().try_acquire_owned() {
                    Ok(slot) => {
                        let (server, stop) = (server.clone(), stop.clone());
                        tokio::spawn(async move {
                            server.metrics.tcp_connections.inc();
                            connection(stream, &server, &stop).await;
                            server.metrics.tcp_connections.dec();
                            drop(slot);
                        });
                    }
                    Err(_) => {
                        server.metrics.tcp_rejected.inc();
                        if let Some(suppressed) = reject_log.allow() {
                            tracing::warn!(
                                %peer,
                                limit = server.max_connections,
                                suppressed,
                                "DNS TCP connection limit reached; closing new connections"
                            );
                        }
                        drop(stream);
                    }
                }
            }
            Err(error) => {
                server.metrics.tcp_accept_errors.inc();
                backoff = if backoff.is_zero() {
                    FIRST_BACKOFF
                } else {
                    (backoff * 2).min(MAX_BACKOFF)
                };
                if let Some(suppressed) = accept_log.allow() {
                    tracing::warn!(
                        %error,
                        ?backoff,
                        suppressed,
                        "accepting a DNS TCP connection failed; pausing accepts"
                    );
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
            }
        }
    }
}

async fn connection(mut stream: TcpStream, server: &TcpServer, stop: &CancellationToken) {
    let _ = stream.set_nodelay(true);
    let peer = match stream.peer_addr() {
        Ok(p) => p,
        Err(_) => return,
    };
    let mut request = Vec::new();
    let mut out = Vec::new();
    loop {
        let mut len = [0u8; 2];
        let read = async {
            stream.read_exact(&mut len).await?;
            request.resize(usize::from(u16::from_be_bytes(len)), 0);
            stream.read_exact(&mut request).await?;
            Ok::<_, std::io::Error>(())
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            r = tokio::time::timeout(server.idle_timeout, read) => match r {
                Ok(Ok(())) => {}
                _ => return,
            },
        }
        if let Some(x) = &server.xfr
            && super::xfr::wants(&request)
        {
            let r = x.serve_tcp(
                &mut stream,
                std::mem::take(&mut request),
                peer,
                &server.index,
                server.max_udp_payload,
                server.idle_timeout,
            );
            if r.await.is_err() {
                return;
            }
            continue;
        }
        if !server.responder.respond_tcp(&request, peer, &mut out) {
            continue;
        }
        let len = (out.len() as u16).to_be_bytes();
        let write = async {
            stream.write_all(&len).await?;
            stream.write_all(&out).await
        };
        match tokio::time::timeout(server.idle_timeout, write).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
}
