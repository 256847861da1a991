//! Differential test: the same skydns fixture in one etcd, served by CoreDNS's etcd plugin
//! (built from the Go module proxy by `tests/peers/build-coredns.sh`) and by our server,
//! must give the same answers to a list of questions. Where we deliberately differ (see
//! `docs/dns-server.md`) the question is left out of the list, with the reason below.

mod common;
mod common_etcd;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::{eventually, unique_dir};
use common_etcd::Etcd;
use hickory_net::client::{Client, ClientHandle};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::udp::UdpClientStream;
use hickory_proto::op::Message;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use kubefed::api::multiclusterdns::Endpoint;
use kubefed::dns::server::{self, DnsMetrics, ServerConfig, Source, ZoneConfig};
use kubefed::dns::skydns::endpoint_entries;
use kubefed::localup::{Lifetime, ManagedProcess, free_port};
use prometheus::Registry;

const WAIT: Duration = Duration::from_secs(60);

const FIXTURE: &[(&str, &str)] = &[
    (
        "/skydns/com/example/www/x1",
        r#"{"host":"10.0.0.1","ttl":60}"#,
    ),
    (
        "/skydns/com/example/www/x2",
        r#"{"host":"10.0.0.2","ttl":60}"#,
    ),
    (
        "/skydns/com/example/www6",
        r#"{"host":"2001:db8::1","ttl":120}"#,
    ),
    (
        "/skydns/com/example/mapped",
        r#"{"host":"::ffff:10.0.0.9"}"#,
    ),
    (
        "/skydns/com/example/alias",
        r#"{"host":"www.example.com","ttl":30}"#,
    ),
    (
        "/skydns/com/example/alias2",
        r#"{"host":"alias.example.com"}"#,
    ),
    (
        "/skydns/com/example/ext",
        r#"{"host":"elsewhere.example.org"}"#,
    ),
    (
        "/skydns/com/example/dangling",
        r#"{"host":"gone.example.com"}"#,
    ),
    ("/skydns/com/example/loop", r#"{"host":"loop.example.com"}"#),
    ("/skydns/com/example/txt/t1", r#"{"text":"hello world"}"#),
    ("/skydns/com/example/txt/t2", r#"{"text":"second"}"#),
    (
        "/skydns/com/example/txtalias",
        r#"{"host":"txt.example.com"}"#,
    ),
    (
        "/skydns/com/example/svc/_tcp/_http/a",
        r#"{"host":"10.0.0.5","port":8080,"priority":10,"weight":50}"#,
    ),
    (
        "/skydns/com/example/svc/_tcp/_http/b",
        r#"{"host":"10.0.0.6","port":8080,"priority":10,"weight":150,"targetstrip":1}"#,
    ),
    (
        "/skydns/com/example/svc/_tcp/_http/c",
        r#"{"host":"www.example.com","port":80,"priority":20}"#,
    ),
    (
        "/skydns/com/example/svc/_tcp/_http/d",
        r#"{"host":"backup.example.org","port":81,"priority":30,"weight":5}"#,
    ),
    (
        "/skydns/com/example/mail/mx1",
        r#"{"host":"10.0.0.25","mail":true,"priority":5}"#,
    ),
    (
        "/skydns/com/example/mail/mx2",
        r#"{"host":"www.example.com","mail":true,"priority":20}"#,
    ),
    ("/skydns/com/example/mail/plain", r#"{"host":"10.0.0.26"}"#),
    (
        "/skydns/arpa/in-addr/10/0/0/1",
        r#"{"host":"www.example.com"}"#,
    ),
    ("/skydns/com/example/dns/apex/a", r#"{"host":"10.0.0.100"}"#),
    ("/skydns/com/example/dns/ns/ns1", r#"{"host":"10.0.0.53"}"#),
    ("/skydns/com/example/dns/ns/ns2", r#"{"host":"10.0.0.54"}"#),
    (
        "/skydns/com/example/g/x",
        r#"{"host":"10.5.0.1","group":"g1"}"#,
    ),
    (
        "/skydns/com/example/g/y/z",
        r#"{"host":"10.5.0.2","group":"g2"}"#,
    ),
    ("/skydns/com/example/g/w/z", r#"{"host":"10.5.0.3"}"#),
    ("/skydns/com/example/wild/a/svc", r#"{"host":"10.6.0.1"}"#),
    ("/skydns/com/example/wild/b/svc", r#"{"host":"10.6.0.2"}"#),
    ("/skydns/com/example/wild/b/other", r#"{"host":"10.6.0.3"}"#),
    ("/skydns/com/example/deep/a/b/c", r#"{"host":"10.7.0.1"}"#),
];

/// Questions both servers must answer alike.
const QUESTIONS: &[(&str, RecordType)] = &[
    ("www.example.com.", RecordType::A),
    ("WwW.ExAmPlE.CoM.", RecordType::A),
    ("www.example.com.", RecordType::AAAA),
    ("x1.www.example.com.", RecordType::A),
    ("www6.example.com.", RecordType::AAAA),
    ("www6.example.com.", RecordType::A),
    ("mapped.example.com.", RecordType::A),
    ("alias.example.com.", RecordType::A),
    ("alias.example.com.", RecordType::CNAME),
    ("alias2.example.com.", RecordType::A),
    ("alias.example.com.", RecordType::AAAA),
    ("ext.example.com.", RecordType::CNAME),
    ("dangling.example.com.", RecordType::A),
    ("loop.example.com.", RecordType::A),
    ("txt.example.com.", RecordType::TXT),
    ("txtalias.example.com.", RecordType::TXT),
    ("txt.example.com.", RecordType::A),
    ("_http._tcp.svc.example.com.", RecordType::SRV),
    ("mail.example.com.", RecordType::MX),
    ("www.example.com.", RecordType::MX),
    ("1.0.0.10.in-addr.arpa.", RecordType::PTR),
    ("9.0.0.10.in-addr.arpa.", RecordType::PTR),
    ("example.com.", RecordType::A),
    ("example.com.", RecordType::NS),
    ("example.com.", RecordType::SOA),
    ("g.example.com.", RecordType::A),
    ("svc.*.wild.example.com.", RecordType::A),
    ("deep.example.com.", RecordType::A),
    ("b.deep.example.com.", RecordType::A),
    ("nope.example.com.", RecordType::A),
    ("nope.example.com.", RecordType::TXT),
    ("nope.www.example.com.", RecordType::A),
    ("www.example.com.", RecordType::NAPTR),
    ("nope.example.com.", RecordType::NAPTR),
    ("svc.ns.fed.svc.example.com.", RecordType::A),
    ("svc.ns.fed.svc.us.example.com.", RecordType::A),
    ("www.example.org.", RecordType::A),
];
// Left out on purpose (documented differences):
// - ext.example.com A: CoreDNS asks its upstream for the out-of-zone target and, when
//   that fails, drops the CNAME; we are authoritative only and return the CNAME.
// - SOA below the apex, ANY, a CNAME question for a name stored below its key
//   (ExternalDNS layout), an empty apex: see docs/dns-server.md.

fn coredns_binary() -> PathBuf {
    let p = kubefed::localup::default_bin_dir().join("coredns");
    assert!(
        p.is_file(),
        "{} missing: run `make peers-dns` (tests/peers/build-coredns.sh)",
        p.display()
    );
    p
}

async fn ask(addr: SocketAddr, name: &str, rtype: RecordType) -> Option<Message> {
    let conn = UdpClientStream::builder(addr, TokioRuntimeProvider::default())
        .with_timeout(Some(Duration::from_secs(2)))
        .build();
    let (mut client, bg) = Client::<TokioRuntimeProvider>::from_sender(conn);
    tokio::spawn(bg);
    let resp = client
        .query(Name::from_ascii(name).unwrap(), DNSClass::IN, rtype)
        .await
        .ok()?;
    Some((*resp).clone())
}

/// A record as text, with the SOA serial (a clock in CoreDNS, a revision here) masked.
fn show(r: &Record) -> String {
    let data = match &r.data {
        RData::SOA(soa) => format!(
            "{} {} SERIAL {} {} {} {}",
            soa.mname, soa.rname, soa.refresh, soa.retry, soa.expire, soa.minimum
        ),
        d => d.to_string(),
    };
    format!("{} {} {} {}", r.name, r.ttl, r.record_type(), data)
}

/// What must agree: flags, rcode, and every section (additional records as a set).
fn summary(m: &Message) -> String {
    let mut extra: Vec<String> = m.additionals.iter().map(show).collect();
    extra.sort();
    format!(
        "rcode={} aa={} tc={} ra={}\nanswer:\n  {}\nauthority:\n  {}\nadditional:\n  {}",
        m.metadata.response_code,
        m.metadata.authoritative,
        m.metadata.truncation,
        m.metadata.recursion_available,
        m.answers.iter().map(show).collect::<Vec<_>>().join("\n  "),
        m.authorities
            .iter()
            .map(show)
            .collect::<Vec<_>>()
            .join("\n  "),
        extra.join("\n  "),
    )
}

fn endpoint(name: &str, rtype: &str, targets: &[&str]) -> Endpoint {
    Endpoint {
        dns_name: name.into(),
        targets: targets.iter().map(|t| t.to_string()).collect(),
        record_type: rtype.into(),
        record_ttl: 180,
        labels: BTreeMap::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coredns_etcd_plugin_and_kubefed_answer_alike() {
    let coredns = coredns_binary();
    let dir = unique_dir("dns-differential");
    let etcd = Etcd::start(&dir).await;
    let mut c = etcd.client().await;
    for (k, v) in FIXTURE {
        c.put(*k, *v, None).await.unwrap();
    }
    // Entries as the DNSEndpoint bridge (and ExternalDNS) write them.
    for ep in [
        endpoint("svc.ns.fed.svc.example.com", "A", &["10.8.0.1", "10.8.0.2"]),
        endpoint(
            "svc.ns.fed.svc.us.example.com",
            "CNAME",
            &["svc.ns.fed.svc.example.com"],
        ),
    ] {
        for (k, v) in endpoint_entries(&ep, "/skydns") {
            c.put(k, v.encode(), None).await.unwrap();
        }
    }

    let port = free_port().unwrap();
    let corefile = dir.join("Corefile");
    std::fs::write(
        &corefile,
        format!(
            "example.com:{port} 10.in-addr.arpa:{port} {{\n  bind 127.0.0.1\n  etcd example.com 10.in-addr.arpa {{\n    path /skydns\n    endpoint {}\n  }}\n}}\n",
            etcd.url
        ),
    )
    .unwrap();
    let mut peer = ManagedProcess::spawn(
        &[
            coredns.display().to_string(),
            "-conf".into(),
            corefile.display().to_string(),
        ],
        &dir.join("coredns.log"),
        Lifetime::Owned,
    )
    .expect("coredns starts");
    let core_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    eventually(WAIT, "CoreDNS to answer", || async move {
        ask(core_addr, "www.example.com.", RecordType::A)
            .await
            .filter(|m| !m.answers.is_empty())
    })
    .await;

    let registry = Registry::new();
    let cfg = ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        ["example.com", "10.in-addr.arpa"]
            .map(|z| {
                // CoreDNS's SOA expire (86400); ours defaults to two weeks (issue 11),
                // which is not what this comparison is about.
                let mut zone = ZoneConfig::new(z);
                zone.soa.expire = 86_400;
                zone
            })
            .to_vec(),
        Source::Etcd {
            endpoints: vec![etcd.url.clone()],
        },
        DnsMetrics::register(&registry).unwrap(),
    );
    let ours = server::start(cfg).await.unwrap();
    let index = ours.index.clone();
    eventually(WAIT, "our index to load", || {
        let r = index.is_ready();
        async move { r.then_some(()) }
    })
    .await;

    let mut differences = Vec::new();
    for (name, rtype) in QUESTIONS {
        let theirs = ask(core_addr, name, *rtype).await.expect("CoreDNS answers");
        let mine = ask(ours.udp_addr, name, *rtype).await.expect("we answer");
        let (t, m) = (summary(&theirs), summary(&mine));
        if t != m {
            differences.push(format!(
                "== {name} {rtype}\n-- coredns:\n{t}\n-- kubefed:\n{m}"
            ));
        }
    }
    peer.stop();
    assert!(
        differences.is_empty(),
        "{} of {} questions differ:\n{}",
        differences.len(),
        QUESTIONS.len(),
        differences.join("\n")
    );
}
