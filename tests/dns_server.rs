//! `kubefed dns-server` against a real etcd, asked with `dig` and hickory's client:
//! every record type, negative answers, TCP, truncation, watch updates, etcd going away
//! and coming back, compaction forcing a resync, malformed values, and the CLI itself.

mod common;
mod common_etcd;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::{eventually, unique_dir};
use common_etcd::{Etcd, Relay};
use hickory_net::client::{Client, ClientHandle};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use kubefed::dns::server::{self, DnsMetrics, Handle, ServerConfig, Source, ZoneConfig};
use prometheus::Registry;

const WAIT: Duration = Duration::from_secs(30);

const FIXTURE: &[(&str, &str)] = &[
    (
        "/skydns/com/example/www/x1",
        r#"{"host":"10.0.0.1","ttl":60}"#,
    ),
    (
        "/skydns/com/example/www/x2",
        r#"{"host":"10.0.0.2","ttl":60}"#,
    ),
    ("/skydns/com/example/www6", r#"{"host":"2001:db8::1"}"#),
    ("/skydns/com/example/alias", r#"{"host":"www.example.com"}"#),
    ("/skydns/com/example/txt", r#"{"text":"hello world"}"#),
    (
        "/skydns/com/example/svc/_tcp/_http/a",
        r#"{"host":"10.0.0.5","port":8080,"priority":10,"weight":50}"#,
    ),
    (
        "/skydns/com/example/mail/mx1",
        r#"{"host":"10.0.0.25","mail":true,"priority":5}"#,
    ),
    (
        "/skydns/arpa/in-addr/10/0/0/1",
        r#"{"host":"www.example.com"}"#,
    ),
    ("/skydns/com/example/dns/apex/a", r#"{"host":"10.0.0.100"}"#),
    ("/skydns/com/example/dns/ns/ns1", r#"{"host":"10.0.0.53"}"#),
    ("/skydns/com/example/broken", "this is not json"),
];

struct Fixture {
    etcd: Etcd,
    dns: Handle,
    registry: Registry,
    _relay: Option<Relay>,
}

async fn put_all(etcd: &Etcd, entries: &[(&str, &str)]) {
    let mut c = etcd.client().await;
    for (k, v) in entries {
        c.put(*k, *v, None).await.expect("put");
    }
}

async fn start_dns(etcd_url: &str) -> (Handle, Registry) {
    let registry = Registry::new();
    let metrics = DnsMetrics::register(&registry).unwrap();
    metrics.register_etcd(&registry).unwrap();
    let mut cfg = ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        vec![
            ZoneConfig::new("example.com"),
            ZoneConfig::new("10.in-addr.arpa"),
        ],
        Source::Etcd {
            endpoints: vec![etcd_url.to_string()],
        },
        metrics,
    );
    cfg.udp_sockets = 2;
    let dns = server::start(cfg).await.expect("dns server starts");
    let index = dns.index.clone();
    eventually(WAIT, "the index to load", || {
        let ready = index.is_ready();
        async move { ready.then_some(()) }
    })
    .await;
    (dns, registry)
}

async fn fixture(name: &str) -> Fixture {
    let etcd = Etcd::start(&unique_dir(name)).await;
    put_all(&etcd, FIXTURE).await;
    let (dns, registry) = start_dns(&etcd.url).await;
    Fixture {
        etcd,
        dns,
        registry,
        _relay: None,
    }
}

fn metric(registry: &Registry, name: &str, label: Option<(&str, &str)>) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().iter())
        .filter(|m| {
            label.is_none_or(|(k, v)| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == k && l.value() == v)
            })
        })
        .map(|m| {
            // Exactly one of the two is set for a counter or gauge family.
            m.get_counter().get_value() + m.get_gauge().get_value()
        })
        .sum()
}

async fn ask_udp(addr: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let conn = UdpClientStream::builder(addr, TokioRuntimeProvider::default()).build();
    let (mut client, bg) = Client::<TokioRuntimeProvider>::from_sender(conn);
    tokio::spawn(bg);
    let resp = client
        .query(Name::from_ascii(name).unwrap(), DNSClass::IN, rtype)
        .await
        .expect("a DNS response over UDP");
    (*resp).clone()
}

async fn ask_tcp(addr: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let (stream, sender) = TcpClientStream::new(
        addr,
        None,
        Some(Duration::from_secs(5)),
        TokioRuntimeProvider::default(),
    );
    let stream = stream.await.expect("tcp connect");
    let (mut client, bg) = Client::<TokioRuntimeProvider>::new(stream, sender);
    tokio::spawn(bg);
    let resp = client
        .query(Name::from_ascii(name).unwrap(), DNSClass::IN, rtype)
        .await
        .expect("a DNS response over TCP");
    (*resp).clone()
}

fn rdata(m: &Message) -> Vec<String> {
    m.answers.iter().map(|r| r.data.to_string()).collect()
}

fn dig(addr: SocketAddr, args: &[&str]) -> String {
    let out = Command::new("dig")
        .arg(format!("@{}", addr.ip()))
        .args(["-p", &addr.port().to_string(), "+tries=1", "+time=5"])
        .args(args)
        .output()
        .expect("dig not found: apt-get install -y bind9-dnsutils");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn dig_short(addr: SocketAddr, args: &[&str]) -> Vec<String> {
    let mut a = vec!["+short"];
    a.extend_from_slice(args);
    let mut v: Vec<String> = dig(addr, &a).lines().map(str::to_string).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_type_is_answered_from_etcd() {
    let f = fixture("dns-types").await;
    let a = f.dns.udp_addr;

    let m = ask_udp(a, "www.example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert!(!m.metadata.recursion_available);
    assert_eq!(rdata(&m), ["10.0.0.1", "10.0.0.2"]);
    assert!(m.answers.iter().all(|r| r.ttl == 60));

    let m = ask_udp(a, "www6.example.com.", RecordType::AAAA).await;
    assert_eq!(rdata(&m), ["2001:db8::1"]);
    assert_eq!(m.answers[0].ttl, 300, "default TTL");

    let m = ask_udp(a, "alias.example.com.", RecordType::CNAME).await;
    assert_eq!(rdata(&m), ["www.example.com."]);
    let m = ask_udp(a, "alias.example.com.", RecordType::A).await;
    assert_eq!(
        rdata(&m),
        ["www.example.com.", "10.0.0.1", "10.0.0.2"],
        "CNAME chased inside the zone"
    );

    let m = ask_udp(a, "txt.example.com.", RecordType::TXT).await;
    assert_eq!(rdata(&m), ["hello world"]);

    let m = ask_udp(a, "_http._tcp.svc.example.com.", RecordType::SRV).await;
    assert_eq!(rdata(&m), ["10 100 8080 a._http._tcp.svc.example.com."]);
    assert_eq!(
        m.additionals[0].name.to_ascii(),
        "a._http._tcp.svc.example.com."
    );

    let m = ask_udp(a, "mail.example.com.", RecordType::MX).await;
    assert_eq!(rdata(&m), ["5 mx1.mail.example.com."]);

    let m = ask_udp(a, "1.0.0.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(rdata(&m), ["www.example.com."]);

    let m = ask_udp(a, "example.com.", RecordType::NS).await;
    assert_eq!(rdata(&m), ["ns1.ns.dns.example.com."]);
    assert_eq!(m.additionals[0].data.to_string(), "10.0.0.53");

    let m = ask_udp(a, "example.com.", RecordType::SOA).await;
    assert_eq!(m.answers[0].record_type(), RecordType::SOA);

    let m = ask_udp(a, "example.com.", RecordType::A).await;
    assert_eq!(rdata(&m), ["10.0.0.100"], "apex from dns/apex");

    // dig agrees.
    assert_eq!(
        dig_short(a, &["www.example.com", "A"]),
        ["10.0.0.1", "10.0.0.2"]
    );
    assert_eq!(
        dig_short(a, &["txt.example.com", "TXT"]),
        ["\"hello world\""]
    );
    assert_eq!(dig_short(a, &["-x", "10.0.0.1"]), ["www.example.com."]);
    assert_eq!(
        dig_short(a, &["_http._tcp.svc.example.com", "SRV"]),
        ["10 100 8080 a._http._tcp.svc.example.com."]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_answers_refusals_and_protocol_flags() {
    let f = fixture("dns-negative").await;
    let a = f.dns.udp_addr;

    let out = dig(a, &["nope.example.com", "A"]);
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    assert!(
        out.contains("flags: qr aa rd;"),
        "authoritative, no recursion: {out}"
    );
    assert!(
        out.contains("AUTHORITY SECTION:")
            && out.contains("IN\tSOA\tns.dns.example.com. hostmaster.example.com."),
        "{out}"
    );

    let out = dig(a, &["www.example.com", "AAAA"]);
    assert!(
        out.contains("status: NOERROR") && out.contains("ANSWER: 0,"),
        "NODATA: {out}"
    );
    assert!(out.contains("AUTHORITY: 1,"), "{out}");

    let out = dig(a, &["www.example.org", "A"]);
    assert!(out.contains("status: REFUSED"), "{out}");

    let out = dig(a, &["www.example.com", "ANY"]);
    assert!(out.contains("HINFO\t\"RFC8482\" \"\""), "RFC 8482: {out}");

    let out = dig(a, &["WwW.ExAmPlE.cOm", "A"]);
    assert!(
        out.contains("WwW.ExAmPlE.cOm.\t60\tIN\tA\t10.0.0.1"),
        "question case kept: {out}"
    );

    let out = dig(a, &["+edns=0", "+bufsize=1232", "www.example.com", "A"]);
    assert!(
        out.contains("EDNS: version: 0") && out.contains("udp: 1232"),
        "{out}"
    );
    let out = dig(
        a,
        &["+edns=1", "+noednsnegotiation", "www.example.com", "A"],
    );
    assert!(out.contains("status: BADVERS"), "{out}");

    let m = ask_udp(a, "nope.example.com.", RecordType::TXT).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    assert_eq!(m.authorities[0].ttl, 30);

    // The malformed value was skipped and counted; its name does not exist.
    assert_eq!(
        metric(&f.registry, "kubefed_dns_malformed_values_total", None),
        1.0
    );
    let m = ask_udp(a, "broken.example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(
        metric(
            &f.registry,
            "kubefed_dns_queries_total",
            Some(("rcode", "NXDOMAIN"))
        ) >= 2.0
    );
    assert_eq!(
        metric(&f.registry, "kubefed_dns_index_entries", None),
        (FIXTURE.len() - 1) as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_and_truncation_with_tcp_fallback() {
    let f = fixture("dns-tcp").await;
    let a = f.dns.udp_addr;
    let m = ask_tcp(a, "www.example.com.", RecordType::A).await;
    assert_eq!(rdata(&m), ["10.0.0.1", "10.0.0.2"]);
    assert_eq!(
        dig_short(a, &["+tcp", "www.example.com", "A"]),
        ["10.0.0.1", "10.0.0.2"]
    );

    let big: Vec<(String, String)> = (0..60)
        .map(|i| {
            (
                format!("/skydns/com/example/big/h{i:02}"),
                format!(r#"{{"host":"10.1.0.{i}"}}"#),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = big.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    put_all(&f.etcd, &refs).await;
    eventually(
        WAIT,
        "60 records at big.example.com over TCP",
        || async move {
            (ask_tcp(a, "big.example.com.", RecordType::A)
                .await
                .answers
                .len()
                == 60)
                .then_some(())
        },
    )
    .await;
    // Plain UDP (512 bytes): truncated.
    let out = dig(a, &["+noedns", "+ignore", "big.example.com", "A"]);
    assert!(out.contains(" tc "), "TC flag expected: {out}");
    // dig retries over TCP on TC and gets everything.
    assert_eq!(dig_short(a, &["+noedns", "big.example.com", "A"]).len(), 60);
    let out = dig(a, &["+bufsize=4096", "big.example.com", "A"]);
    assert!(
        out.contains("ANSWER: 60,") && !out.contains(" tc "),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_larger_than_one_grpc_response_loads_in_pages() {
    // 2 500 entries of ~2 KiB: more than etcd's 4 MiB response limit in one listing
    // (found by the 10 000-name benchmark; the server never became ready).
    let etcd = Etcd::start(&unique_dir("dns-large")).await;
    let mut c = etcd.client().await;
    let text = "x".repeat(2000);
    for batch in 0..25 {
        let ops: Vec<etcd_client::TxnOp> = (0..100)
            .map(|i| {
                let n = batch * 100 + i;
                let v = format!(
                    r#"{{"host":"10.3.{}.{}","text":"{text}"}}"#,
                    n / 256,
                    n % 256
                );
                etcd_client::TxnOp::put(format!("/skydns/com/example/big/h{n}"), v, None)
            })
            .collect();
        c.txn(etcd_client::Txn::new().and_then(ops)).await.unwrap();
    }
    let (dns, _registry) = start_dns(&etcd.url).await;
    assert_eq!(
        rdata(&ask_udp(dns.udp_addr, "h2499.big.example.com.", RecordType::A).await),
        ["10.3.9.195"]
    );
    assert_eq!(dns.index.snapshot().len(), 2500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_update_is_visible_in_the_next_answer() {
    let f = fixture("dns-watch").await;
    let a = f.dns.udp_addr;
    let mut c = f.etcd.client().await;
    c.put("/skydns/com/example/new", r#"{"host":"10.2.0.1"}"#, None)
        .await
        .unwrap();
    eventually(WAIT, "new.example.com to appear", || async move {
        (rdata(&ask_udp(a, "new.example.com.", RecordType::A).await) == ["10.2.0.1"]).then_some(())
    })
    .await;
    c.put("/skydns/com/example/new", r#"{"host":"10.2.0.2"}"#, None)
        .await
        .unwrap();
    c.delete("/skydns/com/example/www/x2", None).await.unwrap();
    eventually(WAIT, "the update and the delete", || async move {
        let new = rdata(&ask_udp(a, "new.example.com.", RecordType::A).await);
        let www = rdata(&ask_udp(a, "www.example.com.", RecordType::A).await);
        (new == ["10.2.0.2"] && www == ["10.0.0.1"]).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_continue_while_etcd_is_down_and_later_updates_arrive() {
    let mut f = fixture("dns-restart").await;
    let a = f.dns.udp_addr;
    f.etcd.stop();
    for _ in 0..5 {
        let m = ask_udp(a, "www.example.com.", RecordType::A).await;
        assert_eq!(
            rdata(&m),
            ["10.0.0.1", "10.0.0.2"],
            "last good index served"
        );
    }
    // The feed notices the loss (watch broken) before etcd comes back.
    let registry = f.registry.clone();
    eventually(WAIT, "the feed to notice etcd is gone", || {
        let n = metric(
            &registry,
            "kubefed_dns_etcd_resyncs_total",
            Some(("reason", "rewatch")),
        );
        async move { (n >= 1.0).then_some(()) }
    })
    .await;
    assert_eq!(
        rdata(&ask_udp(a, "www.example.com.", RecordType::A).await),
        ["10.0.0.1", "10.0.0.2"]
    );
    f.etcd.resume().await;
    let mut c = f.etcd.client().await;
    c.put("/skydns/com/example/later", r#"{"host":"10.3.0.1"}"#, None)
        .await
        .unwrap();
    eventually(WAIT, "an update made after the restart", || async move {
        (rdata(&ask_udp(a, "later.example.com.", RecordType::A).await) == ["10.3.0.1"])
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_while_cut_off_forces_a_resync_without_losing_updates() {
    let etcd = Etcd::start(&unique_dir("dns-compact")).await;
    put_all(&etcd, FIXTURE).await;
    let relay = Relay::start(&etcd.url).await;
    let (dns, registry) = start_dns(&relay.url).await;
    let a = dns.udp_addr;

    relay.cut();
    let mut c = etcd.client().await;
    c.put("/skydns/com/example/during", r#"{"host":"10.4.0.1"}"#, None)
        .await
        .unwrap();
    c.delete("/skydns/com/example/www/x1", None).await.unwrap();
    let rev = c
        .put("/skydns/com/example/during", r#"{"host":"10.4.0.2"}"#, None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    c.compact(
        rev,
        Some(etcd_client::CompactionOptions::new().with_physical()),
    )
    .await
    .unwrap();
    // Still the old index while cut off.
    assert_eq!(
        rdata(&ask_udp(a, "www.example.com.", RecordType::A).await),
        ["10.0.0.1", "10.0.0.2"]
    );
    relay.heal();
    eventually(WAIT, "the resync after compaction", || async move {
        let during = rdata(&ask_udp(a, "during.example.com.", RecordType::A).await);
        let www = rdata(&ask_udp(a, "www.example.com.", RecordType::A).await);
        (during == ["10.4.0.2"] && www == ["10.0.0.2"]).then_some(())
    })
    .await;
    assert_eq!(
        metric(
            &registry,
            "kubefed_dns_etcd_resyncs_total",
            Some(("reason", "compacted"))
        ),
        1.0
    );
    assert_eq!(
        metric(&registry, "kubefed_dns_etcd_revision", None),
        rev as f64
    );
    // A relist does not count the same malformed value twice.
    assert_eq!(
        metric(&registry, "kubefed_dns_malformed_values_total", None),
        1.0
    );
    // And the watch resumed after the relist.
    c.put("/skydns/com/example/after", r#"{"host":"10.4.0.3"}"#, None)
        .await
        .unwrap();
    eventually(WAIT, "an update after the resync", || async move {
        (rdata(&ask_udp(a, "after.example.com.", RecordType::A).await) == ["10.4.0.3"])
            .then_some(())
    })
    .await;
    drop(dns);
}

/// `kubefed dns-server` itself: flags, /metrics and /readyz, SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_serves_dns_and_metrics_and_stops_on_sigterm() {
    let etcd = Etcd::start(&unique_dir("dns-cli")).await;
    put_all(&etcd, FIXTURE).await;
    let dns_port = kubefed::localup::free_port().unwrap();
    let metrics_port = kubefed::localup::free_port().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubefed"))
        .args([
            "dns-server",
            "--zone",
            "example.com",
            "--zone",
            "10.in-addr.arpa",
            "--etcd-endpoints",
            &etcd.url,
            "--listen",
            &format!("127.0.0.1:{dns_port}"),
            "--metrics-listen",
            &format!("127.0.0.1:{metrics_port}"),
        ])
        .kill_on_drop(true)
        .spawn()
        .expect("kubefed runs");
    let addr: SocketAddr = format!("127.0.0.1:{dns_port}").parse().unwrap();
    let ready = eventually(WAIT, "/readyz", || async move {
        common::http_get(metrics_port, "/readyz")
            .await
            .filter(|b| b.contains("ok"))
    })
    .await;
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    assert_eq!(
        dig_short(addr, &["www.example.com", "A"]),
        ["10.0.0.1", "10.0.0.2"]
    );
    let metrics = common::http_get(metrics_port, "/metrics").await.unwrap();
    assert!(
        metrics.contains(r#"kubefed_dns_queries_total{rcode="NOERROR",type="A"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("kubefed_dns_index_entries 10"),
        "{metrics}"
    );
    let pid = child.id().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
}
