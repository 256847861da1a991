//! The flat zone (pure): what a zone transfer sends, computed from one [`Snapshot`].
//!
//! skydns is a tree whose lookups read subtrees; a zone file is a set of RRsets at
//! names. The mapping (documented in `docs/dns-server.md`, "Zone transfers"):
//! - every key becomes RRsets at its own name, and every name between a key and the
//!   apex gets the RRsets our server answers for it: a subtree answer (`www` holding
//!   `www/1a2b3c4d` and `www/5e6f7a8b`, as the skydns writer lays out one name's
//!   targets) becomes an RRset at `www`, so a secondary answers what we answer;
//! - the record types are the ones the index serves: A, AAAA, TXT, CNAME, MX, SRV, PTR,
//!   each taken from the index's own lookup (so TTL, TargetStrip and weights are ours);
//! - at the apex: the SOA (serial of the zone), the NS the index answers (`ns.dns`
//!   entries, else the configured name servers), and addresses/TXT only from
//!   `apex.dns` entries: CoreDNS's fallback of answering an apex question with every
//!   record of the zone is not copied into the zone;
//! - a CNAME is kept only at a name with no other RRset (RFC 1034 3.6.2, RFC 2181
//!   10.1): where a subtree mixes a CNAME with addresses the addresses win;
//! - SRV records with port 0 (what CoreDNS synthesises for every address entry) are
//!   left out; SRV/MX targets inside the zone are names of the zone with their own
//!   addresses (the glue our server puts in the additional section);
//! - PTR only in reverse zones (`*.arpa`): the index answers PTR for any entry whose
//!   host is a name, which in a forward zone would put a PTR beside every CNAME;
//! - names with a wildcard label (`*`, `any`) are left out: skydns wildcards match
//!   inside a query, which a zone file cannot express the same way;
//! - an RRset whose entries carry different TTLs gets the smallest (RFC 2181 5.2).
//!
//! Cost: one lookup per name and type over the name's subtree, so O(names x depth)
//! visits; a transfer is bounded by the zone's size.

use std::collections::{BTreeMap, BTreeSet};

use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

use super::index::{Outcome, Snapshot};
use crate::dns::skydns::codec;

const TYPES: [RecordType; 7] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::TXT,
    RecordType::MX,
    RecordType::SRV,
    RecordType::PTR,
    RecordType::CNAME,
];

/// The records of zone `zone` (an index into the snapshot's zones), without the SOA:
/// the apex NS first, then every other RRset in canonical-ish (name, type, rdata) order.
/// The zone's SOA is [`soa`].
pub fn zone_records(s: &Snapshot, zone: usize) -> Vec<Record> {
    let Some(apex) = s.config().zone_names().nth(zone).cloned() else {
        return Vec::new();
    };
    let apex_path = codec::name_to_path(&apex.to_ascii());
    let mut names: BTreeSet<String> = BTreeSet::new();
    let mut apex_data = false;
    for path in s.zone_paths(zone) {
        let rest = path.strip_prefix(apex_path.as_str()).unwrap_or("");
        let rest = rest.trim_start_matches('/');
        if rest == "dns/apex" || rest.starts_with("dns/apex/") {
            apex_data = true;
        }
        // The key's own name and each ancestor below the apex.
        let labels: Vec<&str> = rest.split('/').filter(|l| !l.is_empty()).collect();
        if labels.iter().any(|l| *l == "*" || *l == "any") {
            continue;
        }
        for n in 1..=labels.len() {
            names.insert(format!("{apex_path}/{}", labels[..n].join("/")));
        }
    }
    let budget = 64 * (s.len() + 1) + usize::from(u16::MAX);
    let mut out = Vec::new();
    let (outcome, ans) = s.lookup_within(&apex, RecordType::NS, budget);
    if outcome == Outcome::Answer {
        out.extend(
            ans.answers
                .into_iter()
                .filter(|r| r.record_type() == RecordType::NS),
        );
    }
    let reverse = apex.to_ascii().trim_end_matches('.').ends_with("arpa");
    if apex_data {
        out.extend(rrsets_at(s, &apex, budget, true, reverse));
    }
    for path in names {
        let Ok(mut name) = Name::from_ascii(codec::path_to_name(&path)) else {
            continue;
        };
        name.set_fqdn(true);
        out.extend(rrsets_at(s, &name, budget, false, reverse));
    }
    out
}

/// The RRsets our index answers at `name` (see the module documentation).
fn rrsets_at(s: &Snapshot, name: &Name, budget: usize, apex: bool, reverse: bool) -> Vec<Record> {
    let mut sets: BTreeMap<u16, Vec<Record>> = BTreeMap::new();
    for t in TYPES {
        if (apex && t == RecordType::CNAME) || (t == RecordType::PTR && !reverse) {
            continue;
        }
        let (outcome, ans) = s.lookup_within(name, t, budget);
        if outcome != Outcome::Answer {
            continue;
        }
        let mut seen = BTreeSet::new();
        let mut set: Vec<Record> = ans
            .answers
            .into_iter()
            .filter(|r| r.record_type() == t && r.name == *name)
            .filter(|r| !matches!(&r.data, RData::SRV(srv) if srv.port == 0))
            .filter(|r| seen.insert(rdata_bytes(r)))
            .collect();
        if let Some(ttl) = set.iter().map(|r| r.ttl).min() {
            for r in &mut set {
                r.ttl = ttl;
            }
        }
        if !set.is_empty() {
            sets.insert(u16::from(t), set);
        }
    }
    if sets.len() > 1 {
        sets.remove(&u16::from(RecordType::CNAME));
    }
    sets.into_values().flatten().collect()
}

fn rdata_bytes(r: &Record) -> Vec<u8> {
    r.data.to_bytes().unwrap_or_default()
}

/// The zone's SOA as served (serial of the zone).
pub fn soa(s: &Snapshot, zone: usize) -> Option<Record> {
    let apex = s.config().zone_names().nth(zone)?.clone();
    let (_, ans) = s.lookup(&apex, RecordType::SOA);
    ans.answers.into_iter().next()
}

/// A record's identity for diffs: its wire form (owner, type, class, TTL, RDATA).
pub fn record_key(r: &Record) -> Vec<u8> {
    r.to_bytes().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::dns::server::index::{IndexConfig, ZoneConfig};
    use crate::dns::skydns::SkydnsValue;

    pub(crate) fn snapshot(entries: &[(&str, SkydnsValue)]) -> Snapshot {
        let cfg =
            Arc::new(IndexConfig::new("/skydns", &[ZoneConfig::new("example.com")], 300).unwrap());
        let entries = entries.iter().map(|(k, v)| (k.to_string(), v.clone()));
        Snapshot::from_entries(cfg, entries, 7).0
    }

    fn show(records: &[Record]) -> Vec<String> {
        records
            .iter()
            .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
            .collect()
    }

    #[test]
    fn a_name_with_targets_below_it_becomes_one_rrset_at_the_name() {
        let s = snapshot(&[
            ("/skydns/com/example/www/1a", SkydnsValue::host("10.0.0.1")),
            ("/skydns/com/example/www/2b", SkydnsValue::host("10.0.0.2")),
        ]);
        let z = show(&zone_records(&s, 0));
        assert_eq!(z[0], "example.com. NS ns.dns.example.com.");
        assert!(
            z.contains(&"www.example.com. A 10.0.0.1".to_string()),
            "{z:?}"
        );
        assert!(
            z.contains(&"www.example.com. A 10.0.0.2".to_string()),
            "{z:?}"
        );
        assert!(
            z.contains(&"1a.www.example.com. A 10.0.0.1".to_string()),
            "{z:?}"
        );
        // CoreDNS's apex fallback (every address of the zone) is not copied.
        assert!(!z.iter().any(|r| r.starts_with("example.com. A")), "{z:?}");
        // Nor the port-0 SRV records synthesised for address entries.
        assert!(!z.iter().any(|r| r.contains(" SRV ")), "{z:?}");
    }

    #[test]
    fn a_cname_only_stays_where_it_is_alone() {
        let s = snapshot(&[
            (
                "/skydns/com/example/alias/1",
                SkydnsValue::host("www.example.com"),
            ),
            (
                "/skydns/com/example/mixed/1",
                SkydnsValue::host("www.example.com"),
            ),
            ("/skydns/com/example/mixed/2", SkydnsValue::host("10.0.0.9")),
            ("/skydns/com/example/www/1", SkydnsValue::host("10.0.0.1")),
        ]);
        let z = show(&zone_records(&s, 0));
        assert!(
            z.contains(&"alias.example.com. CNAME www.example.com.".to_string()),
            "{z:?}"
        );
        assert!(
            z.contains(&"mixed.example.com. A 10.0.0.9".to_string()),
            "{z:?}"
        );
        assert!(
            !z.iter().any(|r| r.starts_with("mixed.example.com. CNAME")),
            "{z:?}"
        );
    }

    #[test]
    fn apex_data_srv_with_a_port_and_txt_are_kept_and_wildcards_left_out() {
        let mut srv = SkydnsValue::host("10.0.0.5");
        srv.port = 8080;
        let mut txt = SkydnsValue::host("");
        txt.text = "hello".into();
        let s = snapshot(&[
            (
                "/skydns/com/example/dns/apex/1",
                SkydnsValue::host("10.0.0.100"),
            ),
            ("/skydns/com/example/svc/1", srv),
            ("/skydns/com/example/t/1", txt),
            ("/skydns/com/example/w/*", SkydnsValue::host("10.0.0.7")),
        ]);
        let z = show(&zone_records(&s, 0));
        assert!(
            z.contains(&"example.com. A 10.0.0.100".to_string()),
            "{z:?}"
        );
        assert!(
            z.iter()
                .any(|r| r.starts_with("svc.example.com. SRV") && r.contains("8080")),
            "{z:?}"
        );
        assert!(z.contains(&"t.example.com. TXT hello".to_string()), "{z:?}");
        assert!(!z.iter().any(|r| r.contains("10.0.0.7")), "{z:?}");
    }

    #[test]
    fn the_soa_carries_the_zone_serial() {
        let s = snapshot(&[]).with_zone_serials(vec![1234]);
        match soa(&s, 0).unwrap().data {
            RData::SOA(soa) => assert_eq!(soa.serial, 1234),
            other => panic!("{other:?}"),
        }
    }
}
