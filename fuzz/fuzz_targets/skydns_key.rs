//! Key <-> name conversion: no panic on any key; a name made of ordinary labels goes to
//! a key and back unchanged; index entries under any keys answer lookups without panic.
#![no_main]

use std::sync::Arc;

use kubefed::dns::server::index::{IndexConfig, Snapshot, ZoneConfig};
use kubefed::dns::skydns::SkydnsValue;
use kubefed::dns::skydns::codec::{key_to_name, key_to_path, name_to_key, path_to_name};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let (prefix, key) = s.split_once('\n').unwrap_or(("/skydns", &s));
    if let Ok(path) = key_to_path(key, prefix) {
        let _ = path_to_name(path);
    }
    let _ = key_to_name(key, prefix);
    // Round trip for names of non-empty labels without '/'.
    let name: String = key
        .split('.')
        .filter(|l| !l.is_empty() && !l.contains('/'))
        .collect::<Vec<_>>()
        .join(".");
    if !name.is_empty() && !prefix.trim_matches('/').is_empty() {
        let back = key_to_name(&name_to_key(&name, prefix), prefix).expect("under the prefix");
        assert_eq!(back, format!("{name}."));
    }
    let cfg = Arc::new(IndexConfig::new("/skydns", &[ZoneConfig::new("example.com")], 300).unwrap());
    let keys = [format!("/skydns/com/example/{key}"), format!("/skydns/{key}")];
    let (snap, _) = Snapshot::from_entries(
        cfg,
        keys.iter().map(|k| (k.clone(), SkydnsValue::host("10.0.0.1"))),
        1,
    );
    if let Ok(n) = hickory_proto::rr::Name::from_ascii(format!("{name}.example.com.")) {
        let _ = snap.lookup_within(&n, hickory_proto::rr::RecordType::A, 512);
    }
});
