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
//! - a malformed value is skipped (CoreDNS fails the whole query with SERVFAIL), and so
//!   is a value out of range for the wire (TTL above 2^31-1, SRV/MX numbers above 65535,
//!   TXT above [`MAX_TEXT`] bytes) instead of being wrapped or served as is;
//! - a CNAME question reads the name's own entries only (its key, or the ids one level
//!   below it as ExternalDNS writes them), first in key order, and never at the apex.
//!
//! Limits: a lookup is given the size of the response it feeds ([`Snapshot::lookup_within`])
//! and visits at most as many entries as records could fit in it, plus
//! [`VISIT_SLACK`]; CNAMEs are chased at most [`MAX_CHAIN`] deep and [`MAX_CNAMES`] in
//! all, each target once. A lookup that hits a limit says so (`Answer::truncated`) and
//! the response carries TC. So no question (the apex, `*`, a CNAME fan-out) costs more
//! than a bounded walk, whatever the size of the zone.

use std::cell::{Cell, RefCell};
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
pub const MAX_CHAIN: usize = 7;
/// CNAMEs chased in one lookup, all branches together: with fan-out (several CNAMEs per
/// name) the chase would otherwise cost (fan-out)^depth.
pub const MAX_CNAMES: usize = 16;
/// The smallest resource record with a compressed owner name (2 + 10 bytes, empty
/// RDATA): no response of `n` bytes holds more than `n / MIN_RECORD_BYTES` records.
pub const MIN_RECORD_BYTES: usize = 12;
/// Entries a lookup may visit beyond what could fit in the response: room for the
/// entries a lookup reads and drops (wildcard mismatches, other groups, glue lookups).
pub const VISIT_SLACK: usize = 64;
/// Largest TXT value served, in bytes. A TXT record holds at most 65 535 bytes, and
/// a value near that could never be answered; a bound keeps memory per entry small.
pub const MAX_TEXT: usize = 8192;
/// Largest TTL on the wire (RFC 2181 8: the top bit must be zero).
pub const MAX_TTL: u32 = i32::MAX as u32;
/// Bounds of a TTL taken from an etcd lease.
pub const LEASE_TTL_MIN: i64 = 30;
pub const LEASE_TTL_MAX: i64 = 86_400;
/// What a logged value is cut to: a bad value may be a megabyte.
const LOG_CLIP: usize = 120;

/// `s`, cut to 120 bytes (on a char boundary) for logs and errors.
pub fn clip(s: &str) -> String {
    if s.len() <= LOG_CLIP {
        return s.to_string();
    }
    let mut cut = LOG_CLIP;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...({} bytes)", &s[..cut], s.len())
}

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
    #[error("{key}: {field} {value} is out of range")]
    OutOfRange {
        key: String,
        field: &'static str,
        value: String,
    },
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
            IndexError::OutOfRange { .. } => "range",
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
    pub soa: SoaConfig,
}

impl ZoneConfig {
    pub fn new(name: impl Into<String>) -> Self {
        ZoneConfig {
            name: name.into(),
            nameservers: Vec::new(),
            soa: SoaConfig::default(),
        }
    }
}

/// The SOA fields of a zone other than its serial (the snapshot's). The defaults are
/// what zone checkers ask for (expire at least a week, RFC 1912 2.2 suggests 2-4 weeks);
/// `minimum` is also the SOA's TTL, so negative answers are cached that long (RFC 2308).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SoaConfig {
    /// Primary name server; empty = the zone's first name server.
    pub mname: String,
    /// Mailbox of the person responsible; empty = `hostmaster.<zone>`.
    pub rname: String,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
}

impl Default for SoaConfig {
    fn default() -> Self {
        SoaConfig {
            mname: String::new(),
            rname: String::new(),
            refresh: 7200,
            retry: 1800,
            expire: 1_209_600,
            minimum: SOA_MINIMUM,
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
    timers: [u32; 4],
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
            let named = |s: &str, default: Name| -> Result<Name, IndexError> {
                if s.is_empty() {
                    Ok(default)
                } else {
                    parse_name(s).ok_or_else(|| IndexError::BadZone(s.to_string()))
                }
            };
            let t = &z.soa;
            out.push(Zone {
                mname: named(&t.mname, nameservers[0].clone())?,
                rname: named(&t.rname, join("hostmaster", &name))?,
                nameservers,
                timers: [t.refresh, t.retry, t.expire, t.minimum].map(|v| v.min(MAX_TTL)),
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
    /// The key relative to the prefix as written, when it has capitals (keys that
    /// differ only in case name the same DNS name: see [`CaseVariants`]).
    spelled: Option<Box<str>>,
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
            key: clip(key),
            source,
        })?;
        Service::new(cfg, key, v)
    }

    pub fn new(cfg: &IndexConfig, key: &str, value: SkydnsValue) -> Result<Service, IndexError> {
        let relative =
            codec::key_to_path(key, &cfg.prefix).map_err(|source| IndexError::Codec {
                key: clip(key),
                source,
            })?;
        let path = relative.to_ascii_lowercase();
        let spelled = (path != relative).then(|| relative.into());
        let range = |field: &'static str, value: String| IndexError::OutOfRange {
            key: clip(key),
            field,
            value: clip(&value),
        };
        let u16_range = |v: i64| (0..=i64::from(u16::MAX)).contains(&v);
        if value.ttl > MAX_TTL {
            return Err(range("ttl", value.ttl.to_string()));
        }
        if !u16_range(value.priority) {
            return Err(range("priority", value.priority.to_string()));
        }
        if !u16_range(value.weight) {
            return Err(range("weight", value.weight.to_string()));
        }
        if value.port != -1 && !u16_range(value.port) {
            return Err(range("port", value.port.to_string()));
        }
        if value.text.len() > MAX_TEXT {
            return Err(range("text length", value.text.len().to_string()));
        }
        let ip = value.host.parse::<IpAddr>().ok().map(|ip| match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        });
        let host_name = match (&ip, value.host.is_empty()) {
            (None, false) => Some(parse_name(&value.host).ok_or_else(|| IndexError::BadHost {
                key: clip(key),
                host: clip(&value.host),
            })?),
            _ => None,
        };
        Ok(Service {
            path,
            spelled,
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

    /// A value without a TTL of its own gets the seconds left on its key's etcd lease,
    /// clamped to [`LEASE_TTL_MIN`, `LEASE_TTL_MAX`] (CoreDNS's etcd plugin does the
    /// same): the record goes away with the lease, so caches should not keep it longer.
    pub fn with_lease_ttl(mut self, seconds: Option<i64>) -> Service {
        if let Some(left) = seconds
            && self.value.ttl == 0
        {
            self.ttl = left.clamp(LEASE_TTL_MIN, LEASE_TTL_MAX) as u32;
        }
        self
    }

    /// The relative key as written in etcd.
    pub fn spelled_path(&self) -> &str {
        self.spelled.as_deref().unwrap_or(&self.path)
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
    /// The lookup hit a limit: more records may exist than it returned (send TC).
    pub truncated: bool,
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

/// Keys that differ only in case (`CaSe/x`, `case/x`) name one DNS name and so share
/// one index entry: the first of them in key order is served, and removing one serves
/// the next instead of removing the name. Only such collisions are tracked here; the
/// usual lower-case key costs nothing.
#[derive(Debug, Default)]
pub struct CaseVariants(std::collections::HashMap<String, BTreeMap<String, Arc<Service>>>);

impl CaseVariants {
    /// Puts `s` into `entries`, keeping track of another spelling of its key.
    pub fn put(&mut self, entries: &mut Entries, s: Service) {
        let s = Arc::new(s);
        let path = s.path.clone();
        if let Some(variants) = self.0.get_mut(&path) {
            variants.insert(s.spelled_path().to_string(), s);
        } else {
            match entries.get(&path) {
                Some(old) if old.spelled_path() != s.spelled_path() => {
                    let mut variants = BTreeMap::new();
                    variants.insert(old.spelled_path().to_string(), old.clone());
                    variants.insert(s.spelled_path().to_string(), s);
                    self.0.insert(path.clone(), variants);
                }
                _ => {
                    entries.insert(path, s);
                    return;
                }
            }
        }
        if let Some(first) = self.0.get(&path).and_then(|v| v.values().next()) {
            entries.insert(path, first.clone());
        }
    }

    /// Removes the key spelled `relative` (relative to the prefix, as written) from
    /// `entries`; another spelling of it stays served.
    pub fn remove(&mut self, entries: &mut Entries, relative: &str) {
        let path = relative.to_ascii_lowercase();
        if let Some(variants) = self.0.get_mut(&path) {
            variants.remove(relative);
            let next = variants.values().next().cloned();
            if variants.len() <= 1 {
                self.0.remove(&path);
            }
            match next {
                Some(s) => {
                    entries.insert(path, s);
                }
                None => {
                    entries.remove(&path);
                }
            }
            return;
        }
        if entries
            .get(&path)
            .is_some_and(|s| s.spelled_path() == relative)
        {
            entries.remove(&path);
        }
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }
}

/// An immutable index of skydns entries.
#[derive(Debug)]
pub struct Snapshot {
    cfg: Arc<IndexConfig>,
    entries: Entries,
    serial: u32,
    /// SOA serial of each zone, in `cfg.zones` order; empty = every zone has `serial`
    /// (see the transfer block at the end of this file).
    zone_serials: Arc<[u32]>,
    changes: Option<Changes>,
    /// False only for the placeholder served before the first complete load: it knows
    /// nothing, so it must not deny that any name exists.
    loaded: bool,
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
    /// The placeholder before the first load: [`Snapshot::is_loaded`] is false, and the
    /// server answers SERVFAIL from it rather than an authoritative NXDOMAIN that
    /// resolvers would cache.
    pub fn empty(cfg: Arc<IndexConfig>) -> Snapshot {
        Snapshot {
            loaded: false,
            ..Snapshot::new(cfg, Entries::new(), 0)
        }
    }

    /// False for the placeholder served before the first complete load.
    pub fn is_loaded(&self) -> bool {
        self.loaded
    }

    /// `entries` maps relative paths (as [`Service::path`]) to services.
    pub fn new(cfg: Arc<IndexConfig>, entries: Entries, serial: u32) -> Snapshot {
        Snapshot {
            cfg,
            entries,
            serial,
            zone_serials: Arc::from(Vec::new()),
            changes: None,
            loaded: true,
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
        let mut variants = CaseVariants::default();
        let mut errors = Vec::new();
        for (key, value) in entries {
            match Service::new(&cfg, &key, value) {
                Ok(s) => variants.put(&mut map, s),
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
        let [refresh, retry, expire, minimum] = zone.timers;
        Record::from_rdata(
            zone.name.clone(),
            minimum,
            RData::SOA(SOA::new(
                zone.mname.clone(),
                zone.rname.clone(),
                self.serial_of(zone),
                refresh as i32,
                retry as i32,
                expire as i32,
                minimum,
            )),
        )
    }

    /// Answers one question for a response of at most 65 535 bytes (TCP).
    pub fn lookup(&self, qname: &Name, qtype: RecordType) -> (Outcome, Answer) {
        self.lookup_within(qname, qtype, usize::from(u16::MAX))
    }

    /// Answers one question for a response of at most `max_bytes`: the walk stops once
    /// it has visited more entries than records could fit, plus [`VISIT_SLACK`] (see the
    /// module documentation). `qname` keeps the question's spelling for the answers.
    pub fn lookup_within(
        &self,
        qname: &Name,
        qtype: RecordType,
        max_bytes: usize,
    ) -> (Outcome, Answer) {
        let lower = qname.to_lowercase();
        let Some(zone) = self.zone_for(&lower) else {
            return (Outcome::Refused, Answer::default());
        };
        let mut b = Budget::new(max_bytes / MIN_RECORD_BYTES + VISIT_SLACK);
        b.max_bytes = max_bytes;
        let apex = lower == zone.name;
        let mut ans = Answer::default();
        let found: Found<()> = match qtype {
            RecordType::A | RecordType::AAAA => self
                .addresses(&b, zone, qname, qtype, &[])
                .map(|r| ans.answers = r),
            RecordType::TXT => self.txt(&b, zone, qname, &[]).map(|r| ans.answers = r),
            RecordType::CNAME => self.cname(&b, zone, qname).map(|r| ans.answers = r),
            RecordType::PTR => self.ptr(&b, qname).map(|r| ans.answers = r),
            RecordType::MX => self.mx(&b, zone, qname).map(|(r, x)| {
                ans.answers = r;
                ans.additionals = x;
            }),
            RecordType::SRV => self.srv(&b, zone, qname).map(|(r, x)| {
                ans.answers = r;
                ans.additionals = x;
            }),
            RecordType::SOA if apex => {
                ans.answers.push(self.soa(zone));
                Ok(())
            }
            RecordType::NS if apex => {
                let (r, x) = self.ns(&b, zone);
                ans.answers = r;
                ans.additionals = x;
                Ok(())
            }
            RecordType::AXFR | RecordType::IXFR => {
                return (Outcome::NotImplemented, Answer::default());
            }
            RecordType::ANY => self.exists(&b, zone, qname).map(|_| {
                // RFC 8482 section 4.2: one synthesised HINFO instead of everything.
                ans.answers.push(Record::from_rdata(
                    qname.clone(),
                    8482,
                    RData::HINFO(HINFO::new("RFC8482".into(), String::new())),
                ));
            }),
            // Everything else: the name's existence tells NODATA from NXDOMAIN.
            _ => self.exists(&b, zone, qname),
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
        ans.truncated = b.exhausted.get();
        (outcome, ans)
    }

    /// Whether the name has any entry (at or below it): what NODATA needs. One visit.
    fn exists(&self, b: &Budget, zone: &Zone, qname: &Name) -> Found<()> {
        let lower = qname.to_lowercase();
        if lower == zone.name {
            return Ok(());
        }
        // Only the first entry of the walk is needed; a bounded walk is enough.
        let one = Budget::new(1);
        let r = self.services(&one, qname, RecordType::A, false).map(|_| ());
        b.spend(1);
        match r {
            // The first entry may be one `services` drops (no host): it still exists.
            Ok(()) => Ok(()),
            Err(NotFound) if one.exhausted.get() => Ok(()),
            Err(NotFound) => Err(NotFound),
        }
    }

    /// The entries for `name` (lower case, any form): CoreDNS's `Records` + `Group`.
    /// `exact` reads only the name's own key; otherwise its subtree, or the key itself
    /// when the subtree is empty. Wildcard labels (`*`, `any`) match any one label.
    /// Visits at most what the budget has left.
    fn services(
        &self,
        b: &Budget,
        name: &Name,
        qtype: RecordType,
        exact: bool,
    ) -> Found<Vec<&Service>> {
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
            let walk = self
                .entries
                .range::<_, str>((
                    std::ops::Bound::Included(sub.as_str()),
                    std::ops::Bound::Unbounded,
                ))
                .take_while(|(k, _)| k.starts_with(&sub));
            for (_, s) in walk {
                if !b.spend(1) {
                    break;
                }
                found.push(s.as_ref());
            }
        }
        if found.is_empty() {
            if b.exhausted.get() {
                return Err(NotFound);
            }
            match self.entries.get(&search) {
                Some(s) => {
                    b.spend(1);
                    found.push(s)
                }
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
    fn apex_services(
        &self,
        b: &Budget,
        zone: &Zone,
        name: &Name,
        qtype: RecordType,
    ) -> Found<Vec<&Service>> {
        if name.to_lowercase() == zone.name
            && let Ok(s) = self.services(b, &join("apex.dns", &zone.name), qtype, false)
        {
            return Ok(s);
        }
        self.services(b, name, qtype, false)
    }

    /// A or AAAA (by `qtype`), chasing CNAMEs inside the zone.
    fn addresses(
        &self,
        b: &Budget,
        zone: &Zone,
        qname: &Name,
        qtype: RecordType,
        previous: &[Record],
    ) -> Found<Vec<Record>> {
        let services = self.apex_services(b, zone, qname, qtype)?;
        let mut out = Vec::new();
        let mut dup = HashSet::new();
        for s in services {
            // An A record with a compressed owner takes 16 bytes at least.
            if !b.room(out.len(), 16) {
                break;
            }
            match s.host_type() {
                HostType::Cname => {
                    if !dup.insert(&s.value.host) {
                        continue;
                    }
                    if let Some(chain) = self.chase(b, zone, qname, s, previous, &mut out)
                        && let Ok(next) =
                            self.addresses(b, zone, &chain.target, qtype, &chain.previous)
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
    /// `None` when the CNAME is skipped (loop, too long, duplicate, over the budget) or
    /// was pushed as is because its target is outside the zone.
    fn chase(
        &self,
        b: &Budget,
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
        // Each in-zone target is chased once per lookup, and only so many in all: a
        // fan-out of CNAMEs must not multiply the work at every level.
        if !b.chase(&target) {
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

    fn txt(
        &self,
        b: &Budget,
        zone: &Zone,
        qname: &Name,
        previous: &[Record],
    ) -> Found<Vec<Record>> {
        let services = self.services(b, qname, RecordType::TXT, false)?;
        let mut out = Vec::new();
        let mut dup = HashSet::new();
        for s in services {
            if !b.room(out.len(), 13) {
                break;
            }
            match s.host_type() {
                HostType::Cname => {
                    if !dup.insert(&s.value.host) {
                        continue;
                    }
                    if let Some(chain) = self.chase(b, zone, qname, s, previous, &mut out)
                        && let Ok(next) = self.txt(b, zone, &chain.target, &chain.previous)
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

    /// A CNAME question: the name's own entries (its key, else the ids one level below
    /// it), the first in key order, as CoreDNS's exact read; never the subtree (a CNAME
    /// of some deeper name is not this name's) and never the apex (which has SOA and NS,
    /// so cannot be a CNAME).
    fn cname(&self, b: &Budget, zone: &Zone, qname: &Name) -> Found<Vec<Record>> {
        let lower = qname.to_lowercase();
        if lower == zone.name {
            return Ok(Vec::new());
        }
        let path = codec::name_to_path(&lower.to_ascii());
        READS.with(|r| {
            if let Some(reads) = r.borrow_mut().as_mut() {
                reads.push(path.clone());
            }
        });
        let own = match self.entries.get(&path) {
            Some(s) => {
                b.spend(1);
                Some(s.as_ref())
            }
            None => {
                let sub = format!("{path}/");
                let mut first = None;
                let children = self
                    .entries
                    .range::<_, str>((
                        std::ops::Bound::Included(sub.as_str()),
                        std::ops::Bound::Unbounded,
                    ))
                    .take_while(|(k, _)| k.starts_with(&sub));
                for (k, s) in children {
                    if !b.spend(1) {
                        break;
                    }
                    if !k[sub.len()..].contains('/') && !s.value.host.is_empty() {
                        first = Some(s.as_ref());
                        break;
                    }
                }
                first
            }
        };
        let Some(s) = own else {
            return self.exists(b, zone, qname).map(|_| Vec::new());
        };
        Ok(s.host_name
            .iter()
            .map(|target| {
                Record::from_rdata(qname.clone(), s.ttl, RData::CNAME(CNAME(target.clone())))
            })
            .collect())
    }

    fn ptr(&self, b: &Budget, qname: &Name) -> Found<Vec<Record>> {
        // CoreDNS reads only the exact key; an entry below it still makes the name exist.
        let services = match self.services(b, qname, RecordType::PTR, true) {
            Ok(s) => s,
            Err(NotFound) => {
                self.services(b, qname, RecordType::PTR, false)?;
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
    fn glue(&self, b: &Budget, zone: &Zone, target: &Name, extra: &mut Vec<Record>) {
        if let Ok(addr) = self.addresses(b, zone, target, RecordType::A, &[]) {
            extra.extend(addr);
        }
    }

    fn srv(&self, b: &Budget, zone: &Zone, qname: &Name) -> Found<(Vec<Record>, Vec<Record>)> {
        let services = self.services(b, qname, RecordType::SRV, false)?;
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
            // An SRV record: owner pointer, 10, priority/weight/port, a target pointer.
            if !b.room(records.len(), 20) {
                break;
            }
            if s.value.port == -1 {
                continue;
            }
            let mut w1 = 100.0 / weights[&s.priority] as f64;
            w1 *= if s.value.weight == 0 {
                100.0
            } else {
                s.value.weight as f64
            };
            // Both numbers were range-checked when the value was decoded.
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
                        self.glue(b, zone, &target, &mut extra);
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

    fn mx(&self, b: &Budget, zone: &Zone, qname: &Name) -> Found<(Vec<Record>, Vec<Record>)> {
        let services = self.services(b, qname, RecordType::MX, false)?;
        let mut records = Vec::new();
        let mut extra = Vec::new();
        let mut dup: HashSet<(Name, u16, String)> = HashSet::new();
        let mut looked_up = HashSet::new();
        for s in services.into_iter().filter(|s| s.value.mail) {
            if !b.room(records.len(), 16) {
                break;
            }
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
                        self.glue(b, zone, &target, &mut extra);
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
    fn ns(&self, b: &Budget, zone: &Zone) -> (Vec<Record>, Vec<Record>) {
        let mut records = Vec::new();
        let mut extra = Vec::new();
        let mut seen = HashSet::new();
        if let Ok(services) = self.services(b, &join("ns.dns", &zone.name), RecordType::NS, false) {
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

/// What one lookup may still spend (see the module documentation). Running out of any
/// of it marks the lookup `exhausted`, which the response reports with TC.
struct Budget {
    /// The response size the lookup feeds: once the records built so far cannot fit in
    /// it, building more is wasted (the response will be TC either way).
    max_bytes: usize,
    visits: Cell<usize>,
    cnames: Cell<usize>,
    /// In-zone CNAME targets already chased (lower case).
    chased: RefCell<HashSet<Name>>,
    exhausted: Cell<bool>,
}

impl Budget {
    fn new(visits: usize) -> Budget {
        Budget {
            max_bytes: usize::MAX,
            visits: Cell::new(visits),
            cnames: Cell::new(MAX_CNAMES),
            chased: RefCell::new(HashSet::new()),
            exhausted: Cell::new(false),
        }
    }

    /// Takes `n` visits; false (and exhausted) when none are left.
    fn spend(&self, n: usize) -> bool {
        let left = self.visits.get();
        if left < n {
            self.visits.set(0);
            self.exhausted.set(true);
            return false;
        }
        self.visits.set(left - n);
        true
    }

    /// False (and exhausted) once `records` records of at least `min_size` bytes each
    /// cannot fit in the response: a lower bound, so a response this says is full
    /// would have overflowed anyway.
    fn room(&self, records: usize, min_size: usize) -> bool {
        if records.saturating_mul(min_size) > self.max_bytes {
            self.exhausted.set(true);
            return false;
        }
        true
    }

    /// Whether `target` may be chased: not chased before, and CNAMEs left.
    fn chase(&self, target: &Name) -> bool {
        if !self.chased.borrow_mut().insert(target.to_lowercase()) {
            return false;
        }
        let left = self.cnames.get();
        if left == 0 {
            self.exhausted.set(true);
            return false;
        }
        self.cnames.set(left - 1);
        true
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

// What zone transfers (`xfr`, `flat`, `journal`) need from a snapshot: per-zone SOA
// serials and the entries of one zone. Kept apart so that the rest of this file is
// untouched by them.
impl IndexConfig {
    /// The zone (index into [`IndexConfig::zone_names`]) a relative path belongs to:
    /// the most specific one.
    pub fn zone_of_path(&self, path: &str) -> Option<usize> {
        self.zones.iter().position(|z| {
            let zp = codec::name_to_path(&z.name.to_ascii());
            path == zp || (path.starts_with(&zp) && path.as_bytes().get(zp.len()) == Some(&b'/'))
        })
    }

    /// The zones, lower case and fully qualified, most specific first.
    pub fn zone_names(&self) -> impl Iterator<Item = &Name> {
        self.zones.iter().map(|z| &z.name)
    }
}

impl Snapshot {
    /// Sets each zone's SOA serial (in [`IndexConfig::zone_names`] order).
    pub fn with_zone_serials(mut self, serials: Vec<u32>) -> Snapshot {
        self.zone_serials = Arc::from(serials);
        self
    }

    /// The SOA serial of zone `i`.
    pub fn zone_serial(&self, i: usize) -> u32 {
        self.zone_serials.get(i).copied().unwrap_or(self.serial)
    }

    fn serial_of(&self, zone: &Zone) -> u32 {
        match self.cfg.zones.iter().position(|z| std::ptr::eq(z, zone)) {
            Some(i) => self.zone_serial(i),
            None => self.serial,
        }
    }

    /// The index of the zone `name` (lower case) is the apex of.
    pub fn zone_index(&self, name: &Name) -> Option<usize> {
        self.cfg.zones.iter().position(|z| z.name == *name)
    }

    /// The index of the most specific zone holding `name` (lower case).
    pub fn zone_index_for(&self, name: &Name) -> Option<usize> {
        self.cfg.zones.iter().position(|z| z.name.zone_of(name))
    }

    /// The relative paths of the entries of zone `i` (a more specific zone's entries
    /// are left out), in key order.
    pub fn zone_paths(&self, i: usize) -> Vec<&str> {
        let Some(zone) = self.cfg.zones.get(i) else {
            return Vec::new();
        };
        let zp = codec::name_to_path(&zone.name.to_ascii());
        let sub = format!("{zp}/");
        let mut out: Vec<&str> = Vec::new();
        if let Some((k, _)) = self.entries.get_key_value(&zp) {
            out.push(k.as_str());
        }
        out.extend(
            self.entries
                .range::<_, str>((
                    std::ops::Bound::Included(sub.as_str()),
                    std::ops::Bound::Unbounded,
                ))
                .take_while(|(k, _)| k.starts_with(&sub))
                .map(|(k, _)| k.as_str())
                .filter(|k| self.cfg.zone_of_path(k) == Some(i)),
        );
        out
    }

    /// True when zone `i` of `self` and zone `j` of `other` hold the same entries.
    pub fn same_zone_entries(&self, i: usize, other: &Snapshot, j: usize) -> bool {
        let a = self.zone_paths(i);
        let b = other.zone_paths(j);
        a.len() == b.len()
            && a.iter().zip(&b).all(|(x, y)| {
                x == y
                    && self.entries.get(*x).map(|s| &s.value)
                        == other.entries.get(*y).map(|s| &s.value)
                    && self.entries.get(*x).map(|s| s.ttl) == other.entries.get(*y).map(|s| s.ttl)
            })
    }
}
