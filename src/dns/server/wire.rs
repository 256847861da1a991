//! Just enough of the DNS wire format to answer a repeated UDP question from a stored
//! response: recognise a plain query (one lower-case question, at most an OPT record),
//! derive the key that determines its answer, and patch a stored response with the
//! request's ID and flags. Everything else takes the full path (`handler`).
//!
//! What a response depends on, and so what the key holds: the question name, its type
//! and class, and whether the request carries EDNS and with what payload size (the
//! response's OPT and its truncation limit). What the response copies from the request
//! is patched: the ID, the RD and CD flags, and the question name's spelling (`udp`'s
//! tests and the fuzz target check the bytes against the full path). The key holds the
//! name in lower case, so every spelling (resolvers that randomise case, 0x20) shares
//! one stored response: `answer` compresses every answer name against the question, so
//! the spelling lives in the question's bytes only.
//!
//! Also here, because it needs the raw bytes: whether the OPT record's options fit its
//! data ([`edns_options_well_formed`]), which hickory does not check.

/// Largest key: a 255-byte name plus type, class and payload size.
pub const MAX_KEY: usize = 255 + 6;

const HEADER: usize = 12;
const OPT: u16 = 41;

/// Smallest EDNS payload size honoured (RFC 6891: below 512 is treated as 512); the
/// handler clamps with it too, so the key and the response agree.
pub const MIN_PAYLOAD: u16 = 512;

/// The payload sizes a response limit is rounded down to (with the server's own
/// maximum): the sizes resolvers advertise in practice. A client's EDNS size only sets
/// how much it can take, so answering within a smaller bucket is allowed (RFC 6891
/// section 6.2.5), and it keeps the number of distinct stored responses per question to
/// a handful: an attacker walking every size from 512 to 1232 would otherwise force 721
/// full-path answers per question.
const PAYLOAD_BUCKETS: [u16; 5] = [512, 1024, 1232, 1400, 4096];

/// The response size limit for a request's EDNS payload size `size`: at least 512, at
/// most `max_payload`, rounded down to a bucket. The key and the handler both use it.
pub fn payload_limit(size: u16, max_payload: u16) -> u16 {
    let max = max_payload.max(MIN_PAYLOAD);
    if size >= max {
        return max;
    }
    PAYLOAD_BUCKETS
        .iter()
        .copied()
        .filter(|b| *b <= size)
        .max()
        .unwrap_or(MIN_PAYLOAD)
}

/// A plain query: its cache key and where its question name ends.
#[derive(Debug)]
pub struct Query {
    key: [u8; MAX_KEY],
    key_len: usize,
    /// Offset just past the question name (the name is `packet[12..name_end]`).
    pub name_end: usize,
    pub qtype: u16,
}

impl Query {
    pub fn key(&self) -> &[u8] {
        &self.key[..self.key_len]
    }
}

fn u16_at(p: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*p.get(i)?, *p.get(i + 1)?]))
}

/// Recognises a query this module can answer from a stored response: QR=0, opcode
/// QUERY, one question with an uncompressed name, no answer or authority records, and
/// either nothing more or one well-formed OPT record of EDNS version 0 ending the
/// packet. `max_payload` is the server's own largest UDP payload (the clamp's top).
pub fn parse_query(packet: &[u8], max_payload: u16) -> Option<Query> {
    if packet.len() < HEADER + 5 {
        return None;
    }
    let (flags_hi, counts) = (packet[2], &packet[4..HEADER]);
    if flags_hi & 0x80 != 0 || (flags_hi >> 3) & 0x0f != 0 {
        return None;
    }
    let qd = u16::from_be_bytes([counts[0], counts[1]]);
    let an = u16::from_be_bytes([counts[2], counts[3]]);
    let ns = u16::from_be_bytes([counts[4], counts[5]]);
    let ar = u16::from_be_bytes([counts[6], counts[7]]);
    if qd != 1 || an != 0 || ns != 0 || ar > 1 {
        return None;
    }
    let mut key = [0u8; MAX_KEY];
    let mut i = HEADER;
    loop {
        let len = *packet.get(i)? as usize;
        if len & 0xc0 != 0 {
            return None;
        }
        let label = packet.get(i..i + 1 + len)?;
        if i + 1 + len - HEADER > 255 {
            return None;
        }
        let at = i - HEADER;
        key[at..at + label.len()].copy_from_slice(label);
        key[at + 1..at + label.len()].make_ascii_lowercase();
        i += 1 + len;
        if len == 0 {
            break;
        }
    }
    let name_end = i;
    let qtype = u16_at(packet, i)?;
    let qclass = u16_at(packet, i + 2)?;
    i += 4;
    let payload = if ar == 0 {
        0
    } else {
        // OPT: root name, type 41, class = payload size, TTL = ext-rcode, version,
        // flags; then RDATA of well-formed options.
        if packet.get(i)? != &0 || u16_at(packet, i + 1)? != OPT {
            return None;
        }
        let size = u16_at(packet, i + 3)?;
        let version = *packet.get(i + 6)?;
        let rdlen = u16_at(packet, i + 9)? as usize;
        if version != 0 {
            return None;
        }
        i += 11;
        let end = i + rdlen;
        while i < end {
            let olen = u16_at(packet, i + 2)? as usize;
            i += 4 + olen;
        }
        if i != end {
            return None;
        }
        payload_limit(size, max_payload)
    };
    if i != packet.len() {
        return None;
    }
    let mut n = name_end - HEADER;
    for v in [qtype, qclass, payload] {
        key[n..n + 2].copy_from_slice(&v.to_be_bytes());
        n += 2;
    }
    Some(Query {
        key,
        key_len: n,
        name_end,
        qtype,
    })
}

/// Whether `response` (to `request`, whose parsed form is `query`) can answer every
/// request with the same key after [`patch`]: one question at offset 12, the same name
/// but for case.
pub fn reusable(request: &[u8], query: &Query, response: &[u8]) -> bool {
    response.len() >= query.name_end
        && u16_at(response, 4) == Some(1)
        && response[HEADER..query.name_end].eq_ignore_ascii_case(&request[HEADER..query.name_end])
}

/// Writes into `out` the stored `response` adapted to `request` (parsed as `query`):
/// its ID, its RD and CD flags and its question's spelling.
pub fn patch(response: &[u8], request: &[u8], query: &Query, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(response);
    out[0] = request[0];
    out[1] = request[1];
    out[2] = (out[2] & !0x01) | (request[2] & 0x01);
    out[3] = (out[3] & !0x10) | (request[3] & 0x10);
    out[HEADER..query.name_end].copy_from_slice(&request[HEADER..query.name_end]);
}

/// Cuts `response` down to its header and question, with TC set and no records (what
/// rate limiting "slips" instead of a dropped answer). False when it has no question
/// to keep.
pub fn truncate_to_question(response: &mut Vec<u8>) -> bool {
    if u16_at(response, 4) != Some(1) {
        return false;
    }
    let Some(end) = skip_name(response, HEADER).map(|i| i + 4) else {
        return false;
    };
    if end > response.len() {
        return false;
    }
    response.truncate(end);
    response[2] |= 0x02;
    response[6..HEADER].fill(0);
    true
}

/// Skips a (possibly compressed) name at `i`; the offset after it.
fn skip_name(p: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let len = *p.get(i)? as usize;
        match len & 0xc0 {
            0 if len == 0 => return Some(i + 1),
            0 => i += 1 + len,
            0xc0 => return Some(i + 2),
            _ => return None,
        }
    }
}

/// Whether every OPT record's options fit its RDATA exactly (RFC 6891 6.1.2); false
/// also when the message cannot be walked.
pub fn edns_options_well_formed(p: &[u8]) -> bool {
    let walk = || -> Option<bool> {
        let count = |at: usize| u16_at(p, at).map(usize::from);
        let qd = count(4)?;
        let records = count(6)? + count(8)? + count(10)?;
        let mut i = HEADER;
        for _ in 0..qd {
            i = skip_name(p, i)? + 4;
        }
        for _ in 0..records {
            i = skip_name(p, i)?;
            let rtype = u16_at(p, i)?;
            let rdlen = u16_at(p, i + 8)? as usize;
            i += 10;
            let end = i + rdlen;
            if end > p.len() {
                return None;
            }
            if rtype == OPT {
                let mut o = i;
                while o < end {
                    o += 4 + u16_at(p, o + 2)? as usize;
                }
                if o != end {
                    return Some(false);
                }
            }
            i = end;
        }
        Some(true)
    };
    walk().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for `name` (dotted, no trailing dot) of `qtype`, class IN, with an OPT
    /// record of `payload` when given.
    fn query(id: u16, name: &str, qtype: u16, opt: Option<(u16, u8, &[u8])>) -> Vec<u8> {
        let mut p = id.to_be_bytes().to_vec();
        p.extend([0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(opt.is_some())]);
        for l in name.split('.') {
            p.push(l.len() as u8);
            p.extend(l.as_bytes());
        }
        p.push(0);
        p.extend(qtype.to_be_bytes());
        p.extend(1u16.to_be_bytes());
        if let Some((size, version, rdata)) = opt {
            p.push(0);
            p.extend(OPT.to_be_bytes());
            p.extend(size.to_be_bytes());
            p.extend([0, version, 0, 0]);
            p.extend((rdata.len() as u16).to_be_bytes());
            p.extend(rdata);
        }
        p
    }

    #[test]
    fn the_key_ignores_id_and_flags() {
        let a = query(1, "web.example.com", 1, None);
        let mut b = query(2, "web.example.com", 1, None);
        b[2] = 0x00; // RD off
        b[3] = 0x30; // AD and CD on
        let (qa, qb) = (
            parse_query(&a, 4096).unwrap(),
            parse_query(&b, 4096).unwrap(),
        );
        assert_eq!(qa.key(), qb.key());
        assert_eq!(qa.name_end, 12 + 17);
        assert_eq!(qa.qtype, 1);
        assert_eq!(
            parse_query(&query(1, "WeB.example.COM", 1, None), 4096)
                .unwrap()
                .key(),
            qa.key(),
            "every spelling shares the lower-case key"
        );
        assert!(parse_query(&query(1, "_http._tcp.x-1.example", 33, None), 4096).is_some());
    }

    #[test]
    fn the_key_tells_types_classes_and_payloads_apart() {
        let base = parse_query(&query(1, "a.example", 1, None), 4096).unwrap();
        let aaaa = parse_query(&query(1, "a.example", 28, None), 4096).unwrap();
        let edns = parse_query(&query(1, "a.example", 1, Some((1232, 0, &[]))), 4096).unwrap();
        let edns_big = parse_query(&query(1, "a.example", 1, Some((8192, 0, &[]))), 4096).unwrap();
        let edns_4096 = parse_query(&query(1, "a.example", 1, Some((4096, 0, &[]))), 4096).unwrap();
        let edns_tiny = parse_query(&query(1, "a.example", 1, Some((100, 0, &[]))), 4096).unwrap();
        let edns_512 = parse_query(&query(1, "a.example", 1, Some((512, 0, &[]))), 4096).unwrap();
        let mut chaos = query(1, "a.example", 1, None);
        let n = chaos.len();
        chaos[n - 1] = 3;
        let chaos = parse_query(&chaos, 4096).unwrap();
        let distinct = [
            base.key(),
            aaaa.key(),
            edns.key(),
            edns_4096.key(),
            edns_512.key(),
            chaos.key(),
        ];
        for (i, a) in distinct.iter().enumerate() {
            for b in &distinct[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // The payload size is clamped as the handler clamps it.
        assert_eq!(edns_big.key(), edns_4096.key());
        assert_eq!(edns_tiny.key(), edns_512.key());
        // ... and rounded down to a bucket: 1300 shares 1232's stored response.
        let edns_1300 = parse_query(&query(1, "a.example", 1, Some((1300, 0, &[]))), 4096).unwrap();
        assert_eq!(edns_1300.key(), edns.key());
    }

    #[test]
    fn payload_limits_round_down_to_a_few_buckets() {
        assert_eq!(payload_limit(100, 1232), 512);
        assert_eq!(payload_limit(512, 1232), 512);
        assert_eq!(payload_limit(1023, 1232), 512);
        assert_eq!(payload_limit(1100, 1232), 1024);
        assert_eq!(payload_limit(1232, 1232), 1232);
        assert_eq!(payload_limit(4096, 1232), 1232);
        assert_eq!(payload_limit(1500, 4096), 1400);
        assert_eq!(payload_limit(65000, 4096), 4096);
        assert_eq!(
            payload_limit(3000, 3000),
            3000,
            "the server's own maximum is a bucket"
        );
        assert_eq!(payload_limit(2999, 3000), 1400);
        let distinct: std::collections::BTreeSet<u16> =
            (512..=u16::MAX).map(|s| payload_limit(s, 1232)).collect();
        assert_eq!(distinct.len(), 3, "{distinct:?}");
    }

    #[test]
    fn only_plain_queries_are_recognised() {
        let ok = query(1, "a.example", 1, None);
        assert!(parse_query(&ok, 4096).is_some());
        let mut response = ok.clone();
        response[2] |= 0x80;
        assert!(parse_query(&response, 4096).is_none(), "QR=1");
        let mut notify = ok.clone();
        notify[2] |= 4 << 3;
        assert!(parse_query(&notify, 4096).is_none(), "opcode NOTIFY");
        let mut two = ok.clone();
        two[5] = 2;
        assert!(parse_query(&two, 4096).is_none(), "two questions");
        let mut trailing = ok.clone();
        trailing.push(0);
        assert!(parse_query(&trailing, 4096).is_none(), "trailing bytes");
        assert!(
            parse_query(&ok[..ok.len() - 1], 4096).is_none(),
            "truncated"
        );
        let mut pointer = ok.clone();
        pointer[12] = 0xc0;
        assert!(parse_query(&pointer, 4096).is_none(), "compressed name");
        let v1 = query(1, "a.example", 1, Some((1232, 1, &[])));
        assert!(parse_query(&v1, 4096).is_none(), "EDNS version 1");
        let cookie = query(
            1,
            "a.example",
            1,
            Some((1232, 0, &[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8])),
        );
        assert!(parse_query(&cookie, 4096).is_some(), "a well-formed option");
        let bad_option = query(1, "a.example", 1, Some((1232, 0, &[0, 10, 0, 9, 1, 2, 3])));
        assert!(
            parse_query(&bad_option, 4096).is_none(),
            "an option overrunning the RDATA"
        );
        let long = ["a"; 128].join(".");
        assert!(
            parse_query(&query(1, &long, 1, None), 4096).is_none(),
            "name over 255 bytes"
        );
        assert!(parse_query(&[0; 16], 4096).is_none());
    }

    #[test]
    fn options_overrunning_the_opt_data_are_found() {
        let ok = query(1, "a.example", 1, Some((1232, 0, &[0, 10, 0, 2, 1, 2])));
        assert!(edns_options_well_formed(&ok));
        assert!(edns_options_well_formed(&query(1, "a.example", 1, None)));
        let over = query(1, "a.example", 1, Some((1232, 0, &[0, 10, 0, 9, 1, 2, 3])));
        assert!(!edns_options_well_formed(&over));
        let short = query(1, "a.example", 1, Some((1232, 0, &[0, 10, 0])));
        assert!(!edns_options_well_formed(&short));
    }

    #[test]
    fn a_patched_response_takes_the_requests_id_and_flags() {
        let first = query(7, "web.example.com", 1, None);
        let q1 = parse_query(&first, 4096).unwrap();
        // A response: the request's bytes with QR/AA set, RD and CD cleared, one answer.
        let mut stored = first.clone();
        stored[2] = 0x84;
        stored[3] = 0x00;
        stored.extend([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1]);
        stored[7] = 1;
        assert!(reusable(&first, &q1, &stored));

        let mut second = query(0xbeef, "web.example.com", 1, None);
        second[3] |= 0x10; // CD
        let mut out = Vec::new();
        let q2 = parse_query(&second, 4096).unwrap();
        patch(&stored, &second, &q2, &mut out);
        assert_eq!(&out[0..2], &[0xbe, 0xef]);
        assert_eq!(out[2], 0x85, "QR and AA kept, RD from the request");
        assert_eq!(out[3], 0x10, "CD from the request");
        assert_eq!(&out[4..], &stored[4..]);

        let spelled = query(3, "WEB.example.com", 1, None);
        let q3 = parse_query(&spelled, 4096).unwrap();
        assert!(reusable(&spelled, &q3, &stored));
        patch(&stored, &spelled, &q3, &mut out);
        assert_eq!(&out[12..q3.name_end], &spelled[12..q3.name_end]);
        assert_eq!(&out[q3.name_end..], &stored[q3.name_end..]);

        let other = query(1, "wed.example.com", 1, None);
        assert!(!reusable(
            &other,
            &parse_query(&other, 4096).unwrap(),
            &stored
        ));
    }
}
