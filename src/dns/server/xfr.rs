//! Zone transfers and everything signed: AXFR (RFC 5936) and IXFR (RFC 1995) over TCP,
//! IXFR over UDP (one SOA), TSIG-signed queries (answered by `answer` and signed here),
//! incoming NOTIFY (REFUSED: this server is a primary, its data comes from etcd), and
//! the task that keeps the IXFR journals and sends NOTIFY when a zone's serial moves.
//!
//! Who may transfer is `acl`'s; which records a zone holds is `flat`'s; the journal is
//! `journal`'s; MACs are `tsig`'s. This module decides and encodes.
//!
//! Consistency: a transfer is computed whole from the one snapshot loaded when the
//! request arrived (the `Arc<Snapshot>` is held until every message is encoded), so it
//! never mixes two versions; an IXFR is served from the journal only when the journal's
//! serial is that snapshot's, else the full zone is sent (RFC 1995 4 allows it).
//!
//! Limits: at most `max_transfers` transfers are computed and sent at once (one more is
//! answered SERVFAIL at once); a transfer costs what flattening the zone costs (see
//! `flat`) and its messages, at most [`MESSAGE_BYTES`] each, are held in memory until
//! sent. A request is answered with one message unless it is an AXFR/IXFR over TCP.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use prometheus::{IntCounterVec, Opts, Registry};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::acl::Acl;
use super::answer::{self, Reply, Transport};
use super::feed::IndexHandle;
use super::flat;
use super::index::Snapshot;
use super::journal::{self, Ixfr, Journal};
use super::notify::{self, Target};
use super::tsig::{self, KeyRing, Signer, Verified};

/// Largest transfer message before its TSIG: BIND and Knot send up to 64 KiB; smaller
/// messages cost a little more framing and let a slow reader take the zone bit by bit.
pub const MESSAGE_BYTES: usize = 16 * 1024;
/// Room kept for the TSIG record of each message (owner and algorithm names, 64-byte MAC).
const TSIG_ROOM: usize = 600;
/// Transfers served at once unless configured (`--max-transfers`).
pub const DEFAULT_MAX_TRANSFERS: usize = 4;

#[derive(Clone)]
pub struct XfrMetrics {
    /// `kubefed_dns_notify_total{target,result}`: NOTIFY attempts by secondary and result.
    pub notify: IntCounterVec,
    /// `kubefed_dns_transfers_total{kind,result}`: AXFR/IXFR requests by outcome.
    pub transfers: IntCounterVec,
}

impl XfrMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<XfrMetrics> {
        let m = XfrMetrics::unregistered();
        m.register_into(registry)?;
        Ok(m)
    }

    /// Exports metrics made before the registry existed (the controller manager's
    /// options are parsed before it builds its registry).
    pub fn register_into(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.notify.clone()))?;
        registry.register(Box::new(self.transfers.clone()))?;
        Ok(())
    }

    /// For tests and servers without a registry.
    pub fn unregistered() -> XfrMetrics {
        XfrMetrics {
            notify: IntCounterVec::new(
                Opts::new(
                    "kubefed_dns_notify_total",
                    "NOTIFY attempts by secondary and result",
                ),
                &["target", "result"],
            )
            .expect("valid metric"),
            transfers: IntCounterVec::new(
                Opts::new(
                    "kubefed_dns_transfers_total",
                    "Zone transfer requests by kind and result",
                ),
                &["kind", "result"],
            )
            .expect("valid metric"),
        }
    }
}

/// What `--tsig-key`, `--allow-transfer`, `--notify`, `--ixfr-journal` and
/// `--max-transfers` configure.
#[derive(Clone)]
pub struct XfrConfig {
    pub keys: KeyRing,
    pub acl: Acl,
    pub notify: Vec<Target>,
    /// Changes kept per zone for IXFR.
    pub journal: usize,
    pub max_transfers: usize,
    pub metrics: XfrMetrics,
}

impl std::fmt::Debug for XfrConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XfrConfig")
            .field("keys", &self.keys)
            .field("acl", &self.acl)
            .field("notify", &self.notify)
            .field("journal", &self.journal)
            .field("max_transfers", &self.max_transfers)
            .finish()
    }
}

impl XfrConfig {
    pub fn new(metrics: XfrMetrics) -> XfrConfig {
        XfrConfig {
            keys: KeyRing::default(),
            acl: Acl::default(),
            notify: Vec::new(),
            journal: journal::DEFAULT_JOURNAL,
            max_transfers: DEFAULT_MAX_TRANSFERS,
            metrics,
        }
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The transfer side of a server.
pub struct Transfers {
    cfg: XfrConfig,
    journals: Mutex<HashMap<Name, Journal>>,
    slots: Arc<Semaphore>,
    /// The latest NOTIFY started per (secondary, zone): older ones stop retrying.
    notifying: Arc<Mutex<HashMap<(SocketAddr, Name), u64>>>,
}

/// Whether `packet` is for this module rather than `answer`: a NOTIFY, an AXFR/IXFR, or
/// a request carrying a TSIG. Costs a parse, so the UDP fast path never calls it.
pub fn wants(packet: &[u8]) -> bool {
    if packet.len() < 12 || packet[2] & 0x80 != 0 {
        return false;
    }
    if (packet[2] >> 3) & 0x0f == 4 {
        return true;
    }
    if matches!(qtype(packet), Some(RecordType::AXFR | RecordType::IXFR)) {
        return true;
    }
    u16::from_be_bytes([packet[10], packet[11]]) > 0 && matches!(tsig::find(packet), Ok(Some(_)))
}

/// The first question's type: the header and one question decoded, nothing more.
fn qtype(packet: &[u8]) -> Option<RecordType> {
    use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
    let mut d = BinDecoder::new(packet);
    let header = hickory_proto::op::Header::read(&mut d).ok()?;
    if header.counts.queries == 0 {
        return None;
    }
    Query::read(&mut d).ok().map(|q| q.query_type())
}

/// A response carrying only the header and the request's question.
fn error_response(request: &[u8], code: ResponseCode) -> Vec<u8> {
    match Message::from_vec(request) {
        Ok(req) => {
            let mut m = Message::new(req.metadata.id, MessageType::Response, req.metadata.op_code);
            m.metadata.recursion_desired = req.metadata.recursion_desired;
            m.metadata.response_code = code;
            m.queries = req.queries;
            if req.edns.is_some() {
                // RFC 6891 7: a response to a request with EDNS carries an OPT.
                m.edns = Some(hickory_proto::op::Edns::new());
            }
            m.to_vec().unwrap_or_else(|_| bare(request, code))
        }
        Err(_) => bare(request, code),
    }
}

fn bare(request: &[u8], code: ResponseCode) -> Vec<u8> {
    let mut out = vec![0u8; 12];
    if request.len() >= 3 {
        out[0] = request[0];
        out[1] = request[1];
        out[2] = 0x80 | (request[2] & 0x79);
    }
    out[3] = code.low();
    out
}

/// A zone's SOA with another serial (the IXFR difference sequences need the old ones).
fn soa_at(soa: &Record, serial: u32) -> Record {
    let mut r = soa.clone();
    if let RData::SOA(s) = &mut r.data {
        s.serial = serial;
    }
    r
}

/// Splits `records` into transfer messages answering `request` (pure): each message has
/// the request's ID, QR and AA, the question in the first one only (RFC 5936 2.2.1),
/// and at most `max` bytes; names are compressed within each message. A record too big
/// for an empty message is left out (no value the index accepts comes near it).
pub fn encode_transfer(
    request: &[u8],
    question: &Query,
    records: &[Record],
    max: usize,
) -> Vec<Vec<u8>> {
    let max = max.min(usize::from(u16::MAX)) as u16;
    let mut messages = Vec::new();
    let mut i = 0;
    let rd = request.get(2).copied().unwrap_or(0) & 0x01;
    let id = [
        request.first().copied().unwrap_or(0),
        request.get(1).copied().unwrap_or(0),
    ];
    loop {
        let first = messages.is_empty();
        let mut buf = Vec::with_capacity(usize::from(max));
        let mut count: u16 = 0;
        {
            let mut enc = BinEncoder::new(&mut buf);
            enc.set_max_size(max);
            let _ = enc.emit_vec(&[0; 12]);
            if first {
                let _ = question.emit(&mut enc);
            }
            while i < records.len() && count < u16::MAX {
                let at = enc.offset();
                match records[i].emit(&mut enc) {
                    Ok(()) => {
                        count += 1;
                        i += 1;
                    }
                    Err(_) => {
                        enc.set_offset(at);
                        enc.trim();
                        if count == 0 {
                            i += 1; // cannot fit even alone
                            continue;
                        }
                        break;
                    }
                }
            }
        }
        buf[0] = id[0];
        buf[1] = id[1];
        buf[2] = 0x84 | rd;
        buf[3] = 0;
        buf[4..6].copy_from_slice(&u16::from(first).to_be_bytes());
        buf[6..8].copy_from_slice(&count.to_be_bytes());
        messages.push(buf);
        if i >= records.len() {
            return messages;
        }
    }
}

impl Transfers {
    pub fn new(cfg: XfrConfig) -> Transfers {
        let slots = Arc::new(Semaphore::new(cfg.max_transfers.max(1)));
        Transfers {
            cfg,
            journals: Mutex::new(HashMap::new()),
            slots,
            notifying: Arc::default(),
        }
    }

    fn count(&self, kind: &str, result: &str) {
        self.cfg
            .metrics
            .transfers
            .with_label_values(&[kind, result])
            .inc();
    }

    /// The messages answering `packet` (usually one; a TCP transfer several), each
    /// signed when the request was. Empty: send nothing.
    pub fn respond(
        &self,
        snapshot: &Snapshot,
        packet: &[u8],
        src: IpAddr,
        transport: Transport,
        max_udp_payload: u16,
        now: u64,
    ) -> Vec<Vec<u8>> {
        if packet.len() < 12 || packet[2] & 0x80 != 0 {
            return Vec::new();
        }
        let (request, key, mac) = match tsig::verify(&self.cfg.keys, packet, now) {
            Verified::Malformed => return vec![bare(packet, ResponseCode::FormErr)],
            Verified::Unsigned => (packet.to_vec(), None, Vec::new()),
            Verified::Signed {
                stripped, key, mac, ..
            } => (stripped, Some(key), mac),
            Verified::Failed {
                error,
                sig,
                stripped,
                key,
                mac,
            } => {
                let mut out = error_response(&stripped, ResponseCode::NotAuth);
                out[..2].copy_from_slice(&packet[..2]);
                self.count("tsig", &format!("{error:?}").to_ascii_lowercase());
                match key {
                    Some(k) => Signer::new(k, mac).with_error(error).sign(&mut out, now),
                    None => tsig::append_error(&mut out, &sig, error),
                }
                return vec![out];
            }
        };
        // `request` carries the TSIG's original ID (what the MAC covered); answers go
        // back with the ID the request arrived with.
        let id = [packet[0], packet[1]];
        let sign = |mut msgs: Vec<Vec<u8>>| {
            for m in &mut msgs {
                if m.len() >= 2 {
                    m[..2].copy_from_slice(&id);
                }
            }
            if let Some(k) = key {
                let mut signer = Signer::new(k, mac.clone());
                for m in &mut msgs {
                    signer.sign(m, now);
                }
            }
            msgs
        };
        let msg = match Message::from_vec(&request) {
            Ok(m) if m.queries.len() == 1 => m,
            _ => return sign(vec![bare(&request, ResponseCode::FormErr)]),
        };
        if msg.metadata.op_code == OpCode::Notify {
            // We are the primary: nothing to refresh from a NOTIFY.
            return sign(vec![error_response(&request, ResponseCode::Refused)]);
        }
        let q = &msg.queries[0];
        let kind = match q.query_type() {
            RecordType::AXFR => "axfr",
            RecordType::IXFR => "ixfr",
            _ => {
                // A signed ordinary question: answered as any other, then signed.
                let mut out = Vec::new();
                if answer::respond(snapshot, &request, transport, max_udp_payload, &mut out)
                    .is_none()
                {
                    return Vec::new();
                }
                let limit =
                    answer::udp_limit(msg.edns.as_ref().map(|e| e.max_payload()), max_udp_payload);
                let room = key.map(|k| k.record_len()).unwrap_or(0);
                if transport == Transport::Udp && room > 0 && out.len() + room > limit {
                    // No room left for the TSIG: the question only, with TC, so the
                    // client asks again over TCP.
                    let mut tc = error_response(&request, ResponseCode::NoError);
                    if tc.len() > 2 {
                        tc[2] |= 0x06; // TC, and AA as the full answer would have
                    }
                    return sign(vec![tc]);
                }
                return sign(vec![out]);
            }
        };
        if !self.cfg.acl.allows(src, key.map(|k| &k.name)) {
            self.count(kind, "refused");
            return sign(vec![error_response(&request, ResponseCode::Refused)]);
        }
        if transport == Transport::Udp && kind == "axfr" {
            // RFC 5936 4.2: AXFR is TCP only.
            self.count(kind, "formerr");
            return sign(vec![error_response(&request, ResponseCode::FormErr)]);
        }
        if !snapshot.is_loaded() {
            self.count(kind, "servfail");
            return sign(vec![error_response(&request, ResponseCode::ServFail)]);
        }
        let zone = q.name().to_lowercase();
        let (Some(zi), true) = (
            snapshot.zone_index(&zone),
            q.query_class() == hickory_proto::rr::DNSClass::IN,
        ) else {
            self.count(kind, "notauth");
            return sign(vec![error_response(&request, ResponseCode::NotAuth)]);
        };
        let Some(soa) = flat::soa(snapshot, zi) else {
            return sign(vec![error_response(&request, ResponseCode::ServFail)]);
        };
        let serial = snapshot.zone_serial(zi);
        let records = if kind == "axfr" {
            self.count(kind, "ok");
            full(snapshot, zi, &soa)
        } else {
            let client = msg.authorities.iter().find_map(|r| match &r.data {
                RData::SOA(s) => Some(s.serial),
                _ => None,
            });
            let Some(client) = client else {
                self.count(kind, "formerr");
                return sign(vec![error_response(&request, ResponseCode::FormErr)]);
            };
            if transport == Transport::Udp {
                // RFC 1995 2: the current SOA only; a client behind comes back over TCP.
                self.count(kind, "udp_soa");
                vec![soa.clone()]
            } else {
                self.ixfr(snapshot, zi, &zone, serial, client, &soa)
            }
        };
        let max = match transport {
            Transport::Tcp => MESSAGE_BYTES,
            Transport::Udp => {
                answer::udp_limit(msg.edns.as_ref().map(|e| e.max_payload()), max_udp_payload)
            }
        };
        let mut q = q.clone();
        // The question is echoed as asked.
        q.set_name(msg.queries[0].name().clone());
        sign(encode_transfer(
            &request,
            &q,
            &records,
            max.saturating_sub(TSIG_ROOM).max(512),
        ))
    }

    /// IXFR records for a client at serial `client` (TCP).
    fn ixfr(
        &self,
        s: &Snapshot,
        zi: usize,
        zone: &Name,
        serial: u32,
        client: u32,
        soa: &Record,
    ) -> Vec<Record> {
        let answer = {
            let journals = self.journals.lock().unwrap_or_else(|e| e.into_inner());
            match journals.get(zone) {
                // The journal must describe the snapshot being served.
                Some(j) if j.serial == serial => Some(j.ixfr(client)),
                _ => None,
            }
        };
        match answer {
            Some(Ixfr::UpToDate) => {
                self.count("ixfr", "up_to_date");
                vec![soa.clone()]
            }
            Some(Ixfr::Deltas(deltas)) => {
                self.count("ixfr", "ok");
                let mut out = vec![soa.clone()];
                for d in deltas {
                    out.push(soa_at(soa, d.from));
                    out.extend(d.removed.iter().cloned());
                    out.push(soa_at(soa, d.to));
                    out.extend(d.added.iter().cloned());
                }
                out.push(soa.clone());
                out
            }
            Some(Ixfr::Full) | None => {
                self.count("ixfr", "full");
                full(s, zi, soa)
            }
        }
    }

    /// Answers one TCP request that [`wants`] chose; the transfer's messages are
    /// written one after the other, each within `timeout`.
    pub async fn serve_tcp(
        self: &Arc<Self>,
        stream: &mut TcpStream,
        request: Vec<u8>,
        peer: SocketAddr,
        index: &Arc<ArcSwap<Snapshot>>,
        max_udp_payload: u16,
        timeout: Duration,
    ) -> std::io::Result<()> {
        let transfer = matches!(qtype(&request), Some(RecordType::AXFR | RecordType::IXFR));
        let slot = if transfer {
            match self.slots.clone().try_acquire_owned() {
                Ok(s) => Some(s),
                Err(_) => {
                    self.count("transfer", "busy");
                    let out = error_response(&request, ResponseCode::ServFail);
                    return write(stream, &[out], timeout).await;
                }
            }
        } else {
            None
        };
        let snapshot = index.load_full();
        let me = self.clone();
        // Flattening a large zone is CPU work: off the async workers.
        let messages = tokio::task::spawn_blocking(move || {
            me.respond(
                &snapshot,
                &request,
                peer.ip(),
                Transport::Tcp,
                max_udp_payload,
                unix_now(),
            )
        })
        .await
        .unwrap_or_default();
        let r = write(stream, &messages, timeout).await;
        drop(slot);
        r
    }

    /// Whether anyone can transfer or be notified: without, the journal task is not run
    /// (flattening a zone on every change would be work for nobody).
    pub fn has_secondaries(&self) -> bool {
        !self.cfg.acl.is_empty() || !self.cfg.notify.is_empty()
    }

    /// Keeps the journals current and notifies the secondaries, until `cancel`. Runs one
    /// refresh at a time from the latest snapshot: changes arriving during a refresh are
    /// taken together by the next one (one journal step spanning several serials).
    pub async fn run(self: Arc<Self>, index: IndexHandle, cancel: CancellationToken) {
        let mut changes = index.subscribe();
        let mut generation: u64 = 0;
        loop {
            let snapshot = index.snapshot();
            let me = self.clone();
            let changed = tokio::task::spawn_blocking(move || me.refresh(&snapshot))
                .await
                .unwrap_or_default();
            for (zone, soa) in changed {
                for target in &self.cfg.notify {
                    let key = target
                        .key
                        .as_ref()
                        .and_then(|k| self.cfg.keys.get(k))
                        .cloned();
                    generation += 1;
                    let slot = (target.addr, zone.clone());
                    self.notifying
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(slot.clone(), generation);
                    let notifying = self.notifying.clone();
                    let mine = generation;
                    let superseded = move || {
                        notifying
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get(&slot)
                            .is_some_and(|g| *g != mine)
                    };
                    tokio::spawn(notify::send(
                        target.clone(),
                        key,
                        zone.clone(),
                        soa.clone(),
                        self.cfg.metrics.notify.clone(),
                        superseded,
                    ));
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                r = changes.changed() => if r.is_err() { return },
            }
        }
    }

    /// Brings every zone's journal to `s`; returns the zones whose serial moved (or that
    /// are new), with their SOA.
    pub fn refresh(&self, s: &Snapshot) -> Vec<(Name, Record)> {
        if !s.is_loaded() {
            return Vec::new();
        }
        let zones: Vec<Name> = s.config().zone_names().cloned().collect();
        let mut changed = Vec::new();
        for (i, zone) in zones.iter().enumerate() {
            let serial = s.zone_serial(i);
            let known = {
                let j = self.journals.lock().unwrap_or_else(|e| e.into_inner());
                j.get(zone).map(|j| j.serial)
            };
            if known == Some(serial) {
                continue;
            }
            let records = flat::zone_records(s, i);
            let mut j = self.journals.lock().unwrap_or_else(|e| e.into_inner());
            match j.get_mut(zone) {
                Some(journal) => {
                    journal.advance(serial, records);
                }
                None => {
                    j.insert(
                        zone.clone(),
                        Journal::new(serial, records, self.cfg.journal),
                    );
                }
            }
            if let Some(soa) = flat::soa(s, i) {
                changed.push((zone.clone(), soa));
            }
        }
        self.journals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|z, _| zones.contains(z));
        changed
    }

    /// The response to a UDP request [`wants`] chose, in `out`; `None`: send nothing.
    pub fn respond_udp(
        &self,
        snapshot: &Snapshot,
        packet: &[u8],
        src: IpAddr,
        max_udp_payload: u16,
        out: &mut Vec<u8>,
    ) -> Option<Reply> {
        let first = self
            .respond(
                snapshot,
                packet,
                src,
                Transport::Udp,
                max_udp_payload,
                unix_now(),
            )
            .into_iter()
            .next()?;
        out.clear();
        out.extend_from_slice(&first);
        Some(Reply {
            qtype: qtype(packet),
            rcode: ResponseCode::from_low(out.get(3).copied().unwrap_or(0) & 0x0f),
            malformed: false,
            storable: false,
            serial_at: None,
            limited: false,
            zone: None,
        })
    }
}

/// AXFR form: SOA, every record, SOA.
fn full(s: &Snapshot, zi: usize, soa: &Record) -> Vec<Record> {
    let mut out = vec![soa.clone()];
    out.extend(flat::zone_records(s, zi));
    out.push(soa.clone());
    out
}

async fn write(
    stream: &mut TcpStream,
    messages: &[Vec<u8>],
    timeout: Duration,
) -> std::io::Result<()> {
    for m in messages {
        let len = (m.len() as u16).to_be_bytes();
        let w = async {
            stream.write_all(&len).await?;
            stream.write_all(m).await
        };
        tokio::time::timeout(timeout, w)
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hickory_proto::op::{Message, Query};

    use super::*;
    use crate::dns::server::index::{IndexConfig, ZoneConfig};
    use crate::dns::server::tsig::Key;
    use crate::dns::skydns::SkydnsValue;

    const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=";

    fn snapshot(n: usize, serial: u32) -> Snapshot {
        let cfg =
            Arc::new(IndexConfig::new("/skydns", &[ZoneConfig::new("example.com")], 300).unwrap());
        let entries = (0..n).map(|i| {
            (
                format!("/skydns/com/example/h{i}/x"),
                SkydnsValue::host(format!("10.6.{}.{}", i / 256, i % 256)),
            )
        });
        Snapshot::from_entries(cfg, entries, serial)
            .0
            .with_zone_serials(vec![serial])
    }

    fn transfers(acl: &[&str]) -> Transfers {
        let mut cfg = XfrConfig::new(XfrMetrics::unregistered());
        cfg.acl = Acl::parse(acl).unwrap();
        cfg.keys = KeyRing::new([Key::new("xfr", "hmac-sha256", SECRET).unwrap()]);
        Transfers::new(cfg)
    }

    fn request(qtype: RecordType, client_serial: Option<u32>) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = 99;
        let zone = Name::from_ascii("example.com.").unwrap();
        m.add_query(Query::query(zone.clone(), qtype));
        if let Some(s) = client_serial {
            m.add_authority(soa_at(&flat::soa(&snapshot(0, 0), 0).unwrap(), s));
        }
        m.to_vec().unwrap()
    }

    fn answers(msgs: &[Vec<u8>]) -> Vec<Record> {
        msgs.iter()
            .flat_map(|m| Message::from_vec(m).unwrap().answers)
            .collect()
    }

    #[test]
    fn an_axfr_starts_and_ends_with_the_soa_and_spans_messages_when_large() {
        let s = snapshot(2000, 5);
        let t = transfers(&["127.0.0.0/8"]);
        let msgs = t.respond(
            &s,
            &request(RecordType::AXFR, None),
            "127.0.0.1".parse().unwrap(),
            Transport::Tcp,
            1232,
            0,
        );
        assert!(msgs.len() > 1, "{} messages", msgs.len());
        assert!(msgs.iter().all(|m| m.len() <= MESSAGE_BYTES));
        let a = answers(&msgs);
        assert_eq!(a.first().unwrap().record_type(), RecordType::SOA);
        assert_eq!(a.last().unwrap().record_type(), RecordType::SOA);
        // NS, then two A records (the key's and its parent's name) per entry.
        assert_eq!(a.len(), 2 + 1 + 2 * 2000);
        assert_eq!(Message::from_vec(&msgs[1]).unwrap().queries.len(), 0);
    }

    #[test]
    fn transfers_are_refused_outside_the_acl_and_axfr_over_udp_is_a_format_error() {
        let s = snapshot(3, 5);
        let t = transfers(&["10.0.0.0/8"]);
        let rcode = |m: &[Vec<u8>]| Message::from_vec(&m[0]).unwrap().metadata.response_code;
        let out = t.respond(
            &s,
            &request(RecordType::AXFR, None),
            "127.0.0.1".parse().unwrap(),
            Transport::Tcp,
            1232,
            0,
        );
        assert_eq!(rcode(&out), ResponseCode::Refused);
        let out = t.respond(
            &s,
            &request(RecordType::AXFR, None),
            "10.1.1.1".parse().unwrap(),
            Transport::Udp,
            1232,
            0,
        );
        assert_eq!(rcode(&out), ResponseCode::FormErr);
        let none = transfers(&[]);
        let out = none.respond(
            &s,
            &request(RecordType::IXFR, Some(1)),
            "10.1.1.1".parse().unwrap(),
            Transport::Tcp,
            1232,
            0,
        );
        assert_eq!(
            rcode(&out),
            ResponseCode::Refused,
            "no --allow-transfer: nobody"
        );
    }

    #[test]
    fn an_ixfr_sends_the_differences_or_the_whole_zone_when_the_serial_is_unknown() {
        let t = transfers(&["127.0.0.1"]);
        let src: IpAddr = "127.0.0.1".parse().unwrap();
        t.refresh(&snapshot(2, 5));
        let s = snapshot(3, 6);
        assert_eq!(t.refresh(&s).len(), 1);
        let a = answers(&t.respond(
            &s,
            &request(RecordType::IXFR, Some(5)),
            src,
            Transport::Tcp,
            1232,
            0,
        ));
        let serials: Vec<u32> = a
            .iter()
            .filter_map(|r| match &r.data {
                RData::SOA(s) => Some(s.serial),
                _ => None,
            })
            .collect();
        assert_eq!(serials, vec![6, 5, 6, 6]);
        // The added entry h2/x: two A records (h2/x and h2).
        assert_eq!(a.len(), 4 + 2);
        // Unknown serial: AXFR form inside the IXFR answer.
        let a = answers(&t.respond(
            &s,
            &request(RecordType::IXFR, Some(1)),
            src,
            Transport::Tcp,
            1232,
            0,
        ));
        assert_eq!(a.len(), 2 + 1 + 2 * 3);
        // Current: one SOA; over UDP always one SOA.
        let a = answers(&t.respond(
            &s,
            &request(RecordType::IXFR, Some(6)),
            src,
            Transport::Tcp,
            1232,
            0,
        ));
        assert_eq!(a.len(), 1);
        let a = answers(&t.respond(
            &s,
            &request(RecordType::IXFR, Some(5)),
            src,
            Transport::Udp,
            1232,
            0,
        ));
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn a_signed_transfer_is_allowed_by_key_and_every_message_is_signed() {
        let s = snapshot(2000, 5);
        let t = transfers(&["key=xfr"]);
        let key = Key::new("xfr", "hmac-sha256", SECRET).unwrap();
        let mut req = request(RecordType::AXFR, None);
        let mut signer = Signer::new(&key, Vec::new());
        signer.sign(&mut req, 100);
        let msgs = t.respond(
            &s,
            &req,
            "192.0.2.1".parse().unwrap(),
            Transport::Tcp,
            1232,
            100,
        );
        assert!(msgs.len() > 1);
        for m in &msgs {
            let m = Message::from_vec(m).unwrap();
            assert_eq!(m.metadata.response_code, ResponseCode::NoError);
            assert_eq!(
                m.additionals.last().unwrap().record_type(),
                RecordType::TSIG
            );
        }
        assert!(tsig::verify_response(&key, signer.last_mac(), &msgs[0]));
        // Unsigned from the same place: refused.
        let out = t.respond(
            &s,
            &request(RecordType::AXFR, None),
            "192.0.2.1".parse().unwrap(),
            Transport::Tcp,
            1232,
            100,
        );
        assert_eq!(
            Message::from_vec(&out[0]).unwrap().metadata.response_code,
            ResponseCode::Refused
        );
        // A wrong secret: NOTAUTH.
        let wrong = Key::new("xfr", "hmac-sha256", "b3RoZXI=").unwrap();
        let mut req = request(RecordType::AXFR, None);
        Signer::new(&wrong, Vec::new()).sign(&mut req, 100);
        let out = t.respond(
            &s,
            &req,
            "192.0.2.1".parse().unwrap(),
            Transport::Tcp,
            1232,
            100,
        );
        assert_eq!(
            Message::from_vec(&out[0]).unwrap().metadata.response_code,
            ResponseCode::NotAuth
        );
    }

    #[test]
    fn a_signed_udp_answer_without_room_for_its_tsig_is_truncated_and_still_signed() {
        let s = snapshot(0, 5);
        let t = transfers(&[]);
        let key = Key::new("xfr", "hmac-sha256", SECRET).unwrap();
        // 40 TXT records of 10 bytes at one name: about 500 bytes without EDNS.
        let cfg =
            Arc::new(IndexConfig::new("/skydns", &[ZoneConfig::new("example.com")], 300).unwrap());
        let entries = (0..40).map(|i| {
            let mut v = SkydnsValue::host("");
            v.text = format!("text-{i:04}");
            (format!("/skydns/com/example/t/{i}"), v)
        });
        let big = Snapshot::from_entries(cfg, entries, 5).0;
        let mut m = Message::query();
        m.metadata.id = 3;
        m.add_query(Query::query(
            Name::from_ascii("t.example.com.").unwrap(),
            RecordType::TXT,
        ));
        let mut req = m.to_vec().unwrap();
        let mut signer = Signer::new(&key, Vec::new());
        signer.sign(&mut req, 100);
        for snap in [&s, &big] {
            let out = t.respond(
                snap,
                &req,
                "192.0.2.1".parse().unwrap(),
                Transport::Udp,
                1232,
                100,
            );
            assert!(out[0].len() <= 512, "{}", out[0].len());
            assert!(tsig::verify_response(&key, signer.last_mac(), &out[0]));
        }
        let out = t.respond(
            &big,
            &req,
            "192.0.2.1".parse().unwrap(),
            Transport::Udp,
            1232,
            100,
        );
        let m = Message::from_vec(&out[0]).unwrap();
        assert!(m.metadata.truncation && m.answers.is_empty());
        // The ID is the request's, even when the TSIG's original ID differs.
        let mut other = req.clone();
        other[0] = 0x77;
        let out = t.respond(
            &s,
            &other,
            "192.0.2.1".parse().unwrap(),
            Transport::Udp,
            1232,
            100,
        );
        assert_eq!(out[0][0], 0x77);
    }

    #[test]
    fn incoming_notify_is_refused_and_garbage_gets_no_panic() {
        let s = snapshot(1, 1);
        let t = transfers(&["127.0.0.1"]);
        let zone = Name::from_ascii("example.com.").unwrap();
        let n = notify::message(5, &zone, &flat::soa(&s, 0).unwrap());
        assert!(wants(&n));
        let out = t.respond(
            &s,
            &n,
            "127.0.0.1".parse().unwrap(),
            Transport::Udp,
            1232,
            0,
        );
        assert_eq!(
            Message::from_vec(&out[0]).unwrap().metadata.response_code,
            ResponseCode::Refused
        );
        let req = request(RecordType::AXFR, None);
        for cut in 0..req.len() {
            let _ = t.respond(
                &s,
                &req[..cut],
                "127.0.0.1".parse().unwrap(),
                Transport::Tcp,
                1232,
                0,
            );
            let _ = wants(&req[..cut]);
        }
    }
}
