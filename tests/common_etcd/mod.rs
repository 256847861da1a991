//! A real etcd for DNS tests: its own free ports and data directory, stopped by PID when
//! dropped (and with the test binary: parent-death signal via `kubefed::localup`).
//! Also a TCP relay that can cut a client off from etcd (a network partition) while the
//! test keeps writing to etcd directly.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kubefed::localup::{Lifetime, ManagedProcess, free_port};

pub fn etcd_binary() -> PathBuf {
    let local = kubefed::localup::default_bin_dir().join("etcd");
    if local.is_file() {
        return local;
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("etcd");
        if p.is_file() {
            return p;
        }
    }
    panic!("etcd not found: run `make deps` (apt-get install -y etcd-server)");
}

pub struct Etcd {
    pub url: String,
    command: Vec<String>,
    log: PathBuf,
    process: Option<ManagedProcess>,
    tls: Option<EtcdTls>,
    /// Credentials of the test's own client once authentication is on.
    root: Option<(String, String)>,
}

/// Certificates for an etcd that requires TLS and client certificates: one CA signs the
/// server's (127.0.0.1, localhost) and a client's.
pub struct EtcdTls {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl EtcdTls {
    pub fn generate(dir: &Path) -> EtcdTls {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, SanType,
        };
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "etcd-test-ca");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let leaf = |cn: &str, usage: ExtendedKeyUsagePurpose| {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
            p.subject_alt_names
                .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
            p.distinguished_name.push(DnType::CommonName, cn);
            p.extended_key_usages = vec![usage];
            (
                p.signed_by(&key, &issuer).unwrap().pem(),
                key.serialize_pem(),
            )
        };
        // The client's CN is no etcd user, so the password is what authenticates it.
        let (server, server_key) = leaf("etcd", ExtendedKeyUsagePurpose::ServerAuth);
        let (client, client_key) = leaf("kubefed-client", ExtendedKeyUsagePurpose::ClientAuth);
        let tls = EtcdTls {
            ca: dir.join("etcd-ca.crt"),
            server_cert: dir.join("etcd-server.crt"),
            server_key: dir.join("etcd-server.key"),
            client_cert: dir.join("etcd-client.crt"),
            client_key: dir.join("etcd-client.key"),
        };
        for (path, pem) in [
            (&tls.ca, ca_cert.pem()),
            (&tls.server_cert, server),
            (&tls.server_key, server_key),
            (&tls.client_cert, client),
            (&tls.client_key, client_key),
        ] {
            std::fs::write(path, pem).unwrap();
        }
        tls
    }
}

impl Etcd {
    /// Starts etcd with data under `dir` and waits until it answers.
    pub async fn start(dir: &Path) -> Etcd {
        Etcd::start_with(dir, None).await
    }

    /// Starts etcd serving only TLS with client certificates required (`--client-cert-auth`).
    pub async fn start_tls(dir: &Path) -> Etcd {
        let tls = EtcdTls::generate(dir);
        Etcd::start_with(dir, Some(tls)).await
    }

    async fn start_with(dir: &Path, tls: Option<EtcdTls>) -> Etcd {
        let client = free_port().expect("free port");
        let peer = free_port().expect("free port");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let command: Vec<String> = vec![
            etcd_binary().display().to_string(),
            "--name".into(),
            "dns-test".into(),
            "--data-dir".into(),
            dir.join("etcd-data").display().to_string(),
            "--listen-client-urls".into(),
            url.clone(),
            "--advertise-client-urls".into(),
            url.clone(),
            "--listen-peer-urls".into(),
            peer_url.clone(),
            "--initial-advertise-peer-urls".into(),
            peer_url.clone(),
            "--initial-cluster".into(),
            format!("dns-test={peer_url}"),
            "--log-level".into(),
            "warn".into(),
        ];
        let mut command = command;
        if let Some(t) = &tls {
            for (flag, path) in [
                ("--cert-file", &t.server_cert),
                ("--key-file", &t.server_key),
                ("--trusted-ca-file", &t.ca),
            ] {
                command.push(flag.into());
                command.push(path.display().to_string());
            }
            command.push("--client-cert-auth".into());
        }
        let mut etcd = Etcd {
            url,
            command,
            log: dir.join("etcd.log"),
            process: None,
            tls,
            root: None,
        };
        etcd.resume().await;
        etcd
    }

    pub fn tls(&self) -> Option<&EtcdTls> {
        self.tls.as_ref()
    }

    fn options(&self) -> Option<etcd_client::ConnectOptions> {
        let mut opts = etcd_client::ConnectOptions::new();
        if let Some(t) = &self.tls {
            let read = |p: &PathBuf| std::fs::read(p).unwrap();
            opts = opts.with_tls(
                etcd_client::TlsOptions::new()
                    .ca_certificate(etcd_client::Certificate::from_pem(read(&t.ca)))
                    .identity(etcd_client::Identity::from_pem(
                        read(&t.client_cert),
                        read(&t.client_key),
                    )),
            );
        }
        if let Some((u, p)) = &self.root {
            opts = opts.with_user(u.clone(), p.clone());
        }
        Some(opts)
    }

    /// Turns etcd's authentication on: a root user, and `user` with `password` allowed
    /// to read and write keys under each of `prefixes`. The test's own client goes on
    /// as root.
    pub async fn enable_auth(&mut self, user: &str, password: &str, prefixes: &[&str]) {
        use etcd_client::Permission;
        let mut c = self.client().await;
        c.user_add("root", "root-pw", None).await.unwrap();
        c.user_grant_role("root", "root").await.unwrap();
        c.role_add("skydns").await.unwrap();
        for p in prefixes {
            c.role_grant_permission("skydns", Permission::read_write(*p).with_prefix())
                .await
                .unwrap();
        }
        c.user_add(user, password, None).await.unwrap();
        c.user_grant_role(user, "skydns").await.unwrap();
        c.auth_enable().await.unwrap();
        self.root = Some(("root".into(), "root-pw".into()));
    }

    /// Kills etcd (SIGTERM, then SIGKILL) by PID; its data stays.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }

    /// Starts etcd again on the same port and data, and waits until it answers.
    pub async fn resume(&mut self) {
        assert!(self.process.is_none(), "etcd already running");
        let p =
            ManagedProcess::spawn(&self.command, &self.log, Lifetime::Owned).expect("etcd starts");
        self.process = Some(p);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut c) = etcd_client::Client::connect([&self.url], self.options()).await
                && c.get("probe", None).await.is_ok()
            {
                return;
            }
            let exited = self.process.as_mut().and_then(|p| p.try_exit());
            assert!(
                exited.is_none(),
                "etcd exited ({exited:?}); log: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            assert!(
                Instant::now() < deadline,
                "etcd not ready; log: {}",
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn client(&self) -> etcd_client::Client {
        etcd_client::Client::connect([&self.url], self.options())
            .await
            .expect("etcd client")
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP relay to `target`; `cut()` drops every connection and refuses new ones until
/// `heal()`.
pub struct Relay {
    pub url: String,
    cut: Arc<AtomicBool>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    pub async fn start(target_url: &str) -> Relay {
        let target = target_url.trim_start_matches("http://").to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let cut = Arc::new(AtomicBool::new(false));
        let (tx, _) = tokio::sync::watch::channel(0u64);
        let generation = Arc::new(tx);
        let (cut2, gen2) = (cut.clone(), generation.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if cut2.load(Ordering::SeqCst) {
                    continue; // dropped: connection closed at once
                }
                let target = target.clone();
                let mut stop = gen2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = stop.changed() => {}
                    }
                });
            }
        });
        Relay {
            url,
            cut,
            generation,
            task,
        }
    }

    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}
