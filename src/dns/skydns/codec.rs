//! The skydns codec: DNS name <-> etcd key under a prefix, the JSON value CoreDNS's etcd
//! plugin reads (`msg.Service`), and the entries ExternalDNS's coredns provider writes for
//! one endpoint. Pure: no etcd, no clock, no I/O.
//!
//! Layout (see `docs/etcd-layout.md`): `a.b.example.com` under prefix `/skydns` lives at
//! `/skydns/com/example/b/a`, or below it at `/skydns/com/example/b/a/<id>`; a lookup
//! returns the whole subtree. ExternalDNS always writes below the name, at
//! `<prefix>/<reversed name>/<id>` with `"targetstrip":1` so that a synthesised SRV/MX
//! target drops the id label again.
//!
//! ExternalDNS picks `<id>` at random (`%08x` of `rand.Int31()`) and remembers it in an
//! endpoint label. We derive it from the target instead — the FNV-1a 32-bit hash of the
//! target, as 8 lower-case hex digits — so that the same endpoint always maps to the same
//! keys, a rewrite is idempotent, and a removed target's key can be computed without
//! reading etcd. Two targets of one endpoint whose hashes collide are told apart by
//! hashing `target`, a NUL byte and a counter.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::api::multiclusterdns::Endpoint;

/// The prefix CoreDNS's etcd plugin and ExternalDNS use by default.
pub const DEFAULT_PREFIX: &str = "/skydns";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CodecError {
    /// The value is not the JSON object CoreDNS's `msg.Service` decodes.
    #[error("malformed skydns value: {0}")]
    Malformed(String),
    /// The key does not live under the prefix.
    #[error("key {key} is not under prefix {prefix}")]
    OutsidePrefix { key: String, prefix: String },
}

/// One skydns record: CoreDNS's `msg.Service`, field for field and in its JSON order, so
/// that what we write is byte for byte what ExternalDNS writes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SkydnsValue {
    /// An IP (A/AAAA) or a name (CNAME, or the SRV/MX target).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// SRV port; `-1` means "no port" (CoreDNS then leaves the SRV out).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub port: i64,
    /// SRV priority / MX preference; 0 means CoreDNS's default 10.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i64,
    /// SRV weight; 0 means 100 when weights are shared out.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub weight: i64,
    /// TXT data (split into 255-byte strings on the wire).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    /// This record is an MX (priority becomes the preference).
    #[serde(default, skip_serializing_if = "is_false")]
    pub mail: bool,
    /// TTL in seconds; 0 means the server's default (300, as CoreDNS).
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub ttl: u32,
    /// Labels stripped from the left of the key's name when it becomes an SRV/MX/NS target.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub targetstrip: i64,
    /// Services of one group are answered together (see CoreDNS `msg.Group`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}
fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}
fn is_false(v: &bool) -> bool {
    !*v
}

impl SkydnsValue {
    /// Decodes a value as CoreDNS does (unknown fields ignored, e.g. ExternalDNS's
    /// `setIdentifier`). Unlike Go's `encoding/json`, field names are case-sensitive.
    pub fn decode(bytes: &[u8]) -> Result<SkydnsValue, CodecError> {
        // serde would also accept a JSON array for a struct; Go's decoder does not.
        if bytes.trim_ascii_start().first() != Some(&b'{') {
            return Err(CodecError::Malformed("not a JSON object".into()));
        }
        serde_json::from_slice(bytes).map_err(|e| CodecError::Malformed(e.to_string()))
    }

    /// The JSON ExternalDNS's `json.Marshal(&service)` produces for the same fields.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a struct of strings and numbers serialises")
    }

    pub fn host(host: impl Into<String>) -> SkydnsValue {
        SkydnsValue {
            host: host.into(),
            ..Default::default()
        }
    }
}

/// `/skydns`, `skydns`, `/skydns/` all mean the same prefix; returns `/skydns`.
pub fn normalize_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    }
}

/// The labels of a name, without the root, in DNS order.
fn labels(name: &str) -> impl DoubleEndedIterator<Item = &str> {
    name.trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
}

/// The name's labels reversed and joined with `/`: `www.example.com.` -> `com/example/www`.
/// This is the key relative to the prefix (CoreDNS's `msg.Path` without the prefix).
pub fn name_to_path(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, l) in labels(name).rev().enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(l);
    }
    out
}

/// `www.example.com` under `/skydns` -> `/skydns/com/example/www`.
pub fn name_to_key(name: &str, prefix: &str) -> String {
    format!("{}/{}", normalize_prefix(prefix), name_to_path(name))
}

/// The key relative to the prefix (`/skydns/com/example/www` -> `com/example/www`), or an
/// error when the key is not below the prefix.
pub fn key_to_path<'k>(key: &'k str, prefix: &str) -> Result<&'k str, CodecError> {
    let p = normalize_prefix(prefix);
    key.strip_prefix(p.as_str())
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|rest| !rest.is_empty())
        .ok_or_else(|| CodecError::OutsidePrefix {
            key: key.into(),
            prefix: p.clone(),
        })
}

/// A relative path back to a fully qualified name: `com/example/www` -> `www.example.com.`
/// (CoreDNS's `msg.Domain`).
pub fn path_to_name(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 1);
    for l in path.split('/').rev().filter(|l| !l.is_empty()) {
        out.push_str(l);
        out.push('.');
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

/// `/skydns/com/example/www/1a2b3c4d` -> `1a2b3c4d.www.example.com.`
pub fn key_to_name(key: &str, prefix: &str) -> Result<String, CodecError> {
    key_to_path(key, prefix).map(path_to_name)
}

/// FNV-1a, 32 bits: stable across Rust releases and platforms (unlike `DefaultHasher`).
fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The deterministic id label for one target (see the module documentation).
pub fn target_id(target: &str) -> String {
    format!("{:08x}", fnv1a32(target.as_bytes()))
}

fn unique_id(seed: &str, taken: &mut BTreeSet<String>) -> String {
    let mut id = target_id(seed);
    let mut n = 0u32;
    while taken.contains(&id) {
        n += 1;
        id = target_id(&format!("{seed}\0{n}"));
    }
    taken.insert(id.clone());
    id
}

/// The keys and values ExternalDNS's coredns provider writes for this endpoint, with
/// deterministic ids (see the module documentation):
///
/// - `A`, `AAAA`, `CNAME`: one entry per target at `<prefix>/<reversed dnsName>/<id>`,
///   `{"host": target, "text": labels["originalText"], "ttl": recordTTL, "targetstrip": 1}`
///   (ttl left out when 0).
/// - `TXT`: one entry with the first target as `text` (ExternalDNS reads only
///   `targets[0]`), id derived from `"TXT " + text`.
/// - Other types (SRV, MX, NS, PTR, NAPTR): none. ExternalDNS would store the raw target
///   string as a `host`, which CoreDNS then serves as a CNAME to a nonsense name; we leave
///   them out instead.
///
/// Entries come out sorted by key. Duplicate targets are written once.
pub fn endpoint_entries(ep: &Endpoint, prefix: &str) -> Vec<(String, SkydnsValue)> {
    let name = ep.dns_name.trim_end_matches('.');
    if name.is_empty() {
        return Vec::new();
    }
    let ttl = u32::try_from(ep.record_ttl.max(0)).unwrap_or(u32::MAX);
    let mut taken = BTreeSet::new();
    let mut out = Vec::new();
    match ep.record_type.as_str() {
        "A" | "AAAA" | "CNAME" => {
            let text = ep.labels.get("originalText").cloned().unwrap_or_default();
            let targets: BTreeSet<&str> = ep
                .targets
                .iter()
                .map(String::as_str)
                .filter(|t| !t.is_empty())
                .collect();
            for target in targets {
                let id = unique_id(target, &mut taken);
                out.push((
                    name_to_key(&format!("{id}.{name}"), prefix),
                    SkydnsValue {
                        host: target.to_string(),
                        text: text.clone(),
                        ttl,
                        targetstrip: 1,
                        ..Default::default()
                    },
                ));
            }
        }
        "TXT" => {
            if let Some(text) = ep.targets.first() {
                let id = unique_id(&format!("TXT {text}"), &mut taken);
                out.push((
                    name_to_key(&format!("{id}.{name}"), prefix),
                    SkydnsValue {
                        text: text.clone(),
                        ttl,
                        targetstrip: 1,
                        ..Default::default()
                    },
                ));
            }
        }
        _ => {}
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn ep(name: &str, rtype: &str, targets: &[&str], ttl: i64) -> Endpoint {
        Endpoint {
            dns_name: name.into(),
            targets: targets.iter().map(|t| t.to_string()).collect(),
            record_type: rtype.into(),
            record_ttl: ttl,
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn name_maps_to_reversed_key_under_prefix() {
        assert_eq!(
            name_to_key("a.b.example.com", "/skydns"),
            "/skydns/com/example/b/a"
        );
        assert_eq!(
            name_to_key("a.b.example.com.", "skydns/"),
            "/skydns/com/example/b/a"
        );
        assert_eq!(name_to_key("x.org", "/dns/zones"), "/dns/zones/org/x");
    }

    #[test]
    fn key_maps_back_to_fqdn() {
        assert_eq!(
            key_to_name("/skydns/com/example/b/a", "/skydns").unwrap(),
            "a.b.example.com."
        );
        assert_eq!(
            key_to_name("/skydnsx/com", "/skydns"),
            Err(CodecError::OutsidePrefix {
                key: "/skydnsx/com".into(),
                prefix: "/skydns".into()
            })
        );
        assert!(key_to_name("/skydns/", "/skydns").is_err());
    }

    #[test]
    fn name_key_round_trip() {
        for name in [
            "example.com.",
            "a.b.c.d.example.org.",
            "_http._tcp.svc.example.com.",
            "*.wild.example.com.",
            "1.0.0.10.in-addr.arpa.",
        ] {
            for prefix in ["/skydns", "/a/b", "skydns/"] {
                assert_eq!(
                    key_to_name(&name_to_key(name, prefix), prefix).unwrap(),
                    name
                );
            }
        }
    }

    #[test]
    fn value_encodes_like_externaldns() {
        let v = SkydnsValue {
            host: "10.0.0.1".into(),
            ttl: 180,
            targetstrip: 1,
            ..Default::default()
        };
        assert_eq!(
            v.encode(),
            r#"{"host":"10.0.0.1","ttl":180,"targetstrip":1}"#
        );
        let all = SkydnsValue {
            host: "h".into(),
            port: 80,
            priority: 1,
            weight: 2,
            text: "t".into(),
            mail: true,
            ttl: 3,
            targetstrip: 4,
            group: "g".into(),
        };
        assert_eq!(
            all.encode(),
            r#"{"host":"h","port":80,"priority":1,"weight":2,"text":"t","mail":true,"ttl":3,"targetstrip":4,"group":"g"}"#
        );
        assert_eq!(SkydnsValue::decode(all.encode().as_bytes()).unwrap(), all);
    }

    #[test]
    fn value_decode_ignores_unknown_fields_and_rejects_garbage() {
        let v = SkydnsValue::decode(br#"{"host":"1.2.3.4","setIdentifier":"x"}"#).unwrap();
        assert_eq!(v, SkydnsValue::host("1.2.3.4"));
        assert!(SkydnsValue::decode(b"not json").is_err());
        assert!(SkydnsValue::decode(br#"{"port":"80"}"#).is_err());
        assert!(SkydnsValue::decode(br#"["host"]"#).is_err());
        assert!(SkydnsValue::decode(br#"{"ttl":-1}"#).is_err());
    }

    #[test]
    fn a_endpoint_gives_one_entry_per_target_with_stable_ids() {
        let e = ep(
            "www.example.com",
            "A",
            &["10.0.0.2", "10.0.0.1", "10.0.0.1"],
            180,
        );
        let got = endpoint_entries(&e, "/skydns");
        assert_eq!(got.len(), 2);
        for (key, value) in &got {
            let id = target_id(&value.host);
            assert_eq!(key, &format!("/skydns/com/example/www/{id}"));
            assert_eq!(value.ttl, 180);
            assert_eq!(value.targetstrip, 1);
        }
        assert_eq!(endpoint_entries(&e, "/skydns"), got, "deterministic");
        assert_eq!(
            target_id("10.0.0.1"),
            format!("{:08x}", fnv1a32(b"10.0.0.1"))
        );
    }

    #[test]
    fn fnv_matches_reference_vectors() {
        assert_eq!(fnv1a32(b""), 0x811c9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9cf968);
    }

    #[test]
    fn cname_and_txt_endpoints() {
        let c = endpoint_entries(
            &ep("x.example.com.", "CNAME", &["y.example.com"], 0),
            "/skydns",
        );
        assert_eq!(c.len(), 1);
        assert_eq!(
            c[0].1.encode(),
            r#"{"host":"y.example.com","targetstrip":1}"#
        );
        let t = endpoint_entries(
            &ep("x.example.com", "TXT", &["hello", "ignored"], 60),
            "/skydns",
        );
        assert_eq!(t.len(), 1);
        assert_eq!(
            t[0].1.encode(),
            r#"{"text":"hello","ttl":60,"targetstrip":1}"#
        );
        assert!(endpoint_entries(&ep("x.example.com", "SRV", &["0 0 80 a."], 60), "/s").is_empty());
        assert!(endpoint_entries(&ep("", "A", &["1.2.3.4"], 60), "/s").is_empty());
    }

    #[test]
    fn colliding_ids_are_disambiguated() {
        let mut taken = BTreeSet::new();
        let a = unique_id("t", &mut taken);
        let b = unique_id("t", &mut taken);
        assert_ne!(a, b);
    }

    #[test]
    fn original_text_label_is_copied() {
        let mut e = ep("x.example.com", "A", &["1.2.3.4"], 0);
        e.labels.insert("originalText".into(), "hi".into());
        assert_eq!(endpoint_entries(&e, "/skydns")[0].1.text, "hi");
    }
}
