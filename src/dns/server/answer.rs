//! The protocol side of answering, shared by UDP and TCP: one request message in, one
//! encoded response out. hickory-proto parses the request and encodes every record;
//! this module owns what surrounds them: opcodes, EDNS, TSIG, rcodes and flags, the
//! size limit and truncation, and the question's spelling.
//!
//! Invariants of every response written here:
//! - it is exactly the bytes the encoder wrote (nothing after the last record), its
//!   counts match its sections, and a request with EDNS gets an OPT record even when
//!   the answer is truncated (room for it is kept while the sections are written);
//! - it fits the limit: the client's EDNS size clamped to [512, `max_udp_payload`] (512
//!   without EDNS) over UDP, 65 535 over TCP. When the answer or authority section does
//!   not fit, both are left out and TC is set; additional records that do not fit are
//!   left out without TC (RFC 2181 9);
//! - an error response to a request we cannot read (FORMERR, NOTIMP) is a bare header,
//!   so it always fits and never echoes what it could not parse;
//! - the question is re-encoded from its parsed form (a compression pointer in it is
//!   not copied) with the request's spelling, and the lookup runs on the lower-cased
//!   name; names in the answers that equal the question, or end in part of it, are
//!   compressed against it (hickory compresses the first 120 names of a message only;
//!   later ones are written out, in lower case). So the response for one spelling
//!   differs from the response for another only in the question's bytes, which is what
//!   lets `udp` store one response for every spelling (0x20) and rewrite only the
//!   question.

use hickory_proto::ProtoError;
use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::rdata::tsig::{TSIG, TsigError};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use super::index::{Outcome, Snapshot, rcode};
use super::wire;

/// Default largest UDP payload sent: DNS Flag Day 2020's 1232 bytes, which avoids IP
/// fragmentation on every common path (Knot and BIND default to it too).
pub const DEFAULT_MAX_UDP_PAYLOAD: u16 = 1232;

/// Size of an OPT record without options.
const OPT_LEN: usize = 11;

const HEADER: usize = 12;

/// How the request arrived; decides the size limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// What the response was, for metrics and for the UDP response store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub qtype: Option<RecordType>,
    pub rcode: ResponseCode,
    /// The request could not be read (counted and logged, rate-limited, by the caller).
    pub malformed: bool,
    /// An answer from the index (not an error about the request, not SERVFAIL): the
    /// same question gets the same bytes until the snapshot changes.
    pub storable: bool,
    /// Where the SOA serial sits in the response, when it carries a SOA: the serial
    /// follows the snapshot, so a stored response is patched there.
    pub serial_at: Option<usize>,
    /// The lookup hit its budget (the response has TC).
    pub limited: bool,
    /// The zone (index) whose SOA `serial_at` points at: serials are per zone.
    pub zone: Option<usize>,
}

impl Reply {
    fn error(rcode: ResponseCode, qtype: Option<RecordType>, malformed: bool) -> Reply {
        Reply {
            qtype,
            rcode,
            malformed,
            storable: false,
            serial_at: None,
            limited: false,
            zone: None,
        }
    }
}

/// The UDP size limit for a request with (or without) EDNS.
pub fn udp_limit(edns_payload: Option<u16>, max_udp_payload: u16) -> usize {
    match edns_payload {
        Some(p) => usize::from(wire::payload_limit(p, max_udp_payload)),
        None => 512,
    }
}

/// Writes into `out` the response to `packet`, answered from `snapshot`; `None` when
/// nothing must be sent (fewer bytes than a header, or a response: no reflection).
pub fn respond(
    snapshot: &Snapshot,
    packet: &[u8],
    transport: Transport,
    max_udp_payload: u16,
    out: &mut Vec<u8>,
) -> Option<Reply> {
    out.clear();
    if packet.len() < HEADER || packet[2] & 0x80 != 0 {
        return None;
    }
    let opcode = (packet[2] >> 3) & 0x0f;
    if opcode != 0 {
        // Nothing after the opcode can be read with certainty: ID and opcode only (no
        // RD, no CD, no question).
        bare_header(out, packet, packet[2] & 0x78, ResponseCode::NotImp);
        return Some(Reply::error(ResponseCode::NotImp, None, false));
    }
    let rd = packet[2] & 0x01;
    let msg = match Message::from_vec(packet) {
        Ok(m) if m.queries.len() == 1 => m,
        _ => {
            bare_header(out, packet, rd, ResponseCode::FormErr);
            return Some(Reply::error(ResponseCode::FormErr, None, true));
        }
    };
    // hickory skips an EDNS option that overruns the OPT data; RFC 6891 6.1.2 makes it
    // a malformed request.
    if msg.edns.is_some() && !wire::edns_options_well_formed(packet) {
        bare_header(out, packet, rd, ResponseCode::FormErr);
        return Some(Reply::error(ResponseCode::FormErr, None, true));
    }
    let q = &msg.queries[0];
    let qtype = Some(q.query_type());
    let limit = match transport {
        Transport::Tcp => usize::from(u16::MAX),
        Transport::Udp => udp_limit(msg.edns.as_ref().map(Edns::max_payload), max_udp_payload),
    };
    let mut edns = msg.edns.as_ref().map(|_| {
        let mut e = Edns::new();
        e.set_max_payload(max_udp_payload.max(wire::MIN_PAYLOAD));
        e.set_version(0);
        e
    });
    let lower = q.name().to_lowercase();
    let mut r = Response {
        packet,
        question: (&lower, q.query_type(), q.query_class()),
        spelled: q.name(),
        authoritative: false,
        truncated: false,
        limit,
    };

    // RFC 8945 5.2.1: a signed request with a key we do not have (we have none) gets
    // NOTAUTH and an unsigned TSIG with error BADKEY.
    if let Some(tsig) = msg
        .additionals
        .iter()
        .find(|r| r.record_type() == RecordType::TSIG)
    {
        let mut record = match &tsig.data {
            RData::TSIG(t) => Record::from_rdata(
                tsig.name.clone(),
                0,
                RData::TSIG(TSIG::new(
                    t.algorithm.clone(),
                    t.time,
                    t.fudge,
                    Vec::new(),
                    t.oid,
                    Some(TsigError::BadKey),
                    Vec::new(),
                )),
            ),
            _ => {
                bare_header(out, packet, rd, ResponseCode::FormErr);
                return Some(Reply::error(ResponseCode::FormErr, qtype, true));
            }
        };
        record.dns_class = DNSClass::ANY;
        let sections = Sections {
            tsig: Some(&record),
            ..Sections::default()
        };
        r.encode(out, ResponseCode::NotAuth, &sections, edns.as_mut());
        return Some(Reply::error(ResponseCode::NotAuth, qtype, false));
    }
    if let Some(e) = &msg.edns
        && e.version() > 0
    {
        r.encode(
            out,
            ResponseCode::BADVERS,
            &Sections::default(),
            edns.as_mut(),
        );
        return Some(Reply::error(ResponseCode::BADVERS, qtype, false));
    }
    if !snapshot.is_loaded() {
        // Before the first complete load we know nothing: an authoritative denial would
        // be cached by resolvers for the SOA minimum (or for ever, etcd being away).
        r.encode(
            out,
            ResponseCode::ServFail,
            &Sections::default(),
            edns.as_mut(),
        );
        return Some(Reply::error(ResponseCode::ServFail, qtype, false));
    }
    let (outcome, ans) = if q.query_class() != DNSClass::IN {
        (Outcome::NotImplemented, Default::default())
    } else {
        snapshot.lookup_within(&lower, q.query_type(), limit)
    };
    let code = rcode(outcome);
    r.authoritative = matches!(
        outcome,
        Outcome::Answer | Outcome::NoData | Outcome::NxDomain
    );
    r.truncated = ans.truncated;
    let sections = Sections {
        answers: &ans.answers,
        authority: &ans.authority,
        additionals: &ans.additionals,
        tsig: None,
    };
    let serial_at = r.encode(out, code, &sections, edns.as_mut());
    Some(Reply {
        qtype,
        rcode: code,
        malformed: false,
        storable: outcome != Outcome::NotImplemented,
        serial_at,
        limited: ans.truncated,
        zone: serial_at.and_then(|_| snapshot.zone_index_for(&lower)),
    })
}

/// A 12-byte response: the request's ID, QR, the given opcode/RD bits, `code`.
fn bare_header(out: &mut Vec<u8>, packet: &[u8], bits: u8, code: ResponseCode) {
    out.clear();
    out.extend_from_slice(&[packet[0], packet[1], 0x80 | bits, code.low()]);
    out.extend_from_slice(&[0; 8]);
}

#[derive(Default)]
struct Sections<'a> {
    answers: &'a [Record],
    authority: &'a [Record],
    additionals: &'a [Record],
    /// Written last, after the OPT (RFC 8945 5.1: the TSIG ends the message).
    tsig: Option<&'a Record>,
}

struct Response<'a> {
    packet: &'a [u8],
    /// Lower-case name, type, class.
    question: (&'a Name, RecordType, DNSClass),
    /// The question's spelling as received.
    spelled: &'a Name,
    authoritative: bool,
    truncated: bool,
    limit: usize,
}

impl Response<'_> {
    /// Encodes header, question, `s` and the OPT record into `out`; returns where the
    /// SOA serial sits, if a SOA was written.
    fn encode(
        &self,
        out: &mut Vec<u8>,
        code: ResponseCode,
        s: &Sections<'_>,
        edns: Option<&mut Edns>,
    ) -> Option<usize> {
        out.clear();
        let mut tc = self.truncated;
        let mut counts = [1u16, 0, 0, 0];
        let mut serial_at = None;
        let opt_room = if edns.is_some() { OPT_LEN } else { 0 };
        let (name_end, end) = {
            let mut enc = BinEncoder::new(out);
            // A header is 12 bytes and the question at most 259: always below 512.
            let header_and_question = (|| -> Result<usize, ProtoError> {
                enc.emit_vec(&[0; HEADER])?;
                self.question.0.emit(&mut enc)?;
                let name_end = enc.offset();
                enc.emit_u16(self.question.1.into())?;
                enc.emit_u16(self.question.2.into())?;
                Ok(name_end)
            })();
            let name_end = header_and_question.unwrap_or(HEADER);
            let after_question = enc.offset();
            enc.set_max_size((self.limit - opt_room).min(usize::from(u16::MAX)) as u16);
            let mut fits = true;
            for (i, section) in [s.answers, s.authority].into_iter().enumerate() {
                for record in section {
                    match emit(&mut enc, record) {
                        Some(()) => {
                            counts[i + 1] += 1;
                            if record.record_type() == RecordType::SOA {
                                // The serial is followed by refresh, retry, expire and
                                // minimum: the last 20 bytes of the record.
                                serial_at = Some(enc.offset() - 20);
                            }
                        }
                        None => {
                            fits = false;
                            break;
                        }
                    }
                }
                if !fits {
                    break;
                }
            }
            if fits {
                for record in s.additionals {
                    if emit(&mut enc, record).is_none() {
                        break;
                    }
                    counts[3] += 1;
                }
            } else {
                enc.set_offset(after_question);
                enc.trim();
                counts = [1, 0, 0, 0];
                serial_at = None;
                tc = true;
            }
            enc.set_max_size(self.limit.min(usize::from(u16::MAX)) as u16);
            if let Some(e) = edns {
                e.set_rcode_high(code.high());
                let at = enc.offset();
                if e.emit(&mut enc).is_ok() {
                    counts[3] += 1;
                } else {
                    enc.set_offset(at);
                    enc.trim();
                }
            }
            if let Some(tsig) = s.tsig
                && emit(&mut enc, tsig).is_some()
            {
                counts[3] += 1;
            }
            (name_end, enc.offset())
        };
        out.truncate(end);
        let flags = 0x80 | if self.authoritative { 0x04 } else { 0 } | if tc { 0x02 } else { 0 };
        out[0] = self.packet[0];
        out[1] = self.packet[1];
        out[2] = flags | (self.packet[2] & 0x01);
        // CD is copied (RFC 6840 5.9); RA, AD and Z are not.
        out[3] = (self.packet[3] & 0x10) | code.low();
        for (i, c) in counts.iter().enumerate() {
            out[4 + 2 * i..6 + 2 * i].copy_from_slice(&c.to_be_bytes());
        }
        // The question's own spelling, over the lower-case name of the same length.
        spell(self.spelled, &mut out[HEADER..name_end]);
        serial_at
    }
}

/// Emits one record, or nothing (and leaves the encoder as it was) when it does not fit.
fn emit(enc: &mut BinEncoder<'_>, record: &Record) -> Option<()> {
    let at = enc.offset();
    match record.emit(enc) {
        Ok(()) => Some(()),
        Err(_) => {
            enc.set_offset(at);
            enc.trim();
            None
        }
    }
}

/// Writes `name` in wire form (uncompressed) over `dst`, when the lengths agree.
pub fn spell(name: &Name, dst: &mut [u8]) {
    let mut i = 0;
    for label in name.iter() {
        let end = i + 1 + label.len();
        if end > dst.len() {
            return;
        }
        dst[i] = label.len() as u8;
        dst[i + 1..end].copy_from_slice(label);
        i = end;
    }
    if i < dst.len() {
        dst[i] = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hickory_proto::op::{Message, Query};

    use super::*;
    use crate::dns::server::index::{IndexConfig, ZoneConfig};
    use crate::dns::skydns::SkydnsValue;

    fn snapshot(n: usize) -> Snapshot {
        let cfg =
            Arc::new(IndexConfig::new("/skydns", &[ZoneConfig::new("example.com")], 300).unwrap());
        let entries = (0..n).map(|i| {
            (
                format!("/skydns/com/example/big/h{i}"),
                SkydnsValue::host(format!("10.6.{}.{}", i / 256, i % 256)),
            )
        });
        Snapshot::from_entries(cfg, entries, 3).0
    }

    fn query(name: &str, payload: Option<u16>) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = 9;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        if let Some(p) = payload {
            let mut e = Edns::new();
            e.set_max_payload(p);
            m.edns = Some(e);
        }
        m.to_vec().unwrap()
    }

    #[test]
    fn what_fits_is_sent_whole_and_what_does_not_is_tc_with_the_opt() {
        let s = snapshot(100);
        let mut out = Vec::new();
        let r = respond(
            &s,
            &query("big.example.com.", Some(4096)),
            Transport::Udp,
            4096,
            &mut out,
        )
        .unwrap();
        let m = Message::from_vec(&out).unwrap();
        assert!(!m.metadata.truncation, "{r:?} {} bytes", out.len());
        assert_eq!(m.answers.len(), 100);
        assert_eq!(m.edns.unwrap().max_payload(), 4096);

        respond(
            &s,
            &query("big.example.com.", Some(4096)),
            Transport::Udp,
            1232,
            &mut out,
        )
        .unwrap();
        assert!(out.len() <= 1232);
        let m = Message::from_vec(&out).unwrap();
        assert!(m.metadata.truncation);
        assert!(m.answers.is_empty());
        assert_eq!(m.edns.unwrap().max_payload(), 1232);
    }
}
