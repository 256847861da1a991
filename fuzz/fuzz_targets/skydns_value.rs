//! The skydns value decoder (what etcd hands us): no panic on any bytes; a decoded
//! value encodes and decodes back to itself; building an index entry from it either
//! succeeds or reports an error (range checks), never panics.
#![no_main]

use std::sync::{Arc, OnceLock};

use kubefed::dns::server::index::{IndexConfig, Snapshot, ZoneConfig};
use kubefed::dns::skydns::SkydnsValue;
use libfuzzer_sys::fuzz_target;

fn cfg() -> Arc<IndexConfig> {
    static C: OnceLock<Arc<IndexConfig>> = OnceLock::new();
    C.get_or_init(|| Arc::new(IndexConfig::new("/skydns", &[ZoneConfig::new("example.com")], 300).unwrap()))
        .clone()
}

fuzz_target!(|data: &[u8]| {
    let Ok(v) = SkydnsValue::decode(data) else {
        return;
    };
    let again = SkydnsValue::decode(v.encode().as_bytes()).expect("an encoded value decodes");
    assert_eq!(again, v);
    let (s, errors) = Snapshot::from_entries(cfg(), [("/skydns/com/example/x".to_string(), v)], 1);
    assert_eq!(s.len() + errors.len(), 1);
    for e in errors {
        assert!(e.to_string().len() < 1024, "errors are logged short");
    }
    let name = hickory_proto::rr::Name::from_ascii("x.example.com.").unwrap();
    for t in [
        hickory_proto::rr::RecordType::A,
        hickory_proto::rr::RecordType::SRV,
        hickory_proto::rr::RecordType::TXT,
        hickory_proto::rr::RecordType::MX,
        hickory_proto::rr::RecordType::CNAME,
    ] {
        let _ = s.lookup_within(&name, t, 512);
    }
});
