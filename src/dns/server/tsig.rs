//! TSIG (RFC 8945), pure: keys and their file formats, checking the MAC of a request,
//! and signing responses (each message of a multi-message transfer) and our own
//! NOTIFY requests. The HMAC is `ring`'s (already in the tree through rustls; a
//! well-kept implementation, so no HMAC code of ours). hickory-proto parses and encodes
//! the TSIG record and its MAC variables; what is ours is only which bytes are signed.
//!
//! Supported: hmac-sha256 and hmac-sha512, full-length MACs only (a truncated MAC is
//! answered BADSIG). A request whose TSIG names a key we do not have, or the wrong
//! algorithm for it, gets NOTAUTH with an unsigned TSIG carrying BADKEY; a bad MAC
//! gets BADSIG (also unsigned, RFC 8945 5.3.2); a time outside the fudge gets BADTIME,
//! signed, with our time in Other Data.

use std::collections::HashMap;

use base64::Engine;
use hickory_proto::op::{Header, Query};
use hickory_proto::rr::rdata::tsig::{TSIG, TsigAlgorithm, TsigError};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};
use ring::hmac;
use thiserror::Error;

/// Seconds of clock difference allowed (RFC 8945 recommends 300).
pub const FUDGE: u16 = 300;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("TSIG key {0:?}: expected name:algorithm:base64-secret")]
    Spec(String),
    #[error("TSIG key {name}: unsupported algorithm {algorithm:?} (hmac-sha256, hmac-sha512)")]
    Algorithm { name: String, algorithm: String },
    #[error("TSIG key {0}: the secret is not valid base64 or is empty")]
    Secret(String),
    #[error("TSIG key {0:?} is not a valid domain name")]
    Name(String),
    #[error("TSIG key file: {0}")]
    File(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    HmacSha256,
    HmacSha512,
}

impl Algorithm {
    pub fn parse(s: &str) -> Option<Algorithm> {
        match s.trim_end_matches('.').to_ascii_lowercase().as_str() {
            "hmac-sha256" => Some(Algorithm::HmacSha256),
            "hmac-sha512" => Some(Algorithm::HmacSha512),
            _ => None,
        }
    }

    fn hickory(self) -> TsigAlgorithm {
        match self {
            Algorithm::HmacSha256 => TsigAlgorithm::HmacSha256,
            Algorithm::HmacSha512 => TsigAlgorithm::HmacSha512,
        }
    }

    fn ring(self) -> hmac::Algorithm {
        match self {
            Algorithm::HmacSha256 => hmac::HMAC_SHA256,
            Algorithm::HmacSha512 => hmac::HMAC_SHA512,
        }
    }

    fn mac_len(self) -> usize {
        match self {
            Algorithm::HmacSha256 => 32,
            Algorithm::HmacSha512 => 64,
        }
    }

    fn of(a: &TsigAlgorithm) -> Option<Algorithm> {
        match a {
            TsigAlgorithm::HmacSha256 => Some(Algorithm::HmacSha256),
            TsigAlgorithm::HmacSha512 => Some(Algorithm::HmacSha512),
            TsigAlgorithm::Unknown(n) => Algorithm::parse(&n.to_ascii()),
            _ => None,
        }
    }
}

/// One shared secret.
#[derive(Clone)]
pub struct Key {
    /// Lower case, fully qualified.
    pub name: Name,
    pub algorithm: Algorithm,
    key: hmac::Key,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        write!(f, "Key({}, {:?})", self.name, self.algorithm)
    }
}

impl Key {
    pub fn new(name: &str, algorithm: &str, secret_b64: &str) -> Result<Key, KeyError> {
        let algorithm = Algorithm::parse(algorithm).ok_or_else(|| KeyError::Algorithm {
            name: name.into(),
            algorithm: algorithm.into(),
        })?;
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret_b64.trim())
            .ok()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| KeyError::Secret(name.into()))?;
        let mut n = Name::from_ascii(name).map_err(|_| KeyError::Name(name.into()))?;
        n.set_fqdn(true);
        Ok(Key {
            name: n.to_lowercase(),
            algorithm,
            key: hmac::Key::new(algorithm.ring(), &secret),
        })
    }

    /// `name:algorithm:base64secret` (the `--tsig-key` flag, dig's `-y` order swapped:
    /// name first, like a BIND key statement).
    pub fn parse_spec(spec: &str) -> Result<Key, KeyError> {
        let mut parts = spec.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(n), Some(a), Some(s)) if !n.is_empty() => Key::new(n, a, s),
            _ => Err(KeyError::Spec(spec.chars().take(40).collect())),
        }
    }

    /// At least the bytes the TSIG record of a message signed with this key takes:
    /// owner and algorithm names, fixed fields, the MAC.
    pub fn record_len(&self) -> usize {
        // name + type/class/TTL/RDLENGTH + algorithm (<= 13 + 2) + time, fudge, MAC size,
        // MAC, original ID, error, other length (+ 6 bytes of BADTIME other data).
        self.name.to_ascii().len() + 2 + 10 + 15 + 10 + self.algorithm.mac_len() + 6 + 6
    }

    fn mac(&self, data: &[u8]) -> Vec<u8> {
        hmac::sign(&self.key, data).as_ref().to_vec()
    }
}

/// Keys in BIND's key-file format (what `tsig-keygen` writes):
/// `key "name" { algorithm hmac-sha256; secret "base64"; };`, any number of them;
/// `#`, `//` comments.
pub fn parse_key_file(text: &str) -> Result<Vec<Key>, KeyError> {
    let cleaned: String = text
        .lines()
        .map(|l| {
            let l = l.split('#').next().unwrap_or("");
            l.split("//").next().unwrap_or("")
        })
        .collect::<Vec<_>>()
        .join("\n");
    // Tokens: words, quoted strings, and the punctuation { } ;
    let mut tokens = Vec::new();
    let mut chars = cleaned.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if matches!(c, '{' | '}' | ';') {
            tokens.push(c.to_string());
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut s = String::new();
            for c in chars.by_ref() {
                if c == '"' {
                    break;
                }
                s.push(c);
            }
            tokens.push(s);
        } else {
            let mut s = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || matches!(c, '{' | '}' | ';' | '"') {
                    break;
                }
                s.push(c);
                chars.next();
            }
            tokens.push(s);
        }
    }
    let bad = |what: &str| KeyError::File(what.to_string());
    let mut keys = Vec::new();
    let mut t = tokens.iter().map(String::as_str);
    while let Some(word) = t.next() {
        if word != "key" {
            return Err(bad(&format!("expected `key`, found {word:?}")));
        }
        let name = t.next().ok_or_else(|| bad("key without a name"))?;
        if t.next() != Some("{") {
            return Err(bad("expected `{` after the key name"));
        }
        let (mut algorithm, mut secret) = (None, None);
        loop {
            match t.next() {
                Some("}") => break,
                Some("algorithm") => algorithm = t.next(),
                Some("secret") => secret = t.next(),
                Some(";") => continue,
                Some(other) => return Err(bad(&format!("unexpected {other:?} in key {name}"))),
                None => return Err(bad("unterminated key statement")),
            }
            if t.next() != Some(";") {
                return Err(bad("expected `;`"));
            }
        }
        if t.next() != Some(";") {
            return Err(bad("expected `;` after `}`"));
        }
        match (algorithm, secret) {
            (Some(a), Some(s)) => keys.push(Key::new(name, a, s)?),
            _ => return Err(bad(&format!("key {name} needs an algorithm and a secret"))),
        }
    }
    Ok(keys)
}

/// The keys the server knows, by name.
#[derive(Clone, Debug, Default)]
pub struct KeyRing(HashMap<Name, Key>);

impl KeyRing {
    pub fn new(keys: impl IntoIterator<Item = Key>) -> KeyRing {
        KeyRing(keys.into_iter().map(|k| (k.name.clone(), k)).collect())
    }

    pub fn get(&self, name: &Name) -> Option<&Key> {
        self.0.get(&name.to_lowercase())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The TSIG at the end of a message.
#[derive(Debug, Clone)]
pub struct Signature {
    /// Where the TSIG record starts.
    pub offset: usize,
    pub key_name: Name,
    pub tsig: TSIG,
}

/// A message whose TSIG cannot be found with certainty: FORMERR.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("the message does not parse, or its TSIG is not the last record")]
pub struct Malformed;

/// Finds the TSIG record of `packet`: `Ok(None)` when there is none, `Err` when one is
/// present anywhere but last in the additional section, or the message does not parse.
pub fn find(packet: &[u8]) -> Result<Option<Signature>, Malformed> {
    let mut d = BinDecoder::new(packet);
    let header = Header::read(&mut d).map_err(|_| Malformed)?;
    let c = header.counts;
    for _ in 0..c.queries {
        Query::read(&mut d).map_err(|_| Malformed)?;
    }
    let total = usize::from(c.answers) + usize::from(c.authorities) + usize::from(c.additionals);
    let mut last = None;
    for i in 0..total {
        let at = d.index();
        let r = Record::read(&mut d).map_err(|_| Malformed)?;
        if r.record_type() == RecordType::TSIG {
            if i + 1 != total || i < usize::from(c.answers) + usize::from(c.authorities) {
                return Err(Malformed);
            }
            if let RData::TSIG(t) = r.data {
                last = Some(Signature {
                    offset: at,
                    key_name: r.name,
                    tsig: t,
                });
            } else {
                return Err(Malformed);
            }
        }
    }
    Ok(last)
}

/// The outcome of checking a request's TSIG.
#[derive(Debug)]
pub enum Verified<'k> {
    Unsigned,
    /// Good: the request without its TSIG (ARCOUNT one less, original ID), the key and
    /// the request's MAC (which the response's MAC covers).
    Signed {
        stripped: Vec<u8>,
        key: &'k Key,
        mac: Vec<u8>,
        sig: Signature,
    },
    /// NOTAUTH with this TSIG error; `key` is set when the response is to be signed
    /// (BADTIME), `stripped` is the request without its TSIG.
    Failed {
        error: TsigError,
        sig: Signature,
        stripped: Vec<u8>,
        key: Option<&'k Key>,
        mac: Vec<u8>,
    },
    Malformed,
}

/// `packet` without the TSIG at `sig.offset`: ARCOUNT one less, ID the original one.
fn strip(packet: &[u8], sig: &Signature) -> Vec<u8> {
    let mut out = packet[..sig.offset].to_vec();
    out[0..2].copy_from_slice(&sig.tsig.oid.to_be_bytes());
    let ar = u16::from_be_bytes([out[10], out[11]]).saturating_sub(1);
    out[10..12].copy_from_slice(&ar.to_be_bytes());
    out
}

/// Appends the TSIG variables (RFC 8945 4.3.3) to `out`. They are encoded apart:
/// hickory's encoder writes from offset 0 and caps a buffer at 65 535 bytes, which a
/// full message plus a prior MAC can pass.
fn variables(tsig: &TSIG, key_name: &Name, out: &mut Vec<u8>) {
    let mut buf = Vec::new();
    if tsig
        .emit_tsig_for_mac(&mut BinEncoder::new(&mut buf), key_name)
        .is_ok()
    {
        out.extend_from_slice(&buf);
    }
}

/// Checks the TSIG of `packet` at `now` (seconds since the epoch).
pub fn verify<'k>(keys: &'k KeyRing, packet: &[u8], now: u64) -> Verified<'k> {
    let sig = match find(packet) {
        Ok(None) => return Verified::Unsigned,
        Ok(Some(s)) => s,
        Err(Malformed) => return Verified::Malformed,
    };
    let stripped = strip(packet, &sig);
    let key = keys
        .get(&sig.key_name)
        .filter(|k| Algorithm::of(&sig.tsig.algorithm) == Some(k.algorithm));
    let Some(key) = key else {
        return Verified::Failed {
            error: TsigError::BadKey,
            sig,
            stripped,
            key: None,
            mac: Vec::new(),
        };
    };
    let mut data = stripped.clone();
    // The MAC covers the key name as the key knows it, in canonical (lower) form.
    variables(&sig.tsig, &key.name, &mut data);
    let good = sig.tsig.mac.len() == key.algorithm.mac_len()
        && hmac::verify(&key.key, &data, &sig.tsig.mac).is_ok();
    if !good {
        return Verified::Failed {
            error: TsigError::BadSig,
            sig,
            stripped,
            key: None,
            mac: Vec::new(),
        };
    }
    let mac = sig.tsig.mac.clone();
    if now.abs_diff(sig.tsig.time) > u64::from(sig.tsig.fudge) {
        return Verified::Failed {
            error: TsigError::BadTime,
            sig,
            stripped,
            key: Some(key),
            mac,
        };
    }
    Verified::Signed {
        stripped,
        key,
        mac,
        sig,
    }
}

fn append(msg: &mut Vec<u8>, key_name: &Name, tsig: TSIG) {
    let mut record = Record::from_rdata(key_name.clone(), 0, RData::TSIG(tsig));
    record.dns_class = DNSClass::ANY;
    let mut buf = Vec::new();
    if record.emit(&mut BinEncoder::new(&mut buf)).is_err() || msg.len() < 12 {
        return;
    }
    msg.extend_from_slice(&buf);
    let ar = u16::from_be_bytes([msg[10], msg[11]]).saturating_add(1);
    msg[10..12].copy_from_slice(&ar.to_be_bytes());
}

/// Appends an unsigned TSIG carrying `error` (BADKEY, BADSIG: RFC 8945 5.3.2).
pub fn append_error(msg: &mut Vec<u8>, sig: &Signature, error: TsigError) {
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    let tsig = TSIG::new(
        sig.tsig.algorithm.clone(),
        sig.tsig.time,
        sig.tsig.fudge,
        Vec::new(),
        id,
        Some(error),
        Vec::new(),
    );
    append(msg, &sig.key_name, tsig);
}

/// Signs the messages of one response (a transfer is several): the first covers the
/// request's MAC and the full TSIG variables, each later one the previous MAC and the
/// timers only (RFC 8945 5.3.1). Every message is signed.
pub struct Signer<'k> {
    key: &'k Key,
    prior: Vec<u8>,
    first: bool,
    error: Option<TsigError>,
}

impl<'k> Signer<'k> {
    /// For a response to a request whose MAC was `request_mac` (empty: a request of
    /// our own, such as NOTIFY).
    pub fn new(key: &'k Key, request_mac: Vec<u8>) -> Signer<'k> {
        Signer {
            key,
            prior: request_mac,
            first: true,
            error: None,
        }
    }

    /// A BADTIME response: signed, with the error and our time.
    pub fn with_error(mut self, error: TsigError) -> Self {
        self.error = Some(error);
        self
    }

    /// Appends the TSIG to `msg` (a complete message without one).
    pub fn sign(&mut self, msg: &mut Vec<u8>, now: u64) {
        if msg.len() < 12 {
            return;
        }
        let id = u16::from_be_bytes([msg[0], msg[1]]);
        let other = match self.error {
            Some(TsigError::BadTime) => {
                let t = now & 0xffff_ffff_ffff;
                t.to_be_bytes()[2..].to_vec()
            }
            _ => Vec::new(),
        };
        let tsig = TSIG::new(
            self.key.algorithm.hickory(),
            now & 0xffff_ffff_ffff,
            FUDGE,
            Vec::new(),
            id,
            self.error,
            other,
        );
        let mut data = Vec::with_capacity(msg.len() + 128);
        if !self.prior.is_empty() {
            data.extend_from_slice(&(self.prior.len() as u16).to_be_bytes());
            data.extend_from_slice(&self.prior);
        }
        data.extend_from_slice(msg);
        if self.first {
            variables(&tsig, &self.key.name, &mut data);
        } else {
            let t = tsig.time;
            data.extend_from_slice(&((t >> 32) as u16).to_be_bytes());
            data.extend_from_slice(&(t as u32).to_be_bytes());
            data.extend_from_slice(&FUDGE.to_be_bytes());
        }
        let mac = self.key.mac(&data);
        self.prior = mac.clone();
        self.first = false;
        append(msg, &self.key.name, tsig.set_mac(mac));
    }

    /// The MAC of the last message signed.
    pub fn last_mac(&self) -> &[u8] {
        &self.prior
    }
}

/// Checks the TSIG of a response to a request we signed with `request_mac` (one
/// message): true when it is signed by `key` over that MAC.
pub fn verify_response(key: &Key, request_mac: &[u8], packet: &[u8]) -> bool {
    let Ok(Some(sig)) = find(packet) else {
        return false;
    };
    if sig.key_name.to_lowercase() != key.name || sig.tsig.mac.len() != key.algorithm.mac_len() {
        return false;
    }
    let mut data = Vec::new();
    data.extend_from_slice(&(request_mac.len() as u16).to_be_bytes());
    data.extend_from_slice(request_mac);
    data.extend_from_slice(&strip(packet, &sig));
    variables(&sig.tsig, &key.name, &mut data);
    hmac::verify(&key.key, &data, &sig.tsig.mac).is_ok()
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::{Message, MessageType, Query};

    use super::*;

    const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=";

    fn query() -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = 77;
        m.add_query(Query::query(
            Name::from_ascii("example.com.").unwrap(),
            RecordType::SOA,
        ));
        m.to_vec().unwrap()
    }

    fn signed_query(key: &Key, now: u64) -> Vec<u8> {
        let mut q = query();
        Signer::new(key, Vec::new()).sign(&mut q, now);
        q
    }

    #[test]
    fn a_request_signed_with_the_key_verifies_and_its_response_is_signed_over_its_mac() {
        let key = Key::parse_spec(&format!("xfr-key:hmac-sha256:{SECRET}")).unwrap();
        let ring = KeyRing::new([key.clone()]);
        let q = signed_query(&key, 1000);
        let Verified::Signed { stripped, mac, .. } = verify(&ring, &q, 1010) else {
            panic!("not verified");
        };
        assert_eq!(stripped, query());
        let mut response = Message::from_vec(&stripped).unwrap();
        response.metadata.message_type = MessageType::Response;
        let mut bytes = response.to_vec().unwrap();
        Signer::new(&key, mac.clone()).sign(&mut bytes, 1011);
        assert!(verify_response(&key, &mac, &bytes));
        assert!(!verify_response(&key, b"other mac", &bytes));
        // hickory reads what we wrote as a TSIG at the end.
        let m = Message::from_vec(&bytes).unwrap();
        assert_eq!(
            m.additionals.last().unwrap().record_type(),
            RecordType::TSIG
        );
    }

    #[test]
    fn unknown_keys_bad_macs_and_stale_times_are_told_apart() {
        let key = Key::new("xfr-key", "hmac-sha256", SECRET).unwrap();
        let other = Key::new("xfr-key", "hmac-sha256", "b3RoZXI=").unwrap();
        let stranger = Key::new("who", "hmac-sha256", SECRET).unwrap();
        let sha512 = Key::new("xfr-key", "hmac-sha512", SECRET).unwrap();
        let ring = KeyRing::new([key.clone()]);
        let err = |v: Verified<'_>| match v {
            Verified::Failed { error, .. } => Some(error),
            _ => None,
        };
        assert_eq!(
            err(verify(&ring, &signed_query(&stranger, 5), 5)),
            Some(TsigError::BadKey)
        );
        assert_eq!(
            err(verify(&ring, &signed_query(&sha512, 5), 5)),
            Some(TsigError::BadKey)
        );
        assert_eq!(
            err(verify(&ring, &signed_query(&other, 5), 5)),
            Some(TsigError::BadSig)
        );
        assert_eq!(
            err(verify(&ring, &signed_query(&key, 5), 5000)),
            Some(TsigError::BadTime)
        );
        assert!(matches!(verify(&ring, &query(), 5), Verified::Unsigned));
        // A flipped bit anywhere in the signed part is a bad MAC.
        let mut q = signed_query(&key, 5);
        q[14] ^= 0x20;
        assert_eq!(err(verify(&ring, &q, 5)), Some(TsigError::BadSig));
    }

    #[test]
    fn sha512_keys_work_too() {
        let key = Key::new("k512.", "hmac-sha512", SECRET).unwrap();
        let ring = KeyRing::new([key.clone()]);
        assert!(matches!(
            verify(&ring, &signed_query(&key, 9), 9),
            Verified::Signed { .. }
        ));
    }

    #[test]
    fn garbage_after_or_around_a_tsig_is_malformed_not_a_panic() {
        let key = Key::new("k", "hmac-sha256", SECRET).unwrap();
        let ring = KeyRing::new([key.clone()]);
        let q = signed_query(&key, 1);
        for cut in 0..q.len() {
            let _ = verify(&ring, &q[..cut], 1);
        }
        let mut extra = q.clone();
        extra.extend_from_slice(&[0; 11]);
        let _ = verify(&ring, &extra, 1);
    }

    #[test]
    fn key_specs_and_bind_key_files_parse() {
        let k = Key::parse_spec(&format!("Xfr.Key.:hmac-sha256:{SECRET}")).unwrap();
        assert_eq!(k.name.to_ascii(), "xfr.key.");
        assert!(Key::parse_spec("nocolons").is_err());
        assert!(matches!(
            Key::parse_spec(&format!("k:hmac-md5:{SECRET}")),
            Err(KeyError::Algorithm { .. })
        ));
        assert!(matches!(
            Key::parse_spec("k:hmac-sha256:!!"),
            Err(KeyError::Secret(_))
        ));
        let file = format!(
            "# made by tsig-keygen\nkey \"a-key\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{SECRET}\";\n}};\n\
             key b {{ algorithm hmac-sha512; secret \"{SECRET}\"; }}; // two\n"
        );
        let keys = parse_key_file(&file).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[1].algorithm, Algorithm::HmacSha512);
        assert!(parse_key_file("key \"a\" { algorithm hmac-sha256; };").is_err());
        assert!(parse_key_file("zone x {};").is_err());
        assert!(parse_key_file("").unwrap().is_empty());
    }
}
