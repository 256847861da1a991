//! The DNS index: an immutable [`Snapshot`] of the skydns entries under one prefix, and
//! the lookups that answer a question from it with CoreDNS etcd-plugin semantics. Pure:
//! no etcd, no sockets, no clock.
//!
//! Invariants: a snapshot never changes once built; writers build a new one and swap it
//! in (see `feed`), so a reader sees either the old or the new index, never half of an
//! update. Keys are stored relative to the prefix and lower-cased (`com/example/www/id`),
//! so name matching is case-insensitive; answers carry the question's spelling.
//!
//! Semantics follow `plugin/etcd` + `plugin/backend_lookup.go` of CoreDNS (subtree
//! lookups, `dns/apex`, `ns.dns`, TargetStrip, groups, CNAME chasing inside the zone,
//! default TTL 300 and priority 10, weights shared out per priority). Deliberate
//! differences, each because an authoritative server must not do otherwise (see
//! `docs/dns-server.md`):
//! - the zone apex always exists (NODATA, never NXDOMAIN) and has SOA and NS records;
//!   NS are synthesised from the configured name servers when `ns.dns.<zone>` is empty;
//! - a SOA question below the apex gets NODATA/NXDOMAIN, not the zone's SOA;
//! - a CNAME question looks at the subtree like the other types (CoreDNS reads only the
//!   exact key, which answers NXDOMAIN for every name ExternalDNS writes);
//! - a CNAME pointing out of the zone is returned as is (no recursion);
//! - ANY gets the RFC 8482 HINFO answer;
//! - a malformed value is skipped (CoreDNS fails the whole query with SERVFAIL).

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, HINFO, MX, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use thiserror::Error;

use crate::dns::skydns::codec::{self, SkydnsValue};

/// TTL of a record whose value has none (CoreDNS's etcd plugin: 300).
pub const DEFAULT_TTL: u32 = 300;
/// SRV priority / MX preference of a record whose value has none (CoreDNS: 10).
pub const DEFAULT_PRIORITY: i64 = 10;
/// SOA minimum and the TTL of the SOA (CoreDNS: `min(300, MinTTL = 30)`). Negative
/// answers are cached for this long.
pub const SOA_MINIMUM: u32 = 30;
/// Longest CNAME chain followed inside a zone (CoreDNS stops after 8 records).
const MAX_CHAIN: usize = 7;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum IndexError {
    #[error("{key}: {source}")]
    Codec {
        key: String,
        #[source]
        source: codec::CodecError,
    },
    #[error("{key}: host {host:?} is neither an IP address nor a domain name")]
    BadHost { key: String, host: String },
    #[error("zone {0:?} is not a valid domain name")]
    BadZone(String),
}

impl IndexError {
    /// The metric label of this error.
    pub fn reason(&self) -> &'static str {
        match self {
            IndexError::Codec {
                source: codec::CodecError::Malformed(_),
                ..
            } => "json",
            IndexError::Codec { .. } => "outside_prefix",
            IndexError::BadHost { .. } => "host",
            IndexError::BadZone(_) => "zone",
        }
    }
}

/// One zone the server is authoritative for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneConfig {
    /// e.g. `example.com`
    pub name: String,
    /// NS names used when `ns.dns.<zone>` holds nothing; empty = `ns.dns.<zone>`.
    pub nameservers: Vec<String>,
}

impl ZoneConfig {
    pub fn new(name: impl Into<String>) -> Self {
        ZoneConfig {
            name: name.into(),
            nameservers: Vec::new(),
        }
    }
}

/// What does not change between snapshots: the prefix, the zones and the default TTL.
#[derive(Debug)]
pub struct IndexConfig {
    prefix: String,
    zones: Vec<Zone>,
    default_ttl: u32,
}

#[derive(Debug)]
struct Zone {
    /// Lower-case, fully qualified.
    name: Name,
    mname: Name,
    rname: Name,
    nameservers: Vec<Name>,
}

impl IndexConfig {
    pub fn new(prefix: &str, zones: &[ZoneConfig], default_ttl: u32) -> Result<Self, IndexError> {
        let mut out = Vec::new();
        for z in zones {
            let name = parse_name(&z.name)
                .ok_or_else(|| IndexError::BadZone(z.name.clone()))?
                .to_lowercase();
            let mut nameservers = z
                .nameservers
                .iter()
                .map(|n| parse_name(n).ok_or_else(|| IndexError::BadZone(n.clone())))
                .collect::<Result<Vec<_>, _>>()?;
            if nameservers.is_empty() {
                nameservers.push(join("ns.dns", &name));
            }
            out.push(Zone {
                mname: nameservers[0].clone(),
                rname: join("hostmaster", &name),
                nameservers,
                name,
            });
        }
        // Longest zone first, so that the first match is the most specific.
        out.sort_by_key(|z| std::cmp::Reverse(z.name.num_labels()));
        Ok(IndexConfig {
            prefix: codec::normalize_prefix(prefix),
            zones: out,
            default_ttl,
        })
    }

    pub fn default_ttl(&self) -> u32 {
        self.default_ttl
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

fn parse_name(s: &str) -> Option<Name> {
    let mut n = Name::from_ascii(s).ok()?;
    n.set_fqdn(true);
    Some(n)
}

fn join(label: &str, zone: &Name) -> Name {
    Name::from_ascii(label)
        .and_then(|l| l.append_domain(zone))
        .expect("a short label under a valid zone is a valid name")
}

/// One decoded skydns record in the index.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// Key relative to the prefix, lower-cased: `com/example/www/1a2b3c4d`.
    path: String,
    value: SkydnsValue,
    ttl: u32,
    priority: i64,
    ip: Option<IpAddr>,
    host_name: Option<Name>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HostType {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname,
    Txt,
}

impl Service {
    /// Decodes one etcd entry. `key` is the full key; keys outside the prefix are errors.
    pub fn decode(cfg: &IndexConfig, key: &str, value: &[u8]) -> Result<Service, IndexError> {
        let v = SkydnsValue::decode(value).map_err(|source| IndexError::Codec {
            key: key.into(),
            source,
        })?;
        Service::new(cfg, key, v)
    }

    pub fn new(cfg: &IndexConfig, key: &str, value: SkydnsValue) -> Result<Service, IndexError> {
        let path = codec::key_to_path(key, &cfg.prefix)
            .map_err(|source| IndexError::Codec {
                key: key.into(),
                source,
            })?
            .to_ascii_lowercase();
        let ip = value.host.parse::<IpAddr>().ok().map(|ip| match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        });
        let host_name = match (&ip, value.host.is_empty()) {
            (None, false) => Some(parse_name(&value.host).ok_or_else(|| IndexError::BadHost {
                key: key.into(),
                host: value.host.clone(),
            })?),
            _ => None,
        };
        Ok(Service {
            path,
            ttl: if value.ttl == 0 {
                cfg.default_ttl
            } else {
                value.ttl
            },
            priority: if value.priority == 0 {
                DEFAULT_PRIORITY
            } else {
                value.priority
            },
            value,
            ip,
            host_name,
        })
    }

    /// The relative path this service is indexed under.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// CoreDNS's `HostType`.
    fn host_type(&self) -> HostType {
        match self.ip {
            Some(IpAddr::V4(v4)) => HostType::A(v4),
            Some(IpAddr::V6(v6)) => HostType::Aaaa(v6),
            None if self.value.text.is_empty() => HostType::Cname,
            None => HostType::Txt,
        }
    }

    fn depth(&self) -> usize {
        self.path.matches('/').count()
    }

    /// The name of the key with `targetstrip` labels removed (SRV/MX/NS targets for
    /// services whose host is an address).
    fn key_target(&self) -> Name {
        let name = codec::path_to_name(&self.path);
        let stripped = target_strip(&name, self.value.targetstrip);
        parse_name(stripped).unwrap_or_else(Name::root)
    }

    fn host_target(&self) -> Option<Name> {
        let host = self.host_name.as_ref()?;
        if self.value.targetstrip > 0 {
            parse_name(target_strip(&host.to_ascii(), self.value.targetstrip))
        } else {
            Some(host.clone())
        }
    }
}

/// CoreDNS's `targetStrip`: drops `n` labels from the left; overshooting keeps the name.
fn target_strip(name: &str, n: i64) -> &str {
    let mut rest = name;
    for _ in 0..n.max(0) {
        match rest.split_once('.') {
            Some((_, r)) if !r.is_empty() => rest = r,
            _ => return name,
        }
    }
    rest
}

/// The outcome of a lookup; [`rcode`] is the one place it becomes a response code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Records in the answer section.
    Answer,
    /// The name exists, no records of that type (SOA in the authority section).
    NoData,
    /// The name does not exist (SOA in the authority section).
    NxDomain,
    /// Not in any of our zones.
    Refused,
    /// A question we do not serve (class other than IN, zone transfers).
    NotImplemented,
}

pub fn rcode(outcome: Outcome) -> ResponseCode {
    match outcome {
        Outcome::Answer | Outcome::NoData => ResponseCode::NoError,
        Outcome::NxDomain => ResponseCode::NXDomain,
        Outcome::Refused => ResponseCode::Refused,
        Outcome::NotImplemented => ResponseCode::NotImp,
    }
}

/// The sections of a response.
#[derive(Debug, Default)]
pub struct Answer {
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub additionals: Vec<Record>,
}

/// The name has no entry at all (CoreDNS's `errKeyNotFound`).
#[derive(Debug)]
struct NotFound;

type Found<T> = Result<T, NotFound>;

/// What changed between two snapshots: the entry paths put or deleted since the
/// snapshot of serial `since`. Lets the UDP response store keep every stored answer
/// that read none of them.
#[derive(Debug)]
pub struct Changes {
    pub since: u32,
    pub paths: Vec<String>,
}

/// Entries by relative path. A persistent map: the feed's copy and every snapshot share
/// their nodes, so a change costs O(log n) and a new snapshot is a pointer copy, not a
/// copy of every entry (which took milliseconds per update at 50 000 entries).
pub type Entries = imbl::OrdMap<String, Arc<Service>>;

/// An immutable index of skydns entries.
#[derive(Debug)]
pub struct Snapshot {
    cfg: Arc<IndexConfig>,
    entries: Entries,
    serial: u32,
    changes: Option<Changes>,
}

thread_local! {
    /// The search paths read by lookups on this thread, while [`trace_reads`] runs.
    static READS: std::cell::RefCell<Option<Vec<String>>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` and returns, beside its result, the search paths every lookup it made read:
/// each is a subtree (and its own key) of the index, so an answer computed by `f` can
/// only change when an entry at or below one of them changes.
pub fn trace_reads<R>(f: impl FnOnce() -> R) -> (R, Vec<String>) {
    READS.with(|r| *r.borrow_mut() = Some(Vec::new()));
    let out = f();
    let reads = READS.with(|r| r.borrow_mut().take()).unwrap_or_default();
    (out, reads)
}

impl Snapshot {
    pub fn empty(cfg: Arc<IndexConfig>) -> Snapshot {
        Snapshot::new(cfg, Entries::new(), 0)
    }

    /// `entries` maps relative paths (as [`Service::path`]) to services.
    pub fn new(cfg: Arc<IndexConfig>, entries: Entries, serial: u32) -> Snapshot {
        Snapshot {
            cfg,
            entries,
            serial,
            changes: None,
        }
    }

    /// Records that this snapshot differs from the one of serial `since` only at
    /// `paths`.
    pub fn with_changes(mut self, since: u32, paths: Vec<String>) -> Snapshot {
        self.changes = Some(Changes { since, paths });
        self
    }

    /// What changed since the previous snapshot, when known.
    pub fn changes(&self) -> Option<&Changes> {
        self.changes.as_ref()
    }

    /// Builds a snapshot from full keys and values; entries that cannot be served are
    /// returned beside it (the rest is served).
    pub fn from_entries(
        cfg: Arc<IndexConfig>,
        entries: impl IntoIterator<Item = (String, SkydnsValue)>,
        serial: u32,
    ) -> (Snapshot, Vec<IndexError>) {
        let mut map = Entries::new();
        let mut errors = Vec::new();
        for (key, value) in entries {
            match Service::new(&cfg, &key, value) {
                Ok(s) => {
                    map.insert(s.path.clone(), Arc::new(s));
                }
                Err(e) => errors.push(e),
            }
        }
        (Snapshot::new(cfg, map, serial), errors)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn serial(&self) -> u32 {
        self.serial
    }

    pub fn config(&self) -> &Arc<IndexConfig> {
        &self.cfg
    }

    fn zone_for(&self, lower: &Name) -> Option<&Zone> {
        self.cfg.zones.iter().find(|z| z.name.zone_of(lower))
    }

    fn soa(&self, zone: &Zone) -> Record {
        Record::from_rdata(
            zone.name.clone(),
            SOA_MINIMUM,
            RData::SOA(SOA::new(
                zone.mname.clone(),
                zone.rname.clone(),
                self.serial,
                7200,
                1800,
                86400,
                SOA_MINIMUM,
            )),
        )
    }

    /// Answers one question. `qname` keeps the question's spelling for the answers.
    pub fn lookup(&self, qname: &Name, qtype: RecordType) -> (Outcome, Answer) {
        let lower = qname.to_lowercase();
        let Some(zone) = self.zone_for(&lower) else {
            return (Outcome::Refused, Answer::default());
        };
        let apex = lower == zone.name;
        let mut ans = Answer::default();
        let found: Found<()> = match qtype {
            RecordType::A | RecordType::AAAA => self
                .addresses(zone, qname, qtype, &[])
                .map(|r| ans.answers = r),
            RecordType::TXT => self.txt(zone, qname, &[]).map(|r| ans.answers = r),
            RecordType::CNAME => self.cname(qname).map(|r| ans.answers = r),
            RecordType::PTR => self.ptr(qname).map(|r| ans.answers = r),
            RecordType::MX => self.mx(zone, qname).map(|(r, x)| {
                ans.answers = r;
                ans.additionals = x;
            }),
            RecordType::SRV => self.srv(zone, qname).map(|(r, x)| {
                ans.answers = r;
                ans.additionals = x;
            }),
            RecordType::SOA if apex => {
                ans.answers.push(self.soa(zone));
                Ok(())
            }
            RecordType::NS if apex => {
                let (r, x) = self.ns(zone);
                ans.answers = r;
                ans.additionals = x;
                Ok(())
            }
            RecordType::AXFR | RecordType::IXFR => {
                return (Outcome::NotImplemented, Answer::default());
            }
            RecordType::ANY => self.addresses(zone, qname, RecordType::A, &[]).map(|_| {
                // RFC 8482 section 4.2: one synthesised HINFO instead of everything.
                ans.answers.push(Record::from_rdata(
                    qname.clone(),
                    8482,
                    RData::HINFO(HINFO::new("RFC8482".into(), String::new())),
                ));
            }),
            // Everything else: a fake A lookup tells NODATA from NXDOMAIN.
            _ => self.addresses(zone, qname, RecordType::A, &[]).map(|_| ()),
        };
        let outcome = match found {
            Err(NotFound) if !apex => Outcome::NxDomain,
            _ if ans.answers.is_empty() => Outcome::NoData,
            _ => Outcome::Answer,
        };
        if outcome != Outcome::Answer {
            ans.answers.clear();
            ans.additionals.clear();
            ans.authority.push(self.soa(zone));
        }
        (outcome, ans)
    }

    /// The entries for `name` (lower case, any form): CoreDNS's `Records` + `Group`.
    /// `exact` reads only the name's own key; otherwise its subtree, or the key itself
    /// when the subtree is empty. Wildcard labels (`*`, `any`) match any one label.
    fn services(&self, name: &Name, qtype: RecordType, exact: bool) -> Found<Vec<&Service>> {
        let ascii = name.to_lowercase().to_ascii();
        let path = codec::name_to_path(&ascii);
        let segments: Vec<&str> = path.split('/').collect();
        let star = segments.iter().position(|s| *s == "*" || *s == "any");
        let search = match star {
            Some(i) => segments[..i].join("/"),
            None => path.clone(),
        };
        READS.with(|r| {
            if let Some(reads) = r.borrow_mut().as_mut() {
                reads.push(search.clone());
            }
        });
        let mut found: Vec<&Service> = Vec::new();
        if !exact {
            let sub = format!("{search}/");
            found.extend(
                self.entries
                    .range::<_, str>((
                        std::ops::Bound::Included(sub.as_str()),
                        std::ops::Bound::Unbounded,
                    ))
                    .take_while(|(k, _)| k.starts_with(&sub))
                    .map(|(_, s)| s.as_ref()),
            );
        }
        if found.is_empty() {
            match self.entries.get(&search) {
                Some(s) => found.push(s),
                None => return Err(NotFound),
            }
        }
        if star.is_some() {
            found.retain(|s| {
                let key: Vec<&str> = s.path.split('/').collect();
                segments.len() <= key.len()
                    && segments
                        .iter()
                        .zip(&key)
                        .all(|(n, k)| *n == "*" || *n == "any" || n == k)
            });
        }
        found.retain(|s| {
            (qtype == RecordType::TXT && !s.value.text.is_empty()) || !s.value.host.is_empty()
        });
        Ok(group(found))
    }

    /// CoreDNS's `checkForApex`: at the apex, `dns/apex` first.
    fn apex_services(&self, zone: &Zone, name: &Name, qtype: RecordType) -> Found<Vec<&Service>> {
        if name.to_lowercase() == zone.name
            && let Ok(s) = self.services(&join("apex.dns", &zone.name), qtype, false)
        {
            return Ok(s);
        }
        self.services(name, qtype, false)
    }

    /// A or AAAA (by `qtype`), chasing CNAMEs inside the zone.
    fn addresses(
        &self,
        zone: &Zone,
        qname: &Name,
        qtype: RecordType,
        previous: &[Record],
    ) -> Found<Vec<Record>> {
        let services = self.apex_services(zone, qname, qtype)?;
        let mut out = Vec::new();
        let mut dup = HashSet::new();
        for s in services {
            match s.host_type() {
                HostType::Cname => {
                    if let Some(chain) = self.chase(zone, qname, s, previous, &mut out)
                        && let Ok(next) =
                            self.addresses(zone, &chain.target, qtype, &chain.previous)
                        && !next.is_empty()
                    {
                        out.push(chain.record);
                        out.extend(next);
                    }
                }
                HostType::A(ip) if qtype == RecordType::A && dup.insert(&s.value.host) => {
                    out.push(Record::from_rdata(qname.clone(), s.ttl, RData::A(A(ip))));
                }
                HostType::Aaaa(ip) if qtype == RecordType::AAAA && dup.insert(&s.value.host) => {
                    out.push(Record::from_rdata(
                        qname.clone(),
                        s.ttl,
                        RData::AAAA(AAAA(ip)),
                    ));
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// The CNAME step shared by A/AAAA/TXT. Returns the in-zone chain to follow, or
    /// `None` when the CNAME is skipped (loop, too long, duplicate) or was pushed as is
    /// because its target is outside the zone.
    fn chase(
        &self,
        zone: &Zone,
        qname: &Name,
        s: &Service,
        previous: &[Record],
        out: &mut Vec<Record>,
    ) -> Option<Chain> {
        let target = s.host_name.clone()?;
        // x CNAME x, and w.x CNAME x (a subtree lookup of x finds w.x again), are loops.
        if qname.zone_of(&target) {
            return None;
        }
        if previous.len() > MAX_CHAIN {
            return None;
        }
        let record = Record::from_rdata(qname.clone(), s.ttl, RData::CNAME(CNAME(target.clone())));
        let duplicate = previous.iter().any(|r| {
            matches!(&r.data, RData::CNAME(c) if r.name.eq_ignore_root(qname) && c.0.eq_ignore_root(&target))
        });
        if duplicate {
            return None;
        }
        if !zone.name.zone_of(&target) {
            out.push(record);
            return None;
        }
        let mut chain = previous.to_vec();
        chain.push(record.clone());
        Some(Chain {
            target,
            record,
            previous: chain,
        })
    }

    fn txt(&self, zone: &Zone, qname: &Name, previous: &[Record]) -> Found<Vec<Record>> {
        let services = self.services(qname, RecordType::TXT, false)?;
        let mut out = Vec::new();
        let mut dup = HashSet::new();
        for s in services {
            match s.host_type() {
                HostType::Cname => {
                    if let Some(chain) = self.chase(zone, qname, s, previous, &mut out)
                        && let Ok(next) = self.txt(zone, &chain.target, &chain.previous)
                        && !next.is_empty()
                    {
                        out.push(chain.record);
                        out.extend(next);
                    }
                }
                HostType::Txt if dup.insert(&s.value.text) => {
                    out.push(Record::from_rdata(
                        qname.clone(),
                        s.ttl,
                        RData::TXT(TXT::new(split255(&s.value.text))),
                    ));
                }
                _ => {}
            }
        }
        Ok(out)
    }

    fn cname(&self, qname: &Name) -> Found<Vec<Record>> {
        let services = self.services(qname, RecordType::CNAME, false)?;
        Ok(services
            .into_iter()
            .find_map(|s| {
                let target = s.host_name.clone()?;
                Some(Record::from_rdata(
                    qname.clone(),
                    s.ttl,
                    RData::CNAME(CNAME(target)),
                ))
            })
            .into_iter()
            .collect())
    }

    fn ptr(&self, qname: &Name) -> Found<Vec<Record>> {
        // CoreDNS reads only the exact key; an entry below it still makes the name exist.
        let services = match self.services(qname, RecordType::PTR, true) {
            Ok(s) => s,
            Err(NotFound) => {
                self.services(qname, RecordType::PTR, false)?;
                Vec::new()
            }
        };
        let mut dup = HashSet::new();
        let mut out = Vec::new();
        for s in services {
            if let Some(target) = &s.host_name
                && dup.insert(&s.value.host)
            {
                out.push(Record::from_rdata(
                    qname.clone(),
                    s.ttl,
                    RData::PTR(PTR(target.clone())),
                ));
            }
        }
        Ok(out)
    }

    /// Glue for an in-zone SRV/MX target: its A records (CoreDNS adds no AAAA here).
    fn glue(&self, zone: &Zone, target: &Name, extra: &mut Vec<Record>) {
        if let Ok(addr) = self.addresses(zone, target, RecordType::A, &[]) {
            extra.extend(addr);
        }
    }

    fn srv(&self, zone: &Zone, qname: &Name) -> Found<(Vec<Record>, Vec<Record>)> {
        let services = self.services(qname, RecordType::SRV, false)?;
        let mut weights: BTreeMap<i64, i64> = BTreeMap::new();
        for s in &services {
            let w = if s.value.weight != 0 {
                s.value.weight
            } else {
                100
            };
            *weights.entry(s.priority).or_insert(0) += w;
        }
        let mut records = Vec::new();
        let mut extra = Vec::new();
        let mut dup: HashSet<(Name, u16, String)> = HashSet::new();
        let mut looked_up = HashSet::new();
        for s in services {
            if s.value.port == -1 {
                continue;
            }
            let mut w1 = 100.0 / weights[&s.priority] as f64;
            w1 *= if s.value.weight == 0 {
                100.0
            } else {
                s.value.weight as f64
            };
            let weight = (w1.floor() as u16).max(1);
            let srv = |target: Name| {
                Record::from_rdata(
                    qname.clone(),
                    s.ttl,
                    RData::SRV(SRV::new(
                        s.priority as u16,
                        weight,
                        s.value.port as u16,
                        target,
                    )),
                )
            };
            match s.host_type() {
                HostType::Cname => {
                    let Some(target) = s.host_target() else {
                        continue;
                    };
                    records.push(srv(target.clone()));
                    if looked_up.insert(target.to_lowercase()) && zone.name.zone_of(&target) {
                        self.glue(zone, &target, &mut extra);
                    }
                }
                HostType::A(_) | HostType::Aaaa(_) => {
                    let target = s.key_target();
                    let port = s.value.port as u16;
                    if dup.insert((target.to_lowercase(), port, String::new())) {
                        records.push(srv(target.clone()));
                    }
                    if dup.insert((target.to_lowercase(), 0, s.value.host.clone())) {
                        extra.push(address(s, &target));
                    }
                }
                HostType::Txt => {}
            }
        }
        Ok((records, extra))
    }

    fn mx(&self, zone: &Zone, qname: &Name) -> Found<(Vec<Record>, Vec<Record>)> {
        let services = self.services(qname, RecordType::MX, false)?;
        let mut records = Vec::new();
        let mut extra = Vec::new();
        let mut dup: HashSet<(Name, u16, String)> = HashSet::new();
        let mut looked_up = HashSet::new();
        for s in services.into_iter().filter(|s| s.value.mail) {
            let mx = |target: Name| {
                Record::from_rdata(
                    qname.clone(),
                    s.ttl,
                    RData::MX(MX::new(s.priority as u16, target)),
                )
            };
            match s.host_type() {
                HostType::Cname => {
                    let Some(target) = s.host_target() else {
                        continue;
                    };
                    records.push(mx(target.clone()));
                    if looked_up.insert(target.to_lowercase()) && zone.name.zone_of(&target) {
                        self.glue(zone, &target, &mut extra);
                    }
                }
                HostType::A(_) | HostType::Aaaa(_) => {
                    let target = s.key_target();
                    if dup.insert((target.to_lowercase(), s.priority as u16, String::new())) {
                        records.push(mx(target.clone()));
                    }
                    if dup.insert((target.to_lowercase(), 0, s.value.host.clone())) {
                        extra.push(address(s, &target));
                    }
                }
                HostType::Txt => {}
            }
        }
        Ok((records, extra))
    }

    /// NS at the apex: `ns.dns.<zone>` entries (address hosts become the key's name plus
    /// glue), else the configured name servers.
    fn ns(&self, zone: &Zone) -> (Vec<Record>, Vec<Record>) {
        let mut records = Vec::new();
        let mut extra = Vec::new();
        let mut seen = HashSet::new();
        if let Ok(services) = self.services(&join("ns.dns", &zone.name), RecordType::NS, false) {
            for s in services {
                let target = match s.ip {
                    Some(_) => {
                        let t = s.key_target();
                        extra.push(address(s, &t));
                        t
                    }
                    None => match s.host_target() {
                        Some(t) => t,
                        None => continue,
                    },
                };
                if seen.insert(target.to_lowercase()) {
                    records.push(Record::from_rdata(
                        zone.name.clone(),
                        s.ttl,
                        RData::NS(NS(target)),
                    ));
                }
            }
        }
        if records.is_empty() {
            for ns in &zone.nameservers {
                records.push(Record::from_rdata(
                    zone.name.clone(),
                    self.cfg.default_ttl,
                    RData::NS(NS(ns.clone())),
                ));
            }
        }
        (records, extra)
    }
}

struct Chain {
    target: Name,
    record: Record,
    previous: Vec<Record>,
}

fn address(s: &Service, name: &Name) -> Record {
    let rdata = match s.ip {
        Some(IpAddr::V4(v4)) => RData::A(A(v4)),
        Some(IpAddr::V6(v6)) => RData::AAAA(AAAA(v6)),
        None => unreachable!("address() is only called for address hosts"),
    };
    Record::from_rdata(name.clone(), s.ttl, rdata)
}

/// CoreDNS's `msg.Group`: the shortest keys with a group decide it; then only services
/// of that group (or of none) are returned, unless keys of that length disagree.
fn group(sx: Vec<&Service>) -> Vec<&Service> {
    let Some(first) = sx.first() else {
        return sx;
    };
    let mut group = first.value.group.as_str();
    let mut slashes = first.depth();
    let lengths: Vec<usize> = sx.iter().map(|s| s.depth()).collect();
    for (s, &x) in sx.iter().zip(&lengths) {
        if x < slashes {
            if s.value.group.is_empty() {
                break;
            }
            slashes = x;
            group = s.value.group.as_str();
        }
    }
    if group.is_empty() {
        return sx;
    }
    let mut ret = Vec::new();
    for (s, &len) in sx.iter().zip(&lengths) {
        if s.value.group.is_empty() {
            ret.push(*s);
            continue;
        }
        if len == slashes && s.value.group != group {
            return sx;
        }
        if s.value.group == group {
            ret.push(*s);
        }
    }
    ret
}

/// CoreDNS's `split255`: TXT data in strings of at most 255 bytes (on char boundaries).
fn split255(s: &str) -> Vec<String> {
    if s.len() < 255 {
        return vec![s.to_string()];
    }
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let mut cut = rest.len().min(255);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push(rest[..cut].to_string());
        rest = &rest[cut..];
    }
    out
}

#[cfg(test)]
mod tests;
