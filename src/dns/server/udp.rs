//! UDP serving: one blocking receive loop per `SO_REUSEPORT` socket, answering each
//! datagram inline (no task, no await), and a store of encoded responses, which TCP
//! connections answer from too (`Responder::respond_tcp`).
//!
//! A question stored for the current snapshot is answered by copying the stored bytes
//! and patching the request's ID and flags (`wire`); any other datagram goes through
//! the hickory handler (`handler`), exactly as over TCP, and a plain query's response
//! is stored with the index paths its lookups read. When the snapshot changes, the
//! responses that read a changed path are dropped (all of them when the snapshot cannot
//! say what changed), so no answer is older than the index. Why not hickory-server's UDP
//! loop: it spawns a task and decodes a full message per datagram, which cost more CPU
//! per query than the lookup itself (docs/benchmarks.md).

use std::collections::{HashMap, HashSet};
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hickory_proto::rr::RecordType;
use prometheus::IntCounter;

use super::answer::{self, DEFAULT_MAX_UDP_PAYLOAD, Reply, Transport};
use super::index::{self, Snapshot};
use super::metrics::{DnsMetrics, rcode_label, type_label};
use super::{wire, xfr};

/// Encoded responses kept, in bytes: the 10 000-name benchmark's working set (about
/// 44 000 questions) takes under a third of it. Past it, new questions are answered
/// through the full path without being stored until updates free room.
const CACHE_BYTES: usize = 16 << 20;

/// How long a receive loop blocks before it looks at the stop flag again. The sockets
/// are not shut down to wake the loops sooner: a UDP socket shut down for reading makes
/// `recv_from` return an empty source address, on which std's `recv_from` panics.
const STOP_CHECK: Duration = Duration::from_millis(250);

/// A stored response and the query counter its hits increment.
struct Stored {
    response: Box<[u8]>,
    queries: IntCounter,
    /// Offset of an SOA serial in the response (negative answers, SOA questions): the
    /// serial follows the snapshot, so it is written on every hit.
    serial_at: Option<usize>,
    /// The zone whose serial that is.
    zone: Option<usize>,
}

/// Stored responses, kept across snapshots: a snapshot that says what changed
/// ([`Snapshot::changes`]) drops only the responses whose lookups read a changed path
/// ([`index::trace_reads`]); any other new snapshot drops them all.
struct ResponseCache {
    /// The snapshot the stored responses are valid for.
    snapshot: Arc<Snapshot>,
    entries: HashMap<Box<[u8]>, Stored>,
    /// Search path read -> keys of the responses that read it.
    readers: HashMap<String, HashSet<Box<[u8]>>>,
    bytes: usize,
}

impl ResponseCache {
    fn new(snapshot: Arc<Snapshot>) -> Self {
        ResponseCache {
            snapshot,
            entries: HashMap::new(),
            readers: HashMap::new(),
            bytes: 0,
        }
    }

    /// Moves to `next`, keeping what its changes cannot affect.
    fn advance(&mut self, next: Arc<Snapshot>) {
        match next.changes() {
            Some(c) if c.since == self.snapshot.serial() => {
                for path in &c.paths {
                    // The searches that can see `path`: itself and every ancestor.
                    let mut end = path.len();
                    loop {
                        self.drop_readers_of(&path[..end]);
                        match path[..end].rfind('/') {
                            Some(i) => end = i,
                            None => break,
                        }
                    }
                }
            }
            _ => {
                self.entries.clear();
                self.readers.clear();
                self.bytes = 0;
            }
        }
        self.snapshot = next;
    }

    /// Drops the responses whose lookups read the subtree `search`.
    fn drop_readers_of(&mut self, search: &str) {
        for k in self.readers.remove(search).unwrap_or_default() {
            if let Some(gone) = self.entries.remove(&k) {
                self.bytes -= gone.response.len();
            }
        }
    }

    fn insert(&mut self, key: &[u8], stored: Stored, reads: Vec<String>) {
        if self.bytes + stored.response.len() > CACHE_BYTES {
            return;
        }
        self.bytes += stored.response.len();
        if let Some(old) = self.entries.insert(key.into(), stored) {
            self.bytes -= old.response.len();
        }
        for r in reads {
            self.readers.entry(r).or_default().insert(key.into());
        }
    }
}

/// Answers UDP datagrams; shared by the receive loops.
pub struct Responder {
    index: Arc<ArcSwap<Snapshot>>,
    cache: RwLock<ResponseCache>,
    metrics: DnsMetrics,
    hits: IntCounter,
    misses: IntCounter,
    max_udp_payload: u16,
    rrl: Option<Rrl>,
    /// Transfers, NOTIFY and signed requests, when configured (`xfr`).
    xfr: Option<Arc<xfr::Transfers>>,
}

impl Responder {
    pub fn new(index: Arc<ArcSwap<Snapshot>>, metrics: DnsMetrics) -> Self {
        Responder::with_limits(index, metrics, DEFAULT_MAX_UDP_PAYLOAD, None)
    }

    /// `max_udp_payload` is the largest response sent (and advertised in OPT); `rrl`
    /// limits responses per source prefix when given.
    pub fn with_limits(
        index: Arc<ArcSwap<Snapshot>>,
        metrics: DnsMetrics,
        max_udp_payload: u16,
        rrl: Option<RrlConfig>,
    ) -> Self {
        let cache = ResponseCache::new(index.load_full());
        Responder {
            index,
            cache: RwLock::new(cache),
            hits: metrics.response_cache.with_label_values(&["hit"]),
            misses: metrics.response_cache.with_label_values(&["miss"]),
            rrl: rrl.map(|c| Rrl::new(c, &metrics)),
            metrics,
            max_udp_payload,
            xfr: None,
        }
    }

    /// Hands NOTIFY, AXFR/IXFR and TSIG-signed requests to `xfr`.
    pub(crate) fn with_transfers(mut self, xfr: Option<Arc<xfr::Transfers>>) -> Self {
        self.xfr = xfr;
        self
    }

    /// Writes the response to `packet` into `out`; false when there is none to send
    /// (a response message, fewer bytes than a header, or dropped by rate limiting).
    pub fn respond(&self, packet: &[u8], src: SocketAddr, out: &mut Vec<u8>) -> bool {
        let answered = self.answer(packet, src, Transport::Udp, out);
        match (&self.rrl, answered) {
            (Some(rrl), true) => rrl.admit(src.ip(), out),
            (_, answered) => answered,
        }
    }

    /// The same for a message read from a TCP connection (65 535-byte limit, no rate
    /// limiting): a large answer (the apex, `*`) repeats from the store over TCP too,
    /// instead of being rebuilt for every query (docs/benchmarks.md, "Question shapes").
    pub fn respond_tcp(&self, packet: &[u8], src: SocketAddr, out: &mut Vec<u8>) -> bool {
        self.answer(packet, src, Transport::Tcp, out)
    }

    fn answer(
        &self,
        packet: &[u8],
        src: SocketAddr,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> bool {
        let start = Instant::now();
        let snapshot = self.index.load_full();
        let Some(query) = wire::parse_query(packet, self.max_udp_payload) else {
            return self
                .full(&snapshot, packet, src, transport, out, start)
                .is_some();
        };
        // A TCP response differs from the UDP one to the same question (its size limit),
        // so its key has one more byte.
        let mut key_buf = [0u8; wire::MAX_KEY + 1];
        let key = {
            let k = query.key();
            key_buf[..k.len()].copy_from_slice(k);
            let len = match transport {
                Transport::Udp => k.len(),
                Transport::Tcp => k.len() + 1,
            };
            &key_buf[..len]
        };
        for attempt in 0..2 {
            {
                let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
                if Arc::ptr_eq(&cache.snapshot, &snapshot) {
                    if let Some(stored) = cache.entries.get(key) {
                        wire::patch(&stored.response, packet, &query, out);
                        if let Some(at) = stored.serial_at {
                            let serial = match stored.zone {
                                Some(z) => snapshot.zone_serial(z),
                                None => snapshot.serial(),
                            };
                            out[at..at + 4].copy_from_slice(&serial.to_be_bytes());
                        }
                        stored.queries.inc();
                        self.hits.inc();
                        self.metrics.latency.observe(start.elapsed().as_secs_f64());
                        return true;
                    }
                    break;
                }
                if cache.snapshot.serial() > snapshot.serial() {
                    // Another loop already moved the store past the snapshot we loaded.
                    drop(cache);
                    return self
                        .full(&snapshot, packet, src, transport, out, start)
                        .is_some();
                }
            }
            if attempt == 0 {
                let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
                if !Arc::ptr_eq(&cache.snapshot, &snapshot)
                    && cache.snapshot.serial() <= snapshot.serial()
                {
                    cache.advance(snapshot.clone());
                }
            }
        }
        self.misses.inc();
        let (reply, reads) =
            index::trace_reads(|| self.full(&snapshot, packet, src, transport, out, start));
        let Some(reply) = reply else {
            return false;
        };
        if !reply.storable || !wire::reusable(packet, &query, out) {
            return true;
        }
        let queries = self.metrics.queries.with_label_values(&[
            type_label(RecordType::from(query.qtype)),
            rcode_label(reply.rcode),
        ]);
        let stored = Stored {
            response: out.as_slice().into(),
            queries,
            serial_at: reply.serial_at,
            zone: reply.zone,
        };
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        if Arc::ptr_eq(&cache.snapshot, &snapshot) {
            cache.insert(key, stored, reads);
        }
        true
    }

    /// The full path: hickory decodes the message, `answer` answers it.
    fn full(
        &self,
        snapshot: &Snapshot,
        packet: &[u8],
        src: SocketAddr,
        transport: Transport,
        out: &mut Vec<u8>,
        start: Instant,
    ) -> Option<Reply> {
        // Over TCP the connection hands transfers and signed requests to `xfr` itself.
        if matches!(transport, Transport::Udp)
            && let Some(x) = &self.xfr
            && xfr::wants(packet)
        {
            let reply = x.respond_udp(snapshot, packet, src.ip(), self.max_udp_payload, out)?;
            self.metrics.count(&reply, start, src);
            return Some(reply);
        }
        let reply = answer::respond(snapshot, packet, transport, self.max_udp_payload, out)?;
        self.metrics.count(&reply, start, src);
        Some(reply)
    }
}

/// Response rate limiting, in the manner of BIND's and Knot's RRL: at most
/// `responses_per_second` responses per source prefix (IPv4 /24, IPv6 /56) in each
/// one-second window. Past it, responses are dropped, except that every `slip`-th one
/// is sent as an empty truncated response (TC=1), so that a real client behind a
/// spoofed prefix still gets through over TCP. Off unless configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RrlConfig {
    pub responses_per_second: u32,
    /// 0: drop every response over the limit; 1: truncate every one; n: every n-th.
    pub slip: u32,
}

/// Prefixes tracked at most; the table starts over past it (an attacker spraying
/// sources must not grow it without bound).
const RRL_TABLE: usize = 65_536;

struct Rrl {
    cfg: RrlConfig,
    start: Instant,
    /// Prefix -> (window, responses in it, responses over the limit).
    table: Mutex<HashMap<IpAddr, (u64, u32, u32)>>,
    dropped: IntCounter,
    slipped: IntCounter,
}

impl Rrl {
    fn new(cfg: RrlConfig, metrics: &DnsMetrics) -> Rrl {
        Rrl {
            cfg,
            start: Instant::now(),
            table: Mutex::new(HashMap::new()),
            dropped: metrics.rrl.with_label_values(&["dropped"]),
            slipped: metrics.rrl.with_label_values(&["slipped"]),
        }
    }

    fn prefix(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => IpAddr::V4(std::net::Ipv4Addr::from(u32::from(v4) & 0xffff_ff00)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Rrl::prefix(IpAddr::V4(v4)),
                None => IpAddr::V6(std::net::Ipv6Addr::from(
                    u128::from(v6) & !((1u128 << 72) - 1),
                )),
            },
        }
    }

    /// Whether the response in `out` is sent; it may be cut down to a TC=1 header and
    /// question first.
    fn admit(&self, ip: IpAddr, out: &mut Vec<u8>) -> bool {
        let window = self.start.elapsed().as_secs();
        let over = {
            let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
            if table.len() >= RRL_TABLE {
                table.retain(|_, (w, _, _)| *w == window);
                if table.len() >= RRL_TABLE {
                    table.clear();
                }
            }
            let entry = table.entry(Rrl::prefix(ip)).or_insert((window, 0, 0));
            if entry.0 != window {
                *entry = (window, 0, 0);
            }
            entry.1 = entry.1.saturating_add(1);
            if entry.1 <= self.cfg.responses_per_second {
                return true;
            }
            entry.2 = entry.2.saturating_add(1);
            entry.2
        };
        if self.cfg.slip > 0
            && over.is_multiple_of(self.cfg.slip)
            && wire::truncate_to_question(out)
        {
            self.slipped.inc();
            return true;
        }
        self.dropped.inc();
        false
    }
}

/// The receive loops of a server; stopped (their sockets closed as they end) on [`stop`].
///
/// [`stop`]: UdpLoops::stop
pub struct UdpLoops {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl UdpLoops {
    pub fn start(sockets: Vec<UdpSocket>, responder: Arc<Responder>) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (i, socket) in sockets.into_iter().enumerate() {
            socket.set_nonblocking(false)?;
            socket.set_read_timeout(Some(STOP_CHECK))?;
            let (stop, responder) = (stop.clone(), responder.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("dns-udp-{i}"))
                    .spawn(move || serve(&socket, &responder, &stop))?,
            );
        }
        Ok(UdpLoops { stop, threads })
    }

    /// Asks the loops to stop (within 250 ms); [`UdpLoops::join`] waits for
    /// them.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    pub fn join(mut self) {
        self.stop();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for UdpLoops {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(socket: &UdpSocket, responder: &Responder, stop: &AtomicBool) {
    // The largest datagram: a longer one would be cut and then misread.
    let mut buf = vec![0u8; 65_535];
    let mut out = Vec::with_capacity(usize::from(u16::MAX));
    while !stop.load(Ordering::Acquire) {
        match socket.recv_from(&mut buf) {
            Ok((n, src)) => {
                // A source we cannot answer (port 0) is dropped, as hickory-server does.
                if src.port() == 0 || src.ip().is_unspecified() {
                    continue;
                }
                // A bug in answering one datagram must not end the loop (and with it
                // the socket's share of UDP service): it is logged and dropped.
                let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    responder.respond(&buf[..n], src, &mut out)
                }));
                match answered {
                    Ok(true) => {
                        if let Err(error) = socket.send_to(&out, src) {
                            tracing::debug!(%error, %src, "sending a DNS response failed");
                        }
                    }
                    Ok(false) => {}
                    Err(_) => {
                        tracing::error!(%src, len = n, "answering a DNS datagram panicked; dropped it")
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(error) => {
                // ICMP errors from earlier sends surface here; the socket stays usable.
                tracing::debug!(%error, "receiving a DNS query failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::server::index::{IndexConfig, ZoneConfig};
    use crate::dns::skydns::codec::SkydnsValue;
    use hickory_proto::op::{Edns, Message, Query, ResponseCode};
    use hickory_proto::rr::Name;

    fn responder() -> (Responder, Arc<ArcSwap<Snapshot>>) {
        let cfg =
            Arc::new(IndexConfig::new("/skydns", &[ZoneConfig::new("example.com")], 300).unwrap());
        let value = |json: &str| serde_json::from_str::<SkydnsValue>(json).unwrap();
        let mut entries = vec![
            (
                "/skydns/com/example/web/a".to_string(),
                value(r#"{"host":"10.0.0.1","ttl":60}"#),
            ),
            (
                "/skydns/com/example/web/b".to_string(),
                value(r#"{"host":"2001:db8::1","ttl":60}"#),
            ),
            (
                "/skydns/com/example/txt".to_string(),
                value(r#"{"text":"hello"}"#),
            ),
            (
                "/skydns/com/example/alias".to_string(),
                value(r#"{"host":"web.example.com"}"#),
            ),
            (
                "/skydns/com/example/_http/_tcp/web".to_string(),
                value(r#"{"host":"web.example.com","port":80}"#),
            ),
        ];
        // Enough A records under one name to overflow 512 bytes (truncation).
        for i in 0..40 {
            entries.push((
                format!("/skydns/com/example/big/x{i}"),
                value(&format!(r#"{{"host":"10.1.0.{i}"}}"#)),
            ));
        }
        let (snapshot, errors) = Snapshot::from_entries(cfg, entries, 1);
        assert!(errors.is_empty(), "{errors:?}");
        let index = Arc::new(ArcSwap::from_pointee(snapshot));
        let metrics = DnsMetrics::register(&prometheus::Registry::new()).unwrap();
        (Responder::new(index.clone(), metrics), index)
    }

    fn query(id: u16, name: &str, qtype: RecordType, edns: Option<u16>, rd: bool) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = id;
        m.metadata.recursion_desired = rd;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        if let Some(size) = edns {
            let mut e = Edns::new();
            e.set_max_payload(size);
            m.edns = Some(e);
        }
        m.to_vec().unwrap()
    }

    /// A fixed-seed pseudo-random sequence: a failing case repeats.
    fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    fn src() -> SocketAddr {
        "127.0.0.1:5300".parse().unwrap()
    }

    /// The bytes the full path (hickory decode + `answer`) gives.
    fn full(r: &Responder, packet: &[u8]) -> Vec<u8> {
        full_on(r, packet, Transport::Udp)
    }

    fn full_on(r: &Responder, packet: &[u8], transport: Transport) -> Vec<u8> {
        let mut out = Vec::new();
        let snapshot = r.index.load_full();
        assert!(
            r.full(
                &snapshot,
                packet,
                src(),
                transport,
                &mut out,
                Instant::now()
            )
            .is_some()
        );
        out
    }

    #[test]
    fn a_cached_answer_is_byte_for_byte_the_full_paths() {
        let (r, _) = responder();
        let questions = [
            ("web.example.com.", RecordType::A),
            ("web.example.com.", RecordType::AAAA),
            ("web.example.com.", RecordType::MX),
            ("txt.example.com.", RecordType::TXT),
            ("alias.example.com.", RecordType::A),
            ("_http._tcp.web.example.com.", RecordType::SRV),
            ("nope.example.com.", RecordType::A),
            ("example.com.", RecordType::SOA),
            ("example.com.", RecordType::NS),
            ("big.example.com.", RecordType::A),
            ("web.example.org.", RecordType::A),
        ];
        // Capitals (0x20 resolvers) share the lower-case spelling's stored response;
        // the comparison shows their spelling survives.
        let spellings = |n: &str| [n.to_string(), n.to_uppercase(), n.replacen('e', "E", 2)];
        for (name, qtype) in questions {
            for edns in [None, Some(512), Some(1232), Some(65000)] {
                for (i, spelling) in spellings(name).iter().enumerate() {
                    for rd in [true, false] {
                        let id = 100 + i as u16;
                        let packet = query(id, spelling, qtype, edns, rd);
                        let mut out = Vec::new();
                        assert!(r.respond(&packet, src(), &mut out));
                        assert_eq!(
                            out,
                            full(&r, &packet),
                            "{spelling} {qtype} edns={edns:?} rd={rd}"
                        );
                        // TCP shares the store under its own key: its answers are not
                        // cut to the UDP size.
                        assert!(r.respond_tcp(&packet, src(), &mut out));
                        assert_eq!(
                            out,
                            full_on(&r, &packet, Transport::Tcp),
                            "TCP {spelling} {qtype} edns={edns:?} rd={rd}"
                        );
                    }
                }
            }
        }
        assert!(r.hits.get() > 0, "the cache answered");
        let mut out = Vec::new();
        r.respond(
            &query(9, "WEB.example.com.", RecordType::A, None, true),
            src(),
            &mut out,
        );
        let upper = Message::from_vec(&out).unwrap();
        assert_eq!(upper.answers[0].name.to_string(), "WEB.example.com.");
        let truncated = Message::from_vec(&full(
            &r,
            &query(1, "big.example.com.", RecordType::A, None, true),
        ))
        .unwrap();
        assert!(
            truncated.metadata.truncation,
            "40 A records do not fit in 512 bytes"
        );
        let big = query(1, "big.example.com.", RecordType::A, None, true);
        for _ in 0..2 {
            r.respond_tcp(&big, src(), &mut out);
            let whole = Message::from_vec(&out).unwrap();
            assert!(!whole.metadata.truncation, "over TCP they all fit");
            assert_eq!(whole.answers.len(), 40);
        }
    }

    /// Arbitrary datagrams, and valid queries with bytes flipped, never panic and get
    /// at most a well-formed message back (fixed seed).
    #[test]
    fn arbitrary_datagrams_never_panic() {
        let (r, _) = responder();
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        let seeds = [
            query(1, "web.example.com.", RecordType::A, None, true),
            query(
                2,
                "_http._tcp.web.example.com.",
                RecordType::SRV,
                Some(1232),
                true,
            ),
            query(3, "big.example.com.", RecordType::A, Some(512), false),
        ];
        let mut out = Vec::new();
        for i in 0..20_000 {
            let packet: Vec<u8> = if i % 2 == 0 {
                let len = (next() % 80) as usize;
                (0..len).map(|_| next() as u8).collect()
            } else {
                let mut p = seeds[i % seeds.len()].clone();
                for _ in 0..1 + next() % 4 {
                    let at = (next() as usize) % p.len();
                    p[at] = next() as u8;
                }
                if next().is_multiple_of(5) {
                    p.truncate((next() as usize) % p.len());
                }
                p
            };
            if r.respond(&packet, src(), &mut out) {
                assert!(out.len() >= 12, "a response has at least a header");
                assert_eq!(out[..2], packet[..2], "the request's ID");
            }
        }
    }

    /// Random updates, each a snapshot that says what changed, interleaved with
    /// questions whose answers read other names (CNAME chains, SRV targets, subtrees,
    /// the apex): every answer, stored or not, is byte for byte the full path's.
    #[test]
    fn stored_answers_follow_random_updates() {
        use crate::dns::skydns::codec;
        let cfg =
            Arc::new(IndexConfig::new("/skydns", &[ZoneConfig::new("example.com")], 300).unwrap());
        let values = [
            r#"{"host":"10.0.0.1"}"#,
            r#"{"host":"10.0.0.2","ttl":60}"#,
            r#"{"host":"2001:db8::7"}"#,
            r#"{"host":"b.example.com"}"#,
            r#"{"host":"c.sub.example.com"}"#,
            r#"{"host":"a.example.com","port":80}"#,
            r#"{"text":"hello"}"#,
            r#"{"host":"outside.example.org"}"#,
        ];
        let keys = [
            "/skydns/com/example/a/x",
            "/skydns/com/example/a/y",
            "/skydns/com/example/b",
            "/skydns/com/example/sub/c/x",
            "/skydns/com/example/sub/d",
            "/skydns/com/example/_tcp/_http/svc/x",
            "/skydns/com/example/dns/apex/x",
            "/skydns/com/example/dns/ns/ns1",
        ];
        let questions = [
            ("a.example.com.", RecordType::A),
            ("a.example.com.", RecordType::AAAA),
            ("b.example.com.", RecordType::A),
            ("b.example.com.", RecordType::TXT),
            ("c.sub.example.com.", RecordType::A),
            ("sub.example.com.", RecordType::A),
            ("d.sub.example.com.", RecordType::CNAME),
            ("svc._http._tcp.example.com.", RecordType::SRV),
            ("example.com.", RecordType::A),
            ("example.com.", RecordType::NS),
            ("example.com.", RecordType::SOA),
            ("nope.example.com.", RecordType::A),
            ("x.a.example.com.", RecordType::A),
        ];
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        let value = |json: &str| serde_json::from_str::<SkydnsValue>(json).unwrap();
        let mut entries: std::collections::BTreeMap<String, SkydnsValue> = Default::default();
        let index = Arc::new(ArcSwap::from_pointee(Snapshot::empty(cfg.clone())));
        let metrics = DnsMetrics::register(&prometheus::Registry::new()).unwrap();
        let r = Responder::new(index.clone(), metrics);
        let mut out = Vec::new();
        for (step, serial) in (0..400).zip(1u32..) {
            let mut changed = Vec::new();
            for _ in 0..1 + next() % 2 {
                let key = keys[(next() as usize) % keys.len()];
                if next().is_multiple_of(3) {
                    entries.remove(key);
                } else {
                    entries.insert(key.into(), value(values[(next() as usize) % values.len()]));
                }
                changed.push(
                    codec::key_to_path(key, "/skydns")
                        .unwrap()
                        .to_ascii_lowercase(),
                );
            }
            let (snapshot, _) = Snapshot::from_entries(
                cfg.clone(),
                entries.iter().map(|(k, v)| (k.clone(), v.clone())),
                serial + 1,
            );
            index.store(Arc::new(snapshot.with_changes(serial, changed)));
            for _ in 0..20 {
                let (name, qtype) = questions[(next() as usize) % questions.len()];
                let packet = query(7, name, qtype, None, true);
                assert!(r.respond(&packet, src(), &mut out));
                assert_eq!(
                    out,
                    full(&r, &packet),
                    "step {step}: {name} {qtype} {entries:?}"
                );
            }
        }
        assert!(
            r.hits.get() > 2000,
            "most answers came from the store: {}",
            r.hits.get()
        );
    }

    #[test]
    fn a_snapshot_without_changes_empties_the_store() {
        let (r, index) = responder();
        let packet = query(1, "web.example.com.", RecordType::A, None, true);
        let mut out = Vec::new();
        r.respond(&packet, src(), &mut out);
        r.respond(&packet, src(), &mut out);
        assert_eq!(r.hits.get(), 1);
        let answer = |out: &[u8]| Message::from_vec(out).unwrap().answers.len();
        assert_eq!(answer(&out), 1);

        let cfg = index.load().config().clone();
        let (next, _) = Snapshot::from_entries(cfg, Vec::new(), 2);
        index.store(Arc::new(next));
        r.respond(&packet, src(), &mut out);
        let m = Message::from_vec(&out).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(
            r.hits.get(),
            1,
            "not answered from the old snapshot's cache"
        );
    }

    #[test]
    fn what_cannot_be_decoded_gets_formerr_and_responses_get_nothing() {
        let (r, _) = responder();
        let mut out = Vec::new();
        assert!(
            !r.respond(&[1, 2, 3], src(), &mut out),
            "shorter than a header"
        );
        let mut garbage = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        garbage.extend([63, b'a']);
        assert!(r.respond(&garbage, src(), &mut out));
        let m = Message::from_vec(&out).unwrap();
        assert_eq!(m.metadata.id, 0xabcd);
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);

        let mut response = query(1, "web.example.com.", RecordType::A, None, true);
        response[2] |= 0x80;
        assert!(!r.respond(&response, src(), &mut out), "no reflection");
    }
}
