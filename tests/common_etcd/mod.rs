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
}

impl Etcd {
    /// Starts etcd with data under `dir` and waits until it answers.
    pub async fn start(dir: &Path) -> Etcd {
        let client = free_port().expect("free port");
        let peer = free_port().expect("free port");
        let url = format!("http://127.0.0.1:{client}");
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
        let mut etcd = Etcd {
            url,
            command,
            log: dir.join("etcd.log"),
            process: None,
        };
        etcd.resume().await;
        etcd
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
            if let Ok(mut c) = etcd_client::Client::connect([&self.url], None).await
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
        etcd_client::Client::connect([&self.url], None)
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
