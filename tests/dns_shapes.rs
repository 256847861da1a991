//! Benchmark, not a test (ignored; `make bench-dns-shapes`): CPU per query of the most
//! expensive question shapes (the apex, `*`, capitals, a CNAME fan-out, TCP) next to the
//! ordinary mix, at 10 000 and 200 000 names. Each shape is answered in a busy loop on
//! one thread, in-process, through the UDP responder (store and full path, as a
//! datagram would be) or the full path alone; the figure is the loop's thread CPU time
//! divided by the queries. Results go to docs/benchmarks.md ("Question shapes").

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};
use kubefed::dns::server::answer::{self, Transport};
use kubefed::dns::server::index::{IndexConfig, Snapshot, ZoneConfig};
use kubefed::dns::server::udp::Responder;
use kubefed::dns::server::{DEFAULT_MAX_UDP_PAYLOAD, DnsMetrics};
use kubefed::dns::skydns::SkydnsValue;

/// CPU time of this thread so far (Linux schedstat: nanoseconds on CPU).
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let ns: u64 = stat
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Duration::from_nanos(ns)
}

fn snapshot(names: usize) -> Arc<Snapshot> {
    let cfg =
        Arc::new(IndexConfig::new("/skydns", &[ZoneConfig::new("example.com")], 300).unwrap());
    let mut entries = Vec::with_capacity(names * 2 + 64);
    for i in 0..names {
        let ip = format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256);
        // What ExternalDNS writes: the name's A record below an id, plus a service.
        entries.push((
            format!("/skydns/com/example/n{i}/1a2b3c4d"),
            SkydnsValue::host(ip.clone()),
        ));
        if i % 2 == 0 {
            entries.push((
                format!("/skydns/com/example/n{i}/_tcp/_http/x"),
                SkydnsValue {
                    host: ip,
                    port: 80,
                    ..Default::default()
                },
            ));
        }
    }
    for l in 0..8 {
        for j in 0..5 {
            entries.push((
                format!("/skydns/com/example/cb/l{l}/{j}"),
                SkydnsValue::host(format!("l{}.cb.example.com", l + 1)),
            ));
        }
    }
    for j in 0..5 {
        entries.push((
            format!("/skydns/com/example/cb/l8/{j}"),
            SkydnsValue::host(format!("10.77.{j}.1")),
        ));
    }
    Arc::new(Snapshot::from_entries(cfg, entries, 1).0)
}

fn query(id: u16, name: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = id;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    let mut e = Edns::new();
    e.set_max_payload(1232);
    m.edns = Some(e);
    m.to_vec().unwrap()
}

/// Seconds of CPU per query for `packets`, answered round-robin `rounds` times.
fn cost(f: &mut dyn FnMut(&[u8]), packets: &[Vec<u8>], min: Duration) -> f64 {
    for p in packets {
        f(p); // warm the store
    }
    let mut n = 0u64;
    let start = thread_cpu();
    // Reading the clock costs a system call: only every 200 queries.
    while thread_cpu() - start < min {
        for p in packets.iter().cycle().take(packets.len().max(200)) {
            f(p);
            n += 1;
        }
    }
    (thread_cpu() - start).as_secs_f64() / n as f64
}

#[test]
#[ignore = "benchmark: make bench-dns-shapes"]
fn cpu_per_query_by_question_shape() {
    let src: SocketAddr = "127.0.0.1:5300".parse().unwrap();
    let min = Duration::from_millis(400);
    println!("| names | shape | path | µs per query | × median ordinary query, same path |");
    println!("|---|---|---|---|---|");
    for names in [10_000usize, 200_000] {
        let snap = snapshot(names);
        let index = Arc::new(ArcSwap::new(snap.clone()));
        let responder = Responder::new(
            index,
            DnsMetrics::register(&prometheus::Registry::new()).unwrap(),
        );
        // The ordinary mix: 1 000 different names (A, SRV, AAAA NODATA, NXDOMAIN).
        let mut ordinary = Vec::new();
        for k in 0..1000usize {
            let i = (k * 7919) % names;
            let p = match k % 4 {
                0 | 1 => query(k as u16, &format!("n{i}.example.com."), RecordType::A),
                2 => query(
                    k as u16,
                    &format!("_http._tcp.n{}.example.com.", i & !1),
                    RecordType::SRV,
                ),
                _ => query(k as u16, &format!("nope{i}.example.com."), RecordType::A),
            };
            ordinary.push(p);
        }
        let mut udp = |p: &[u8]| {
            let mut out = Vec::new();
            responder.respond(p, src, &mut out);
        };
        let mut full_udp = |p: &[u8]| {
            let mut out = Vec::new();
            answer::respond(&snap, p, Transport::Udp, DEFAULT_MAX_UDP_PAYLOAD, &mut out);
        };
        // The median of the ordinary kinds (A, A, SRV, NXDOMAIN), on each path.
        let median = |f: &mut dyn FnMut(&[u8])| {
            let mut per_kind: Vec<f64> = (0..4)
                .map(|k| {
                    let kind: Vec<Vec<u8>> = ordinary.iter().skip(k).step_by(4).cloned().collect();
                    cost(f, &kind, min / 2)
                })
                .collect();
            per_kind.sort_by(f64::total_cmp);
            (per_kind[1] + per_kind[2]) / 2.0
        };
        let (median_udp, median_full) = (median(&mut udp), median(&mut full_udp));
        let row = |shape: &str, path: &str, c: f64| {
            let m = if path == "UDP" {
                median_udp
            } else {
                median_full
            };
            println!(
                "| {names} | {shape} | {path} | {:.2} | {:.1} |",
                c * 1e6,
                c / m
            );
        };
        row(
            "ordinary mix (A, SRV, NXDOMAIN)",
            "UDP",
            cost(&mut udp, &ordinary, min),
        );
        row(
            "ordinary mix",
            "full path (store miss)",
            cost(&mut full_udp, &ordinary, min),
        );
        let shapes: [(&str, &str, RecordType); 8] = [
            ("apex A", "example.com.", RecordType::A),
            ("apex SRV", "example.com.", RecordType::SRV),
            ("capitals apex SRV", "EXAMPLE.com.", RecordType::SRV),
            ("capitals name", "N77.ExAmPlE.com.", RecordType::A),
            ("`*` A", "*.example.com.", RecordType::A),
            ("`x.*` SRV", "x.*.example.com.", RecordType::SRV),
            ("deep CNAME fan-out", "l0.cb.example.com.", RecordType::A),
            ("apex ANY", "example.com.", RecordType::ANY),
        ];
        for (shape, name, qtype) in shapes {
            let p = vec![query(1, name, qtype)];
            row(shape, "UDP", cost(&mut udp, &p, min));
            row(
                shape,
                "full path (store miss)",
                cost(&mut full_udp, &p, min),
            );
        }
        let mut full_tcp = |p: &[u8]| {
            let mut out = Vec::new();
            answer::respond(&snap, p, Transport::Tcp, DEFAULT_MAX_UDP_PAYLOAD, &mut out);
        };
        for (shape, name, qtype) in [
            ("apex A", "example.com.", RecordType::A),
            ("apex SRV", "example.com.", RecordType::SRV),
            ("deep CNAME fan-out", "l0.cb.example.com.", RecordType::A),
        ] {
            let c = cost(&mut full_tcp, &[query(1, name, qtype)], min);
            row(shape, "TCP (65 535 bytes, full path)", c);
        }
        // What a TCP connection runs: the response store, as UDP.
        let mut tcp = |p: &[u8]| {
            let mut out = Vec::new();
            responder.respond_tcp(p, src, &mut out);
        };
        let median_tcp = median(&mut tcp);
        for (shape, name, qtype) in [
            ("apex A", "example.com.", RecordType::A),
            ("apex SRV", "example.com.", RecordType::SRV),
            ("`*` A", "*.example.com.", RecordType::A),
            ("deep CNAME fan-out", "l0.cb.example.com.", RecordType::A),
        ] {
            let c = cost(&mut tcp, &[query(1, name, qtype)], min);
            println!(
                "| {names} | {shape} | TCP (65 535 bytes, store) | {:.2} | {:.1} |",
                c * 1e6,
                c / median_tcp
            );
        }
    }
}
