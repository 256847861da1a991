//! The query parser and the whole answer path. For any datagram: no panic; the answer
//! from the response store is byte for byte the full path's, over UDP and TCP, also
//! for a second spelling of the same question (the store keys names in lower case);
//! whatever is sent back parses as a DNS message and fits the size limit.
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use hickory_proto::op::Message;
use kubefed::dns::server::answer::{self, Transport};
use kubefed::dns::server::index::{IndexConfig, Snapshot, ZoneConfig};
use kubefed::dns::server::udp::Responder;
use kubefed::dns::server::{DEFAULT_MAX_UDP_PAYLOAD, DnsMetrics};
use kubefed::dns::skydns::SkydnsValue;
use libfuzzer_sys::fuzz_target;

struct World {
    snapshot: Arc<Snapshot>,
    responder: Responder,
}

const ENTRIES: &[(&str, &str)] = &[
    ("/skydns/com/example/www/a", r#"{"host":"10.0.0.1","ttl":60}"#),
    ("/skydns/com/example/www/b", r#"{"host":"2001:db8::1"}"#),
    ("/skydns/com/example/alias", r#"{"host":"www.example.com"}"#),
    ("/skydns/com/example/loop", r#"{"host":"loop2.example.com"}"#),
    ("/skydns/com/example/loop2", r#"{"host":"loop.example.com"}"#),
    ("/skydns/com/example/out", r#"{"host":"elsewhere.org"}"#),
    ("/skydns/com/example/txt", r#"{"text":"hello"}"#),
    ("/skydns/com/example/_tcp/_http/s", r#"{"host":"www.example.com","port":80}"#),
    ("/skydns/com/example/_tcp/_http/t", r#"{"host":"10.0.0.7","port":81,"weight":5}"#),
    ("/skydns/com/example/mail/m", r#"{"host":"10.0.0.25","mail":true}"#),
    ("/skydns/com/example/sb", r#"{"host":"0:1c20:0:708:1:5180:0:1e"}"#),
    ("/skydns/com/example/CaSe/x", r#"{"host":"10.0.0.8"}"#),
    ("/skydns/com/example/dns/ns/ns1", r#"{"host":"10.0.0.53"}"#),
    ("/skydns/arpa/in-addr/10/0/0/1", r#"{"host":"www.example.com"}"#),
];

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let cfg = Arc::new(
            IndexConfig::new(
                "/skydns",
                &[ZoneConfig::new("example.com"), ZoneConfig::new("10.in-addr.arpa")],
                300,
            )
            .unwrap(),
        );
        let mut entries: Vec<(String, SkydnsValue)> = ENTRIES
            .iter()
            .map(|(k, v)| (k.to_string(), SkydnsValue::decode(v.as_bytes()).unwrap()))
            .collect();
        for i in 0..120 {
            entries.push((
                format!("/skydns/com/example/big/h{i}"),
                SkydnsValue::host(format!("10.1.0.{i}")),
            ));
        }
        for l in 0..8 {
            for j in 0..3 {
                entries.push((
                    format!("/skydns/com/example/cb/l{l}/{j}"),
                    SkydnsValue::host(format!("l{}.cb.example.com", l + 1)),
                ));
            }
        }
        entries.push(("/skydns/com/example/cb/l8/x".into(), SkydnsValue::host("10.9.0.1")));
        let (snapshot, _) = Snapshot::from_entries(cfg, entries, 5);
        let snapshot = Arc::new(snapshot);
        let index = Arc::new(ArcSwap::new(snapshot.clone()));
        let metrics = DnsMetrics::register(&prometheus::Registry::new()).unwrap();
        World {
            snapshot,
            responder: Responder::new(index, metrics),
        }
    })
}

fn src() -> SocketAddr {
    "127.0.0.1:5300".parse().unwrap()
}

fn check(w: &World, packet: &[u8]) {
    let mut full = Vec::new();
    let reply = answer::respond(&w.snapshot, packet, Transport::Udp, DEFAULT_MAX_UDP_PAYLOAD, &mut full);
    let mut stored = Vec::new();
    let sent = w.responder.respond(packet, src(), &mut stored);
    assert_eq!(sent, reply.is_some());
    if reply.is_some() {
        assert_eq!(stored, full, "stored and full answers differ for {packet:x?}");
        assert!(full.len() >= 12);
        assert!(full.len() <= usize::from(DEFAULT_MAX_UDP_PAYLOAD));
        assert_eq!(full[..2], packet[..2]);
        assert_eq!(full[2] & 0x80, 0x80, "QR set");
        let m = Message::from_vec(&full);
        assert!(m.is_ok(), "unparseable response {full:x?} to {packet:x?}: {m:?}");
    }
    let mut tcp = Vec::new();
    let tcp_reply = answer::respond(&w.snapshot, packet, Transport::Tcp, DEFAULT_MAX_UDP_PAYLOAD, &mut tcp);
    if tcp_reply.is_some() {
        assert!(Message::from_vec(&tcp).is_ok(), "unparseable TCP response to {packet:x?}");
    }
    let mut tcp_stored = Vec::new();
    assert_eq!(w.responder.respond_tcp(packet, src(), &mut tcp_stored), tcp_reply.is_some());
    if tcp_reply.is_some() {
        assert_eq!(tcp_stored, tcp, "stored and full TCP answers differ for {packet:x?}");
    }
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let w = world();
    let (mask, packet) = (data[0], &data[1..]);
    // Twice: a miss that stores, then a hit.
    check(w, packet);
    check(w, packet);
    // Another spelling of the same bytes: letters in the question toggled by `mask`.
    let mut other = packet.to_vec();
    for (i, b) in other.iter_mut().enumerate().skip(12).take(255) {
        if b.is_ascii_alphabetic() && (mask >> (i % 8)) & 1 == 1 {
            *b ^= 0x20;
        }
    }
    check(w, &other);
});
