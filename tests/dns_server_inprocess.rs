//! The embedded server as the controller manager uses it: no etcd, DNSEndpoint entries
//! handed over in-process with `IndexHandle::replace_entries`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use hickory_net::client::{Client, ClientHandle};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::udp::UdpClientStream;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use kubefed::api::multiclusterdns::Endpoint;
use kubefed::dns::server::{self, DnsMetrics, ServerConfig, Source, ZoneConfig};
use kubefed::dns::skydns::{SkydnsValue, endpoint_entries};
use prometheus::Registry;

async fn ask(addr: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let conn = UdpClientStream::builder(addr, TokioRuntimeProvider::default())
        .with_timeout(Some(Duration::from_secs(5)))
        .build();
    let (mut client, bg) = Client::<TokioRuntimeProvider>::from_sender(conn);
    tokio::spawn(bg);
    let resp = client
        .query(Name::from_ascii(name).unwrap(), DNSClass::IN, rtype)
        .await
        .expect("a DNS response");
    (*resp).clone()
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

fn entries(endpoints: &[Endpoint]) -> Vec<(String, SkydnsValue)> {
    endpoints
        .iter()
        .flat_map(|e| endpoint_entries(e, "/skydns"))
        .collect()
}

/// Answer data; addresses of one name come in key (id hash) order, so sort them.
fn rdata(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnsendpoints_are_served_in_process_without_etcd() {
    let registry = Registry::new();
    let metrics = DnsMetrics::register(&registry).unwrap();
    let cfg = ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        vec![ZoneConfig {
            name: "example.com".into(),
            nameservers: vec!["ns1.example.com".into()],
            ..ZoneConfig::new("example.com")
        }],
        Source::InProcess,
        metrics,
    );
    let dns = server::start(cfg).await.expect("starts");
    assert!(!dns.index.is_ready(), "not ready before the first entries");
    let a = dns.udp_addr;

    // Before anything is handed over nothing is known: SERVFAIL, not an authoritative
    // NXDOMAIN that resolvers would cache (issue 11).
    let m = ask(a, "svc.ns.fed.svc.example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(!m.metadata.authoritative);

    let global = "svc.ns.fed.svc.example.com";
    let region = "svc.ns.fed.svc.us.example.com";
    let rejected = dns.index.replace_entries(entries(&[
        endpoint(global, "A", &["10.0.0.1", "10.0.0.2"]),
        endpoint(region, "CNAME", &[global]),
        endpoint("svc.ns.fed.svc.v6.example.com", "AAAA", &["2001:db8::7"]),
    ]));
    assert!(rejected.is_empty(), "{rejected:?}");
    assert!(dns.index.is_ready());

    let m = ask(a, &format!("{global}."), RecordType::A).await;
    assert_eq!(rdata(&m), ["10.0.0.1", "10.0.0.2"]);
    assert!(m.answers.iter().all(|r| r.ttl == 180));
    let m = ask(a, &format!("{region}."), RecordType::A).await;
    assert_eq!(m.answers[0].record_type(), RecordType::CNAME);
    assert_eq!(
        rdata(&m),
        [
            "10.0.0.1".to_string(),
            "10.0.0.2".into(),
            format!("{global}.")
        ]
    );
    let m = ask(a, "svc.ns.fed.svc.v6.example.com.", RecordType::AAAA).await;
    assert_eq!(rdata(&m), ["2001:db8::7"]);
    let m = ask(a, "example.com.", RecordType::NS).await;
    assert_eq!(rdata(&m), ["ns1.example.com."]);

    // A replacement is atomic and complete: removed names go away.
    let serial_before = dns.index.snapshot().serial();
    dns.index
        .replace_entries(entries(&[endpoint(global, "A", &["10.0.0.3"])]));
    assert!(dns.index.snapshot().serial() > serial_before);
    let m = ask(a, &format!("{global}."), RecordType::A).await;
    assert_eq!(rdata(&m), ["10.0.0.3"]);
    let m = ask(a, &format!("{region}."), RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let soa = ask(a, "example.com.", RecordType::SOA).await;
    assert!(
        soa.answers[0]
            .data
            .to_string()
            .contains(&format!(" {} ", dns.index.snapshot().serial())),
        "SOA serial follows the generation: {soa:?}"
    );

    // Entries that cannot be served are returned, skipped and counted once.
    let bad = vec![(
        "/skydns/com/example/bad".to_string(),
        SkydnsValue::host("not a host name!"),
    )];
    assert_eq!(dns.index.replace_entries(bad.clone()).len(), 1);
    assert_eq!(dns.index.replace_entries(bad).len(), 1);
    let malformed = registry
        .gather()
        .into_iter()
        .find(|f| f.name() == "kubefed_dns_malformed_values_total")
        .unwrap();
    assert_eq!(malformed.get_metric()[0].get_counter().get_value(), 1.0);
    dns.stop().await;
}
