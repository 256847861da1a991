//! etcd TLS and authentication end to end: an etcd that serves only TLS, requires client
//! certificates and has authentication on. `kubefed dns-server` reads its skydns prefix
//! with a CA, a client certificate and a user/password (the password from the
//! environment, as ExternalDNS takes it), and refuses to serve what it cannot read (a
//! wrong password, no client certificate: SERVFAIL, never an empty zone); flags that
//! cannot work are command-line errors. The controller-manager's skydns writer writes a
//! DNSEndpoint into the same etcd with the same flags.

mod common;
mod common_etcd;

use std::time::Duration;

use common_etcd::Etcd;
use kube::api::{Api, Patch, PatchParams};
use kubefed::api::multiclusterdns::DNSEndpoint;
use kubefed::api::{self, DEFAULT_KUBEFED_NAMESPACE as NS};
use kubefed::kube::apply as kubeutil;
use serde_json::json;

const USER: &str = "kubefed";
const PASSWORD: &str = "s3cret-pw";

fn dig(addr: &str, name: &str) -> String {
    common::dig(addr, &[name, "A", "+tries=1", "+time=2"])
}

/// The TLS flags for `etcd`, and the user's.
fn tls_args(etcd: &Etcd) -> Vec<String> {
    let t = etcd.tls().unwrap();
    vec![
        "--etcd-endpoints".into(),
        etcd.url.clone(),
        "--etcd-cacert".into(),
        t.ca.display().to_string(),
        "--etcd-cert".into(),
        t.client_cert.display().to_string(),
        "--etcd-key".into(),
        t.client_key.display().to_string(),
        "--etcd-username".into(),
        USER.into(),
    ]
}

fn dns_server(args: &[String], password: &str, name: &str) -> (common::Daemon, String) {
    let listen = common::free_addr();
    let mut all: Vec<String> = vec![
        "dns-server".into(),
        "--zone".into(),
        "example.com".into(),
        "--listen".into(),
        listen.clone(),
    ];
    all.extend(args.iter().cloned());
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let d = common::Daemon::start_with_env(&all, name, &[("ETCD_PASSWORD", password)]);
    (d, listen)
}

#[tokio::test]
async fn dns_server_and_writer_use_a_tls_etcd_with_certificates_and_a_password() {
    let dir = tempfile::tempdir().unwrap();
    let mut etcd = Etcd::start_tls(dir.path()).await;
    etcd.enable_auth(USER, PASSWORD, &["/skydns/", "/kubefed-owners/"])
        .await;
    let mut root = etcd.client().await;
    root.put("/skydns/com/example/www/x", r#"{"host":"10.0.0.1"}"#, None)
        .await
        .unwrap();

    let args = tls_args(&etcd);
    let (_ok, addr) = dns_server(&args, PASSWORD, "dns-server-tls");
    common::eventually(
        Duration::from_secs(30),
        "www served over TLS etcd",
        || async {
            dig(&addr, "www.example.com")
                .contains("10.0.0.1")
                .then_some(())
        },
    )
    .await;

    // What cannot read etcd serves SERVFAIL, not NXDOMAIN: a wrong password, or no
    // client certificate.
    let (bad_pw_server, bad_pw) = dns_server(&args, "wrong", "dns-server-bad-password");
    let no_cert: Vec<String> = args
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            let flag = |j: usize| args.get(j).map(String::as_str);
            !matches!(flag(*i), Some("--etcd-cert" | "--etcd-key"))
                && !matches!(flag(i.wrapping_sub(1)), Some("--etcd-cert" | "--etcd-key"))
        })
        .map(|(_, a)| a.clone())
        .collect();
    let (no_cert_server, no_cert_addr) = dns_server(&no_cert, PASSWORD, "dns-server-no-cert");
    for (what, server, addr) in [
        ("wrong password", &bad_pw_server, &bad_pw),
        ("no client certificate", &no_cert_server, &no_cert_addr),
    ] {
        // Once etcd has turned it away, it still answers, with SERVFAIL.
        let refused = format!("{what}: refused by etcd");
        common::eventually(Duration::from_secs(30), &refused, || async {
            server.log_text().contains("etcd unavailable").then_some(())
        })
        .await;
        let out = dig(addr, "www.example.com");
        assert!(out.contains("status: SERVFAIL"), "{what}: {out}");
    }

    // Flags that cannot work are refused before anything starts.
    let mut half = vec![
        "dns-server",
        "--zone",
        "example.com",
        "--listen",
        "127.0.0.1:0",
    ];
    half.extend(["--etcd-endpoints", &etcd.url, "--etcd-cert", "/tmp/x.pem"]);
    let out = common::kubefed(&half);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--etcd-cert and --etcd-key go together"),
        "{err}"
    );
    let plain = [
        "dns-server",
        "--zone",
        "example.com",
        "--listen",
        "127.0.0.1:0",
        "--etcd-endpoints",
        "http://127.0.0.1:1",
        "--etcd-cacert",
        "/etc/hostname",
    ];
    let out = common::kubefed(&plain);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no etcd endpoint is https://"), "{err}");

    // The writer: a DNSEndpoint in the host reaches the same etcd, and is served.
    let host = common::client(common::host()).await;
    kubeutil::ensure_namespace(&host, NS).await.unwrap();
    kubeutil::ensure_namespace(&host, "tls").await.unwrap();
    kubeutil::apply_crds(&host, &api::crds(), Duration::from_secs(60))
        .await
        .unwrap();
    let eps: Api<DNSEndpoint> = Api::namespaced(host.clone(), "tls");
    let ep = json!({"apiVersion": "multiclusterdns.kubefed.io/v1alpha1", "kind": "DNSEndpoint",
        "metadata": {"name": "written", "namespace": "tls"},
        "spec": {"endpoints": [{"dnsName": "written.example.com", "recordType": "A", "recordTTL": 60, "targets": ["10.0.0.9"]}]}});
    eps.patch(
        "written",
        &PatchParams::apply("test").force(),
        &Patch::Apply(ep),
    )
    .await
    .unwrap();
    let kc = common::federation().state.kubeconfig.display().to_string();
    let metrics = common::free_addr();
    let mut cm: Vec<String> = vec![
        "controller-manager".into(),
        "--kubeconfig".into(),
        kc,
        "--context".into(),
        "cluster1".into(),
        "--metrics-listen".into(),
        metrics,
    ];
    cm.extend(args.iter().cloned());
    let cm: Vec<&str> = cm.iter().map(String::as_str).collect();
    let _cm =
        common::Daemon::start_with_env(&cm, "controller-manager", &[("ETCD_PASSWORD", PASSWORD)]);
    common::eventually(
        Duration::from_secs(60),
        "the writer's record served",
        || async {
            dig(&addr, "written.example.com")
                .contains("10.0.0.9")
                .then_some(())
        },
    )
    .await;
}
