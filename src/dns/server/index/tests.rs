use super::*;

fn snap(entries: &[(&str, &str)]) -> Snapshot {
    let cfg = Arc::new(
        IndexConfig::new(
            "/skydns",
            &[
                ZoneConfig::new("example.com"),
                ZoneConfig::new("10.in-addr.arpa"),
            ],
            DEFAULT_TTL,
        )
        .unwrap(),
    );
    let (s, errors) = Snapshot::from_entries(
        cfg,
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), SkydnsValue::decode(v.as_bytes()).unwrap())),
        7,
    );
    assert!(errors.is_empty(), "{errors:?}");
    s
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn q(s: &Snapshot, n: &str, t: RecordType) -> (Outcome, Vec<String>) {
    let (o, a) = s.lookup(&name(n), t);
    (o, a.answers.iter().map(|r| r.to_string()).collect())
}

fn data(s: &Snapshot, n: &str, t: RecordType) -> Vec<String> {
    let (_, a) = s.lookup(&name(n), t);
    a.answers.iter().map(|r| r.data.to_string()).collect()
}

#[test]
fn a_record_at_exact_key_with_default_ttl() {
    let s = snap(&[("/skydns/com/example/www", r#"{"host":"10.0.0.1"}"#)]);
    let (o, a) = s.lookup(&name("www.example.com."), RecordType::A);
    assert_eq!(o, Outcome::Answer);
    assert_eq!(a.answers.len(), 1);
    assert_eq!(a.answers[0].ttl, DEFAULT_TTL);
    assert_eq!(a.answers[0].data.to_string(), "10.0.0.1");
}

#[test]
fn subtree_lookup_returns_every_entry_below_the_name() {
    let s = snap(&[
        (
            "/skydns/com/example/www/a",
            r#"{"host":"10.0.0.1","ttl":60}"#,
        ),
        (
            "/skydns/com/example/www/b",
            r#"{"host":"10.0.0.2","ttl":60}"#,
        ),
        (
            "/skydns/com/example/www/c",
            r#"{"host":"2001:db8::1","ttl":60}"#,
        ),
    ]);
    assert_eq!(
        data(&s, "www.example.com.", RecordType::A),
        ["10.0.0.1", "10.0.0.2"]
    );
    assert_eq!(
        data(&s, "www.example.com.", RecordType::AAAA),
        ["2001:db8::1"]
    );
    assert_eq!(data(&s, "a.www.example.com.", RecordType::A), ["10.0.0.1"]);
}

#[test]
fn matching_is_case_insensitive_and_keeps_the_question_case() {
    let s = snap(&[("/skydns/com/example/www", r#"{"host":"10.0.0.1"}"#)]);
    let (o, a) = s.lookup(&name("WwW.Example.COM."), RecordType::A);
    assert_eq!(o, Outcome::Answer);
    assert_eq!(a.answers[0].name.to_ascii(), "WwW.Example.COM.");
}

#[test]
fn nxdomain_vs_nodata_carry_the_soa() {
    let s = snap(&[("/skydns/com/example/www", r#"{"host":"10.0.0.1"}"#)]);
    let (o, a) = s.lookup(&name("nope.example.com."), RecordType::A);
    assert_eq!(o, Outcome::NxDomain);
    assert_eq!(rcode(o), ResponseCode::NXDomain);
    assert_eq!(a.authority.len(), 1);
    assert_eq!(a.authority[0].record_type(), RecordType::SOA);
    assert_eq!(a.authority[0].ttl, SOA_MINIMUM);
    let (o, a) = s.lookup(&name("www.example.com."), RecordType::AAAA);
    assert_eq!(o, Outcome::NoData);
    assert_eq!(rcode(o), ResponseCode::NoError);
    assert_eq!(a.authority[0].record_type(), RecordType::SOA);
    assert_eq!(
        q(&s, "www.example.com.", RecordType::NAPTR).0,
        Outcome::NoData
    );
    assert_eq!(
        q(&s, "x.example.com.", RecordType::NAPTR).0,
        Outcome::NxDomain
    );
}

#[test]
fn outside_the_zones_is_refused() {
    let s = snap(&[]);
    assert_eq!(q(&s, "example.org.", RecordType::A).0, Outcome::Refused);
    assert_eq!(rcode(Outcome::Refused), ResponseCode::Refused);
    assert_eq!(q(&s, "com.", RecordType::A).0, Outcome::Refused);
}

#[test]
fn apex_has_soa_and_ns_and_reads_dns_apex() {
    let s = snap(&[
        ("/skydns/com/example/dns/apex/x", r#"{"host":"10.9.9.9"}"#),
        ("/skydns/com/example/www", r#"{"host":"10.0.0.1"}"#),
    ]);
    assert_eq!(data(&s, "example.com.", RecordType::A), ["10.9.9.9"]);
    let (o, soa) = q(&s, "example.com.", RecordType::SOA);
    assert_eq!(o, Outcome::Answer);
    assert!(
        soa[0].contains("ns.dns.example.com. hostmaster.example.com. 7"),
        "{soa:?}"
    );
    assert_eq!(
        data(&s, "example.com.", RecordType::NS),
        ["ns.dns.example.com."]
    );
    // Below the apex a SOA question is NODATA.
    assert_eq!(
        q(&s, "www.example.com.", RecordType::SOA).0,
        Outcome::NoData
    );
    // An empty zone's apex still exists.
    let empty = snap(&[]);
    assert_eq!(q(&empty, "example.com.", RecordType::A).0, Outcome::NoData);
}

#[test]
fn ns_from_ns_dns_entries_with_glue() {
    let s = snap(&[("/skydns/com/example/dns/ns/ns1", r#"{"host":"10.0.0.53"}"#)]);
    let (o, a) = s.lookup(&name("example.com."), RecordType::NS);
    assert_eq!(o, Outcome::Answer);
    assert_eq!(a.answers[0].data.to_string(), "ns1.ns.dns.example.com.");
    assert_eq!(a.additionals[0].name.to_ascii(), "ns1.ns.dns.example.com.");
    assert_eq!(a.additionals[0].data.to_string(), "10.0.0.53");
}

#[test]
fn cname_is_chased_inside_the_zone() {
    let s = snap(&[
        ("/skydns/com/example/alias", r#"{"host":"www.example.com"}"#),
        ("/skydns/com/example/www", r#"{"host":"10.0.0.1"}"#),
        ("/skydns/com/example/out", r#"{"host":"elsewhere.org"}"#),
        (
            "/skydns/com/example/dangling",
            r#"{"host":"gone.example.com"}"#,
        ),
        ("/skydns/com/example/loop", r#"{"host":"loop.example.com"}"#),
    ]);
    let (o, a) = q(&s, "alias.example.com.", RecordType::A);
    assert_eq!(o, Outcome::Answer);
    assert_eq!(a.len(), 2);
    assert!(
        a[0].contains("CNAME") && a[0].contains("www.example.com."),
        "{a:?}"
    );
    assert!(
        a[1].starts_with("www.example.com.") && a[1].contains("10.0.0.1"),
        "{a:?}"
    );
    assert_eq!(
        data(&s, "out.example.com.", RecordType::A),
        ["elsewhere.org."]
    );
    // CoreDNS drops a CNAME whose in-zone target has no address: NODATA.
    assert_eq!(
        q(&s, "dangling.example.com.", RecordType::A).0,
        Outcome::NoData
    );
    assert_eq!(q(&s, "loop.example.com.", RecordType::A).0, Outcome::NoData);
    assert_eq!(
        data(&s, "alias.example.com.", RecordType::CNAME),
        ["www.example.com."]
    );
    assert_eq!(
        q(&s, "www.example.com.", RecordType::CNAME).0,
        Outcome::NoData
    );
}

#[test]
fn cname_loops_stop() {
    let s = snap(&[
        ("/skydns/com/example/a", r#"{"host":"b.example.com"}"#),
        ("/skydns/com/example/b", r#"{"host":"a.example.com"}"#),
    ]);
    assert_eq!(q(&s, "a.example.com.", RecordType::A).0, Outcome::NoData);
}

#[test]
fn txt_from_text_and_long_text_is_split() {
    let long = "x".repeat(300);
    let v = format!(r#"{{"text":"{long}"}}"#);
    let s = snap(&[
        ("/skydns/com/example/t/1", r#"{"text":"hello"}"#),
        ("/skydns/com/example/t/2", r#"{"host":"10.0.0.1"}"#),
        ("/skydns/com/example/long", &v),
    ]);
    assert_eq!(data(&s, "t.example.com.", RecordType::TXT), ["hello"]);
    let (_, a) = s.lookup(&name("long.example.com."), RecordType::TXT);
    match &a.answers[0].data {
        RData::TXT(t) => assert_eq!(t.txt_data.len(), 2),
        other => panic!("{other:?}"),
    }
    // A text-only entry does not exist for A questions, but the name does.
    assert_eq!(q(&s, "long.example.com.", RecordType::A).0, Outcome::NoData);
}

#[test]
fn srv_weights_targets_and_targetstrip() {
    let s = snap(&[
        (
            "/skydns/com/example/svc/_tcp/_http/a",
            r#"{"host":"10.0.0.1","port":80,"priority":10,"weight":1,"targetstrip":0}"#,
        ),
        (
            "/skydns/com/example/svc/_tcp/_http/b",
            r#"{"host":"10.0.0.2","port":80,"priority":10,"weight":3,"targetstrip":1}"#,
        ),
        (
            "/skydns/com/example/svc/_tcp/_http/c",
            r#"{"host":"www.example.com","port":8080}"#,
        ),
        ("/skydns/com/example/www", r#"{"host":"10.0.0.9"}"#),
    ]);
    let (o, a) = s.lookup(&name("_http._tcp.svc.example.com."), RecordType::SRV);
    assert_eq!(o, Outcome::Answer);
    let srv: Vec<String> = a.answers.iter().map(|r| r.data.to_string()).collect();
    // priority 10: weights 1 + 3 + 100 (c has none) = 104.
    assert_eq!(
        srv,
        [
            "10 1 80 a._http._tcp.svc.example.com.",
            "10 2 80 _http._tcp.svc.example.com.",
            "10 96 8080 www.example.com.",
        ]
    );
    let extra: Vec<String> = a.additionals.iter().map(|r| r.to_string()).collect();
    assert_eq!(extra.len(), 3, "{extra:?}");
}

#[test]
fn mx_only_from_mail_entries() {
    let s = snap(&[
        (
            "/skydns/com/example/mail/a",
            r#"{"host":"10.0.0.25","mail":true,"priority":5}"#,
        ),
        ("/skydns/com/example/mail/b", r#"{"host":"10.0.0.26"}"#),
    ]);
    let (o, a) = s.lookup(&name("mail.example.com."), RecordType::MX);
    assert_eq!(o, Outcome::Answer);
    assert_eq!(a.answers.len(), 1);
    assert_eq!(a.answers[0].data.to_string(), "5 a.mail.example.com.");
    assert_eq!(a.additionals[0].data.to_string(), "10.0.0.25");
}

#[test]
fn ptr_in_reverse_zone() {
    let s = snap(&[(
        "/skydns/arpa/in-addr/10/0/0/1",
        r#"{"host":"www.example.com"}"#,
    )]);
    assert_eq!(
        data(&s, "1.0.0.10.in-addr.arpa.", RecordType::PTR),
        ["www.example.com."]
    );
    assert_eq!(
        q(&s, "0.0.10.in-addr.arpa.", RecordType::PTR).0,
        Outcome::NoData
    );
    assert_eq!(
        q(&s, "2.0.0.10.in-addr.arpa.", RecordType::PTR).0,
        Outcome::NxDomain
    );
}

#[test]
fn groups_select_the_shortest_keys_group() {
    let s = snap(&[
        (
            "/skydns/com/example/g/x",
            r#"{"host":"10.0.0.1","group":"g1"}"#,
        ),
        (
            "/skydns/com/example/g/y/z",
            r#"{"host":"10.0.0.2","group":"g2"}"#,
        ),
        ("/skydns/com/example/g/w/z", r#"{"host":"10.0.0.3"}"#),
    ]);
    assert_eq!(
        data(&s, "g.example.com.", RecordType::A),
        ["10.0.0.3", "10.0.0.1"]
    );
}

#[test]
fn wildcard_label_matches_one_label() {
    let s = snap(&[
        ("/skydns/com/example/a/svc", r#"{"host":"10.0.0.1"}"#),
        ("/skydns/com/example/b/svc", r#"{"host":"10.0.0.2"}"#),
        ("/skydns/com/example/b/other", r#"{"host":"10.0.0.3"}"#),
    ]);
    assert_eq!(
        data(&s, "svc.*.example.com.", RecordType::A),
        ["10.0.0.1", "10.0.0.2"]
    );
}

#[test]
fn any_gets_rfc8482_hinfo() {
    let s = snap(&[("/skydns/com/example/www", r#"{"host":"10.0.0.1"}"#)]);
    let (o, a) = q(&s, "www.example.com.", RecordType::ANY);
    assert_eq!(o, Outcome::Answer);
    assert!(a[0].contains("RFC8482"), "{a:?}");
    assert_eq!(
        q(&s, "nope.example.com.", RecordType::ANY).0,
        Outcome::NxDomain
    );
}

#[test]
fn unservable_entries_are_reported_and_skipped() {
    let cfg =
        Arc::new(IndexConfig::new("/skydns", &[ZoneConfig::new("example.com")], 300).unwrap());
    let (s, errors) = Snapshot::from_entries(
        cfg,
        [
            (
                "/skydns/com/example/ok".to_string(),
                SkydnsValue::host("10.0.0.1"),
            ),
            (
                "/skydns/com/example/bad".to_string(),
                SkydnsValue::host("not a name!"),
            ),
            (
                "/elsewhere/com/example/x".to_string(),
                SkydnsValue::host("10.0.0.2"),
            ),
        ],
        1,
    );
    assert_eq!(s.len(), 1);
    let reasons: Vec<&str> = errors.iter().map(IndexError::reason).collect();
    assert_eq!(reasons, ["host", "outside_prefix"]);
}

#[test]
fn longest_zone_wins() {
    let cfg = Arc::new(
        IndexConfig::new(
            "/skydns",
            &[
                ZoneConfig::new("example.com"),
                ZoneConfig::new("sub.example.com"),
            ],
            300,
        )
        .unwrap(),
    );
    let s = Snapshot::empty(cfg);
    let (_, a) = s.lookup(&name("x.sub.example.com."), RecordType::A);
    assert_eq!(a.authority[0].name.to_ascii(), "sub.example.com.");
}

#[test]
fn target_strip_drops_left_labels_or_keeps_name_on_overshoot() {
    assert_eq!(target_strip("a.b.c.", 1), "b.c.");
    assert_eq!(target_strip("a.b.c.", 5), "a.b.c.");
    assert_eq!(target_strip("a.b.c.", 0), "a.b.c.");
}
