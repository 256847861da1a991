//! Zone transfers against real secondaries: `kubefed dns-server` (fed by a real etcd)
//! is the TSIG-signed primary of BIND 9, Knot and NSD, each started from Debian's
//! binaries on loopback with its own ports and directory, killed when the test ends.
//!
//! Each secondary takes the zone on start, follows an etcd change (written in the skydns
//! writer's layout) by NOTIFY and IXFR with a refresh of an hour (so only the NOTIFY can
//! explain it), and ends up with a copy equal to ours. With BIND we also check what
//! is refused (a wrong key, a source outside the ACL), the journal fallback, and that
//! restarting our server keeps the serial. One test goes through the whole pipeline (a
//! member cluster's Service load balancer IP changes; the ServiceDNSRecord controller,
//! the skydns writer, our server, BIND): it needs kube-apiserver (`KUBEFED_BIN_DIR`), as
//! every federation test does.

mod common;
mod common_etcd;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Daemon, dig, eventually, unique_dir};
use common_etcd::Etcd;
use kubefed::dns::skydns::codec;
use kubefed::localup::{Lifetime, ManagedProcess, free_port};

const WAIT: Duration = Duration::from_secs(30);
const KEY: &str = "xfr-key";
const SECRET: &str = "3Ak8XLz1M8oHNM/3Y2m1JJHq6A2Rn8Z7KdC9wGhvRkM=";
const ZONE: &str = "example.com";

/// The skydns writer's key for one target of a name.
fn key_of(name: &str, host: &str) -> String {
    codec::name_to_key(&format!("{}.{name}", codec::target_id(host)), "/skydns")
}

async fn seed(etcd: &Etcd) {
    let mut c = etcd.client().await;
    let entries = [
        (
            key_of("www.example.com", "10.0.0.1"),
            r#"{"host":"10.0.0.1","ttl":60}"#.to_string(),
        ),
        (
            key_of("www.example.com", "10.0.0.2"),
            r#"{"host":"10.0.0.2","ttl":60}"#.to_string(),
        ),
        (
            key_of("alias.example.com", "www.example.com"),
            r#"{"host":"www.example.com"}"#.to_string(),
        ),
        (
            key_of("txt.example.com", "TXT hello"),
            r#"{"text":"hello world"}"#.to_string(),
        ),
        (
            "/skydns/com/example/_tcp/_http/s1".to_string(),
            r#"{"host":"www.example.com","port":8080}"#.to_string(),
        ),
        (
            "/skydns/com/example/dns/ns/ns1".to_string(),
            r#"{"host":"127.0.0.1"}"#.to_string(),
        ),
    ];
    for (k, v) in entries {
        c.put(k, v, None).await.unwrap();
    }
}

/// Moves www.example.com from 10.0.0.1 to `to`, as the writer does (delete + put).
async fn move_www(etcd: &Etcd, from: &str, to: &str) {
    use etcd_client::{Txn, TxnOp};
    let mut c = etcd.client().await;
    let txn = Txn::new().and_then([
        TxnOp::delete(key_of("www.example.com", from), None),
        TxnOp::put(
            key_of("www.example.com", to),
            format!(r#"{{"host":"{to}","ttl":60}}"#),
            None,
        ),
    ]);
    c.txn(txn).await.unwrap();
}

struct Primary {
    _daemon: Daemon,
    addr: String,
    metrics_port: u16,
}

fn primary_args(etcd: &Etcd, addr: &str, metrics_port: u16, notify: &[String]) -> Vec<String> {
    let mut args: Vec<String> = [
        "dns-server",
        "--zone",
        ZONE,
        "--etcd-endpoints",
        &etcd.url,
        "--listen",
        addr,
        "--metrics-listen",
        &format!("127.0.0.1:{metrics_port}"),
        "--soa",
        "refresh=3600,retry=3600",
        "--tsig-key",
        &format!("{KEY}:hmac-sha256:{SECRET}"),
        "--allow-transfer",
        &format!("key={KEY}"),
        "--ixfr-journal",
        "3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for n in notify {
        args.push("--notify".into());
        args.push(format!("{n},key={KEY}"));
    }
    args
}

impl Primary {
    async fn start(etcd: &Etcd, addr: &str, metrics_port: u16, notify: &[String]) -> Primary {
        let args = primary_args(etcd, addr, metrics_port, notify);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let daemon = Daemon::start(&args, "xfr-primary");
        let p = Primary {
            _daemon: daemon,
            addr: addr.to_string(),
            metrics_port,
        };
        let a = p.addr.clone();
        eventually(WAIT, "our server answers", || {
            let a = a.clone();
            async move { serial(&dig(&a, &["+short", ZONE, "SOA"])) }
        })
        .await;
        p
    }

    async fn metric(&self, needle: &str) -> f64 {
        metric_value(
            &common::http_get(self.metrics_port, "/metrics")
                .await
                .unwrap_or_default(),
            needle,
        )
    }
}

fn metric_value(text: &str, needle: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(needle))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The serial in `dig +short SOA` output.
fn serial(short: &str) -> Option<u32> {
    short.split_whitespace().nth(2)?.parse().ok()
}

fn tsig_arg() -> String {
    format!("hmac-sha256:{KEY}:{SECRET}")
}

/// The zone's records by AXFR (signed), normalised: one line per record, sorted, the
/// closing SOA and the TSIG left out.
fn axfr(addr: &str, signed: bool) -> BTreeSet<String> {
    let y = tsig_arg();
    let mut args = vec!["+nocmd", "+nostats", "+nocomments", ZONE, "AXFR"];
    if signed {
        args.extend(["-y", &y]);
    }
    dig(addr, &args)
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty() && !l.contains("TSIG"))
        .map(|l| {
            l.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase()
        })
        .collect()
}

enum Kind {
    Bind,
    Knot,
    Nsd,
}

struct Secondary {
    process: Option<ManagedProcess>,
    addr: String,
    log: PathBuf,
    dir: PathBuf,
}

impl Drop for Secondary {
    fn drop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }
}

impl Secondary {
    fn start(kind: Kind, dir: &Path, primary: &str) -> Secondary {
        let port = free_port().unwrap();
        let addr = format!("127.0.0.1:{port}");
        let (pip, pport) = primary.rsplit_once(':').unwrap();
        let d = dir.display();
        let (command, log): (Vec<String>, PathBuf) = match kind {
            Kind::Bind => {
                let conf = format!(
                    r#"options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
    allow-transfer {{ any; }};
    min-refresh-time 3600;
}};
controls {{ }};
key "{KEY}" {{ algorithm hmac-sha256; secret "{SECRET}"; }};
server {pip} {{ keys {{ {KEY}; }}; }};
zone "{ZONE}" {{
    type secondary;
    primaries port {pport} {{ {pip} key {KEY}; }};
    file "{d}/{ZONE}.db";
    masterfile-format text;
    allow-notify {{ key {KEY}; }};
}};
"#
                );
                std::fs::write(dir.join("named.conf"), conf).unwrap();
                (
                    vec![
                        "/usr/sbin/named".into(),
                        "-g".into(),
                        "-c".into(),
                        dir.join("named.conf").display().to_string(),
                    ],
                    dir.join("named.log"),
                )
            }
            Kind::Knot => {
                let conf = format!(
                    r#"server:
    rundir: "{d}"
    listen: 127.0.0.1@{port}
key:
  - id: {KEY}
    algorithm: hmac-sha256
    secret: {SECRET}
remote:
  - id: primary
    address: {pip}@{pport}
    key: {KEY}
acl:
  - id: from_primary
    address: {pip}
    key: {KEY}
    action: notify
  - id: anyone
    address: 127.0.0.0/8
    action: transfer
database:
    storage: "{d}/db"
template:
  - id: default
    storage: "{d}"
    zonefile-sync: 0
    zonefile-load: none
    journal-content: changes
zone:
  - domain: {ZONE}
    master: primary
    acl: [from_primary, anyone]
    refresh-min-interval: 3600
log:
  - target: stderr
    any: info
"#
                );
                std::fs::write(dir.join("knot.conf"), conf).unwrap();
                std::fs::create_dir_all(dir.join("db")).unwrap();
                (
                    vec![
                        "/usr/sbin/knotd".into(),
                        "-c".into(),
                        dir.join("knot.conf").display().to_string(),
                    ],
                    dir.join("knot.log"),
                )
            }
            Kind::Nsd => {
                let conf = format!(
                    r#"server:
    ip-address: 127.0.0.1@{port}
    port: {port}
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "{d}"
    pidfile: "{d}/nsd.pid"
    database: ""
    xfrdfile: "{d}/xfrd.state"
    xfrdir: "{d}"
    zonelistfile: "{d}/zone.list"
    verbosity: 2
remote-control:
    control-enable: no
key:
    name: "{KEY}"
    algorithm: hmac-sha256
    secret: "{SECRET}"
zone:
    name: "{ZONE}"
    zonefile: "{ZONE}.zone"
    allow-notify: {pip} {KEY}
    request-xfr: {pip}@{pport} {KEY}
    provide-xfr: 127.0.0.0/8 NOKEY
"#
                );
                std::fs::write(dir.join("nsd.conf"), conf).unwrap();
                (
                    vec![
                        "/usr/sbin/nsd".into(),
                        "-d".into(),
                        "-c".into(),
                        dir.join("nsd.conf").display().to_string(),
                    ],
                    dir.join("nsd.log"),
                )
            }
        };
        let process =
            ManagedProcess::spawn(&command, &log, Lifetime::Owned).expect("secondary starts");
        Secondary {
            process: Some(process),
            addr,
            log,
            dir: dir.to_path_buf(),
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait_serial(&self, want: u32) {
        let addr = self.addr.clone();
        let log = self.log.clone();
        let got = tokio::time::timeout(WAIT, async {
            loop {
                if serial(&dig(&addr, &["+short", ZONE, "SOA"])) == Some(want) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        assert!(
            got.is_ok(),
            "secondary {addr} never reached serial {want}; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
}

/// What every secondary must do: take the zone, follow a change by NOTIFY + IXFR, and
/// hold what we serve.
async fn follows(kind: Kind, name: &str) -> (Etcd, Primary, Secondary) {
    let dir = unique_dir(name);
    let etcd = Etcd::start(&dir).await;
    seed(&etcd).await;
    let sec_dir = dir.join("secondary");
    std::fs::create_dir_all(&sec_dir).unwrap();
    // The secondary's port is chosen before our server starts, so it can be notified.
    let addr = format!("127.0.0.1:{}", free_port().unwrap());
    // Start the secondary first (it retries until the primary answers), then us.
    let secondary = Secondary::start(kind, &sec_dir, &addr);
    let primary = Primary::start(
        &etcd,
        &addr,
        free_port().unwrap(),
        std::slice::from_ref(&secondary.addr),
    )
    .await;
    let ours = serial(&dig(&primary.addr, &["+short", ZONE, "SOA"])).unwrap();
    secondary.wait_serial(ours).await;
    assert_eq!(
        axfr(&secondary.addr, false),
        axfr(&primary.addr, true),
        "initial copy"
    );

    let ixfr_before = primary
        .metric("kubefed_dns_transfers_total{kind=\"ixfr\",result=\"ok\"}")
        .await;
    let axfr_before = primary
        .metric("kubefed_dns_transfers_total{kind=\"axfr\",result=\"ok\"}")
        .await;
    let start = Instant::now();
    move_www(&etcd, "10.0.0.1", "10.0.0.9").await;
    let moved = eventually(WAIT, "our serial moves", || {
        let a = primary.addr.clone();
        async move { serial(&dig(&a, &["+short", ZONE, "SOA"])).filter(|s| *s != ours) }
    })
    .await;
    secondary.wait_serial(moved).await;
    let took = start.elapsed();
    // Refresh is an hour: only our NOTIFY can explain a new serial within the wait.
    assert!(took < WAIT, "{took:?}");
    let answer = dig(&secondary.addr, &["+short", "www.example.com", "A"]);
    assert!(
        answer.contains("10.0.0.9") && !answer.contains("10.0.0.1"),
        "{answer}"
    );
    assert!(
        primary
            .metric("kubefed_dns_transfers_total{kind=\"ixfr\",result=\"ok\"}")
            .await
            > ixfr_before,
        "the change went by IXFR; secondary log:\n{}",
        secondary.log_text()
    );
    // ... and was applied as such: no AXFR fell back after it.
    assert_eq!(
        primary
            .metric("kubefed_dns_transfers_total{kind=\"axfr\",result=\"ok\"}")
            .await,
        axfr_before,
        "an AXFR followed the IXFR; secondary log:\n{}",
        secondary.log_text()
    );
    assert!(
        primary
            .metric("kubefed_dns_notify_total{result=\"ok\"")
            .await
            >= 1.0
    );
    assert_eq!(
        axfr(&secondary.addr, false),
        axfr(&primary.addr, true),
        "copy after the change"
    );
    // Every name answers on the secondary as on our server.
    for (name, t) in [
        ("www.example.com", "A"),
        ("alias.example.com", "CNAME"),
        ("txt.example.com", "TXT"),
        ("_http._tcp.example.com", "SRV"),
        ("example.com", "NS"),
        ("ns1.ns.dns.example.com", "A"),
    ] {
        let mut a: Vec<String> = dig(&secondary.addr, &["+short", name, t])
            .lines()
            .map(String::from)
            .collect();
        let mut b: Vec<String> = dig(&primary.addr, &["+short", name, t])
            .lines()
            .map(String::from)
            .collect();
        a.sort();
        b.sort();
        assert_eq!(a, b, "{name} {t}");
        assert!(!a.is_empty(), "{name} {t}");
    }
    eprintln!("{name}: change reached the secondary in {took:?}");
    (etcd, primary, secondary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_follows_by_notify_and_ixfr_and_refusals_journal_and_restart_hold() {
    let (etcd, primary, secondary) = follows(Kind::Bind, "xfr-bind").await;

    // named-checkzone is clean on what BIND transferred (and on our AXFR).
    let zone_file = secondary.dir.join(format!("{ZONE}.db"));
    let out = std::process::Command::new("named-checkzone")
        .args([ZONE, &zone_file.display().to_string()])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        !text.contains("warning") && !text.contains("error"),
        "{text}"
    );

    // Refused: unsigned from a source outside the ACL (only key= rules), a wrong secret,
    // an unknown key.
    let a = &primary.addr;
    let unsigned = dig(a, &[ZONE, "AXFR"]);
    assert!(
        unsigned.contains("Transfer failed") && !unsigned.contains("IN\tA"),
        "{unsigned}"
    );
    let wrong = dig(
        a,
        &[
            ZONE,
            "AXFR",
            "-y",
            &format!("hmac-sha256:{KEY}:c2VjcmV0LXdyb25nLXdyb25nLXdyb25nLXdyb25nLTE="),
        ],
    );
    assert!(
        wrong.contains("BADSIG") && !wrong.contains("IN\tA"),
        "{wrong}"
    );
    let unknown = dig(
        a,
        &[ZONE, "AXFR", "-y", &format!("hmac-sha256:nokey:{SECRET}")],
    );
    assert!(
        unknown.contains("BADKEY") && !unknown.contains("IN\tA"),
        "{unknown}"
    );

    // A serial older than the journal (3 changes): the whole zone, in the IXFR answer.
    let y = tsig_arg();
    let full = axfr(a, true);
    for (i, to) in ["10.0.0.10", "10.0.0.11", "10.0.0.12", "10.0.0.13"]
        .iter()
        .enumerate()
    {
        let from = ["10.0.0.9", "10.0.0.10", "10.0.0.11", "10.0.0.12"][i];
        move_www(&etcd, from, to).await;
    }
    let now = eventually(WAIT, "the last change served", || {
        let a = a.clone();
        async move {
            dig(&a, &["+short", "www.example.com", "A"])
                .contains("10.0.0.13")
                .then(|| serial(&dig(&a, &["+short", ZONE, "SOA"])))
                .flatten()
        }
    })
    .await;
    let old = dig(a, &["+nocmd", "+nostats", ZONE, "IXFR=1", "-y", &y]);
    let records = old.lines().filter(|l| l.contains("\tIN\t")).count();
    assert_eq!(records, full.len() + 1, "AXFR form (SOA twice): {old}");
    // One serial back: a difference sequence (SOA new, SOA old, -, SOA new, +, SOA new).
    let recent = dig(
        a,
        &[
            "+nocmd",
            "+nostats",
            ZONE,
            &format!("IXFR={}", now - 1),
            "-y",
            &y,
        ],
    );
    let soas = recent.lines().filter(|l| l.contains("\tSOA\t")).count();
    assert!(soas >= 4 && recent.contains("10.0.0.12"), "{recent}");
    secondary.wait_serial(now).await;

    // Restarting our server with etcd unchanged keeps the serial; the secondary, told
    // by the start-up NOTIFY, checks the SOA and transfers nothing.
    let metrics_port = primary.metrics_port;
    let addr = primary.addr.clone();
    let up_to_date = || secondary.log_text().matches("is up to date").count();
    let checked_before = up_to_date();
    drop(primary);
    let primary = Primary::start(
        &etcd,
        &addr,
        metrics_port,
        std::slice::from_ref(&secondary.addr),
    )
    .await;
    assert_eq!(serial(&dig(&addr, &["+short", ZONE, "SOA"])), Some(now));
    eventually(WAIT, "the start-up NOTIFY acknowledged", || {
        let p = &primary;
        async move { (p.metric("kubefed_dns_notify_total{result=\"ok\"").await >= 1.0).then_some(()) }
    })
    .await;
    // BIND logs its verdict on the NOTIFY once it has compared the SOA.
    eventually(WAIT, "BIND found the zone up to date", || {
        let found = up_to_date() > checked_before;
        async move { found.then_some(()) }
    })
    .await;
    let transfers = primary
        .metric("kubefed_dns_transfers_total{kind=\"axfr\",result=\"ok\"}")
        .await
        + primary
            .metric("kubefed_dns_transfers_total{kind=\"ixfr\",result=\"ok\"}")
            .await
        + primary
            .metric("kubefed_dns_transfers_total{kind=\"ixfr\",result=\"full\"}")
            .await;
    assert_eq!(
        transfers,
        0.0,
        "no re-transfer; secondary log:\n{}",
        secondary.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knot_follows_by_notify_and_ixfr() {
    let _ = follows(Kind::Knot, "xfr-knot").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nsd_follows_by_notify_and_ixfr() {
    let _ = follows(Kind::Nsd, "xfr-nsd").await;
}

/// A listing shows no deletes: deleting the zone's newest key and restarting must
/// still give the serial a running replica has (the delete's revision, found by
/// replaying etcd's history after the listing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_deleting_the_newest_key_keeps_the_serial() {
    let dir = unique_dir("xfr-restart-delete");
    let etcd = Etcd::start(&dir).await;
    seed(&etcd).await;
    let addr = format!("127.0.0.1:{}", free_port().unwrap());
    let metrics_port = free_port().unwrap();
    let primary = Primary::start(&etcd, &addr, metrics_port, &[]).await;
    let mut c = etcd.client().await;
    c.put("/skydns/com/example/newest", r#"{"host":"10.9.9.9"}"#, None)
        .await
        .unwrap();
    // Something outside the zone moves etcd's revision too; it must not move the serial.
    c.put("/skydns/org/other/x", r#"{"host":"10.8.8.8"}"#, None)
        .await
        .unwrap();
    let deleted = c.delete("/skydns/com/example/newest", None).await.unwrap();
    let delete_rev = deleted.header().unwrap().revision() as u32;
    c.put("/skydns/org/other/y", r#"{"host":"10.8.8.9"}"#, None)
        .await
        .unwrap();
    let running = eventually(WAIT, "the delete served", || {
        let a = addr.clone();
        async move { serial(&dig(&a, &["+short", ZONE, "SOA"])).filter(|s| *s == delete_rev) }
    })
    .await;
    drop(primary);
    let _restarted = Primary::start(&etcd, &addr, metrics_port, &[]).await;
    assert_eq!(serial(&dig(&addr, &["+short", ZONE, "SOA"])), Some(running));
}

/// The embedded server's path (in-process entries, as `controller-manager
/// --dns-listen` hands them over): a zone whose entries did not change keeps its
/// serial across a hand-over, a changed zone gets a newer one, and an IXFR from the old
/// serial carries just the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_process_server_keeps_unchanged_zones_serials_and_serves_ixfr() {
    use kubefed::dns::server::{self, DnsMetrics, ServerConfig, Source, ZoneConfig, xfr};
    let mut cfg = ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        vec![],
        Source::InProcess,
        DnsMetrics::register(&prometheus::Registry::new()).unwrap(),
    );
    let mut x = xfr::XfrConfig::new(xfr::XfrMetrics::unregistered());
    x.acl = server::acl::Acl::parse(&["127.0.0.1/32"]).unwrap();
    cfg.xfr = Some(x);
    let dns = server::start(cfg).await.unwrap();
    let addr = dns.udp_addr.to_string();
    let zones = [
        ZoneConfig::new("example.com"),
        ZoneConfig::new("example.org"),
    ];
    let entries = |ip: &str| {
        vec![
            (
                key_of("www.example.com", ip),
                kubefed::dns::skydns::SkydnsValue::host(ip),
            ),
            (
                key_of("www.example.org", "10.1.1.1"),
                kubefed::dns::skydns::SkydnsValue::host("10.1.1.1"),
            ),
        ]
    };
    dns.index
        .replace_zones_and_entries(&zones, entries("10.0.0.1"))
        .unwrap();
    let soa = |zone: &str| serial(&dig(&addr, &["+short", zone, "SOA"])).unwrap();
    let (com, org) = (soa("example.com"), soa("example.org"));
    dns.index
        .replace_zones_and_entries(&zones, entries("10.0.0.2"))
        .unwrap();
    let com2 = eventually(WAIT, "example.com's serial moves", || {
        let a = addr.clone();
        async move { serial(&dig(&a, &["+short", "example.com", "SOA"])).filter(|s| *s != com) }
    })
    .await;
    assert!(com2.wrapping_sub(com) < 1 << 31, "newer: {com} -> {com2}");
    assert_eq!(
        soa("example.org"),
        org,
        "an unchanged zone keeps its serial"
    );
    // The journal may trail the swap by a moment.
    let ixfr = eventually(WAIT, "an IXFR with the change", || {
        let a = addr.clone();
        async move {
            let out = dig(
                &a,
                &["+nocmd", "+nostats", "example.com", &format!("IXFR={com}")],
            );
            (out.lines().filter(|l| l.contains("\tSOA\t")).count() == 4).then_some(out)
        }
    })
    .await;
    assert!(
        ixfr.contains("10.0.0.1") && ixfr.contains("10.0.0.2"),
        "{ixfr}"
    );
    let all = dig(&addr, &["+nocmd", "+nostats", "example.org", "AXFR"]);
    assert!(all.contains("10.1.1.1") && all.contains("NS"), "{all}");
}

/// The A addresses `addr` answers for `name` over UDP (one query, 200 ms timeout).
fn ask_a(addr: &str, name: &str) -> Vec<String> {
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{Name, RData, RecordType};
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut m = Message::query();
    m.metadata.id = 4242;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    sock.send_to(&m.to_vec().unwrap(), addr).unwrap();
    let mut buf = [0u8; 1500];
    let Ok((n, _)) = sock.recv_from(&mut buf) else {
        return Vec::new();
    };
    Message::from_vec(&buf[..n])
        .map(|m| {
            m.answers
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(a.0.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `docs/benchmarks.md`, "Propagation via NOTIFY": from an etcd write (the skydns
/// writer's delete + put) until a BIND secondary answers the new address, polling it
/// every 5 ms. `BENCH_CHANGES` changes (default 30), 500 ms apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: cargo test --test dns_xfr notify_propagation -- --ignored --nocapture"]
async fn notify_propagation_to_bind() {
    let changes: usize = std::env::var("BENCH_CHANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let dir = unique_dir("xfr-bench");
    let etcd = Etcd::start(&dir).await;
    seed(&etcd).await;
    let sec_dir = dir.join("secondary");
    std::fs::create_dir_all(&sec_dir).unwrap();
    let addr = format!("127.0.0.1:{}", free_port().unwrap());
    let secondary = Secondary::start(Kind::Bind, &sec_dir, &addr);
    let primary = Primary::start(
        &etcd,
        &addr,
        free_port().unwrap(),
        std::slice::from_ref(&secondary.addr),
    )
    .await;
    let ours = serial(&dig(&primary.addr, &["+short", ZONE, "SOA"])).unwrap();
    secondary.wait_serial(ours).await;
    let mut from = "10.0.0.1".to_string();
    let mut samples = Vec::new();
    let mut timeouts = 0;
    for i in 0..changes {
        let to = format!("10.0.1.{}", i % 250);
        let start = Instant::now();
        move_www(&etcd, &from, &to).await;
        let sec = secondary.addr.clone();
        let want = to.clone();
        let seen = tokio::task::spawn_blocking(move || {
            loop {
                let a = ask_a(&sec, "www.example.com.");
                if a.contains(&want) {
                    return Some(start.elapsed());
                }
                if start.elapsed() > Duration::from_secs(10) {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
        .await
        .unwrap();
        match seen {
            Some(d) => samples.push(d.as_secs_f64() * 1000.0),
            None => timeouts += 1,
        }
        from = to;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("samples in order (ms): {samples:.0?}");
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let q =
        |p: f64| samples[((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1];
    println!(
        "| via NOTIFY to a BIND secondary (etcd write -> secondary answer) | {} | {:.0} | {:.0} | {:.0} | {:.0} | {timeouts} |",
        samples.len(),
        q(0.5),
        q(0.9),
        q(0.99),
        samples.last().copied().unwrap_or(0.0)
    );
    assert_eq!(timeouts, 0);
}

/// The whole pipeline: a member cluster's Service load balancer IP changes; the
/// controller-manager's ServiceDNSRecord controller rewrites the DNSEndpoint, its skydns
/// writer puts it into etcd, our server's serial moves, and BIND, Knot and NSD follow by
/// NOTIFY + IXFR. Real host and member kube-apiservers (`KUBEFED_BIN_DIR`, as every federation
/// test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secondaries_follow_a_member_load_balancer_change_through_the_whole_pipeline() {
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use kube::api::{Api, Patch, PatchParams};
    use kubefed::kube::apply as kubeutil;
    const APP_NS: &str = "xfr-bridge";
    const NAME: &str = "web.xfr-bridge.xfr-domain.svc.example.com";
    let apply = || PatchParams::apply("test").force();
    let host = common::install_host().await;
    kubeutil::ensure_namespace(&host, APP_NS).await.unwrap();
    let domain = serde_json::json!({"apiVersion": "multiclusterdns.kubefed.io/v1alpha1",
        "kind": "Domain", "metadata": {"name": "xfr-domain", "namespace": "kube-federation-system"},
        "domain": ZONE});
    let domains: Api<kube::api::DynamicObject> = Api::namespaced_with(
        host.clone(),
        "kube-federation-system",
        &kube::discovery::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("multiclusterdns.kubefed.io", "v1alpha1", "Domain"),
            "domains",
        ),
    );
    domains
        .patch("xfr-domain", &apply(), &Patch::Apply(domain))
        .await
        .unwrap();
    let records: Api<kubefed::api::multiclusterdns::ServiceDNSRecord> =
        Api::namespaced(host.clone(), APP_NS);
    let record = serde_json::json!({"apiVersion": "multiclusterdns.kubefed.io/v1alpha1",
        "kind": "ServiceDNSRecord", "metadata": {"name": "web", "namespace": APP_NS},
        "spec": {"domainRef": "xfr-domain", "recordTTL": 60}});
    records
        .patch("web", &apply(), &Patch::Apply(record))
        .await
        .unwrap();
    // The member's Service with a load balancer and a ready endpoint.
    common::join("cluster2", "cluster2");
    let member = common::client("cluster2").await;
    kubeutil::ensure_namespace(&member, APP_NS).await.unwrap();
    let svcs: Api<Service> = Api::namespaced(member.clone(), APP_NS);
    let svc = serde_json::json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": APP_NS},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "selector": {"app": "web"}}});
    svcs.patch("web", &apply(), &Patch::Apply(svc))
        .await
        .unwrap();
    let slices: Api<EndpointSlice> = Api::namespaced(member.clone(), APP_NS);
    let slice = serde_json::json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-1", "namespace": APP_NS, "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": true}}],
        "ports": [{"port": 80, "protocol": "TCP"}]});
    slices
        .patch("web-1", &apply(), &Patch::Apply(slice))
        .await
        .unwrap();
    let put = |ip: &'static str| {
        let svcs = svcs.clone();
        async move {
            svcs.patch_status(
                "web",
                &PatchParams::default(),
                &Patch::Merge(
                    serde_json::json!({"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}),
                ),
            )
            .await
            .unwrap();
        }
    };
    put("10.7.0.1").await;
    let shared = common::federation();
    let etcd_url = shared.state.etcd.url.clone();
    let kc = shared.state.kubeconfig.display().to_string();
    let metrics = common::free_addr();
    let _cm = Daemon::start(
        &[
            "controller-manager",
            "--kubeconfig",
            &kc,
            "--context",
            common::host(),
            "--metrics-listen",
            &metrics,
            "--etcd-endpoints",
            &etcd_url,
        ],
        "xfr-controller-manager",
    );
    let dir = unique_dir("xfr-pipeline");
    let addr = format!("127.0.0.1:{}", free_port().unwrap());
    // BIND, Knot and NSD, each a TSIG secondary of our server.
    let secondaries: Vec<(&str, Secondary)> = [
        ("BIND", Kind::Bind),
        ("Knot", Kind::Knot),
        ("NSD", Kind::Nsd),
    ]
    .into_iter()
    .map(|(name, kind)| {
        let sec_dir = dir.join(name);
        std::fs::create_dir_all(&sec_dir).unwrap();
        (name, Secondary::start(kind, &sec_dir, &addr))
    })
    .collect();
    // Our server follows the federation's etcd, which the writer writes.
    let metrics_port = free_port().unwrap();
    let mut args: Vec<String> = vec![
        "dns-server".to_string(),
        "--zone".into(),
        ZONE.into(),
        "--etcd-endpoints".into(),
        etcd_url.clone(),
        "--listen".into(),
        addr.clone(),
        "--metrics-listen".into(),
        format!("127.0.0.1:{metrics_port}"),
        "--soa".into(),
        "refresh=3600,retry=3600".into(),
        "--nameserver".into(),
        "ns1.example.net".into(),
        "--tsig-key".into(),
        format!("{KEY}:hmac-sha256:{SECRET}"),
        "--allow-transfer".into(),
        format!("key={KEY}"),
    ];
    for (_, s) in &secondaries {
        args.push("--notify".into());
        args.push(format!("{},key={KEY}", s.addr));
    }
    let _primary = Daemon::start(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        "xfr-pipeline-primary",
    );
    for (name, s) in &secondaries {
        let sec = s.addr.clone();
        eventually(
            Duration::from_secs(60),
            &format!("{name} has the first address"),
            || {
                let sec = sec.clone();
                async move {
                    dig(&sec, &["+short", NAME, "A"])
                        .contains("10.7.0.1")
                        .then_some(())
                }
            },
        )
        .await;
    }
    let start = Instant::now();
    put("10.7.0.2").await;
    for (name, s) in &secondaries {
        let sec = s.addr.clone();
        eventually(WAIT, &format!("{name} has the new address"), || {
            let sec = sec.clone();
            async move {
                let a = dig(&sec, &["+short", NAME, "A"]);
                (a.contains("10.7.0.2") && !a.contains("10.7.0.1")).then_some(())
            }
        })
        .await;
        eprintln!(
            "the load balancer change reached {name} in {:?}",
            start.elapsed()
        );
    }
    let m = common::http_get(metrics_port, "/metrics")
        .await
        .unwrap_or_default();
    assert!(
        metric_value(
            &m,
            "kubefed_dns_transfers_total{kind=\"ixfr\",result=\"ok\"}"
        ) >= 3.0,
        "each by IXFR: {m}"
    );
    for (name, s) in &secondaries {
        assert_eq!(axfr(&s.addr, false), axfr(&addr, true), "{name}'s copy");
    }
}
