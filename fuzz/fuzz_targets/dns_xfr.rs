//! The transfer side of the server (`xfr`): TSIG lookup and verification (hickory's
//! decoders over bytes we cut at the TSIG's offset), NOTIFY, AXFR/IXFR with an
//! authority SOA, and signed ordinary questions. For any datagram, over UDP and TCP:
//! no panic, and every message sent back parses, carries the request's ID and, over
//! UDP, fits the size limit plus the TSIG's room.
#![no_main]

use std::sync::{Arc, OnceLock};

use hickory_proto::op::Message;
use kubefed::dns::server::acl::Acl;
use kubefed::dns::server::answer::Transport;
use kubefed::dns::server::index::{IndexConfig, Snapshot, ZoneConfig};
use kubefed::dns::server::tsig::{Key, KeyRing};
use kubefed::dns::server::xfr::{self, Transfers, XfrConfig, XfrMetrics};
use kubefed::dns::server::DEFAULT_MAX_UDP_PAYLOAD;
use kubefed::dns::skydns::SkydnsValue;
use libfuzzer_sys::fuzz_target;

struct World {
    snapshot: Arc<Snapshot>,
    transfers: Transfers,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let cfg = Arc::new(
            IndexConfig::new("/skydns", &[ZoneConfig::new("example.com")], 300).unwrap(),
        );
        let entries = (0..50).map(|i| {
            (
                format!("/skydns/com/example/h{i}/x"),
                SkydnsValue::host(format!("10.0.0.{i}")),
            )
        });
        let (snapshot, _) = Snapshot::from_entries(cfg, entries, 7);
        let snapshot = snapshot.with_zone_serials(vec![7]);
        let mut x = XfrConfig::new(XfrMetrics::unregistered());
        // The key `k.` with secret "secret": a fuzzer can find signed requests only
        // by luck, but every path up to the MAC check is reached.
        x.keys = KeyRing::new([Key::new("k", "hmac-sha256", "c2VjcmV0").unwrap()]);
        x.acl = Acl::parse(&["127.0.0.1", "key=k"]).unwrap();
        let transfers = Transfers::new(x);
        transfers.refresh(&snapshot);
        World {
            snapshot: Arc::new(snapshot),
            transfers,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let _ = xfr::wants(data);
    for transport in [Transport::Udp, Transport::Tcp] {
        let src = "127.0.0.1".parse().unwrap();
        let out = w
            .transfers
            .respond(&w.snapshot, data, src, transport, DEFAULT_MAX_UDP_PAYLOAD, 1_700_000_000);
        for m in &out {
            assert!(m.len() >= 12);
            assert_eq!(m[..2], data[..2]);
            if transport == Transport::Udp {
                assert!(m.len() <= usize::from(DEFAULT_MAX_UDP_PAYLOAD) + 600, "{}", m.len());
            }
            let parsed = Message::from_vec(m);
            assert!(parsed.is_ok(), "unparseable {m:x?} to {data:x?}: {parsed:?}");
        }
    }
});
