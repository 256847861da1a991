//! The local control plane: one etcd and N kube-apiservers (one per cluster) on loopback,
//! with TLS, RBAC, token authentication and a service-account signing key, as used by the
//! integration tests and by `kubefed demo`.
//!
//! Layout of the state directory (stable: scripts and tests rely on it):
//!
//! ```text
//! DIR/kubeconfig           one context per cluster, named like the cluster
//! DIR/state.json           State: etcd url/pid, each cluster's name/context/apiUrl/pid/command
//! DIR/etcd/                etcd data and etcd.log
//! DIR/<cluster>/           certificates, token file, apiserver.log
//! ```
//!
//! Ownership: a [`LocalFederation`] started with [`Lifetime::Owned`] stops every process it
//! started when dropped, and its processes are also tied to the life of the current process
//! (Linux parent-death signal), so a test binary that aborts leaves nothing behind.
//! [`Lifetime::Detached`] (`kubefed demo up`) leaves them running; [`stop_state_dir`]
//! stops them later by PID, after checking each PID still runs the binary it started.

mod certs;
mod process;

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use process::{ManagedProcess, alive as process_alive, spawn_owned};

#[derive(Debug, Error)]
pub enum LocalUpError {
    #[error("{binary} not found at {path} (run `make bins`, which builds it into .cache/bin)")]
    MissingBinary { binary: String, path: PathBuf },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("generating certificates: {0}")]
    Certs(#[from] rcgen::Error),
    #[error("{what} did not become ready within {timeout:?}; last error: {last_error}; log: {log}")]
    NotReady {
        what: String,
        timeout: Duration,
        last_error: String,
        log: PathBuf,
    },
    #[error("state file {path}: {message}")]
    State { path: PathBuf, message: String },
    #[error("no cluster named {0} in this federation")]
    UnknownCluster(String),
}

type Result<T, E = LocalUpError> = std::result::Result<T, E>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LocalUpError {
    let what = what.into();
    move |source| LocalUpError::Io { what, source }
}

/// Whether the processes live and die with the [`LocalFederation`] value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifetime {
    Owned,
    Detached,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub state_dir: PathBuf,
    pub clusters: usize,
    /// Where `kube-apiserver` lives (etcd is looked up here first, then on PATH).
    pub bin_dir: PathBuf,
    pub lifetime: Lifetime,
    pub ready_timeout: Duration,
}

impl Options {
    pub fn new(state_dir: impl Into<PathBuf>, clusters: usize) -> Self {
        Options {
            state_dir: state_dir.into(),
            clusters,
            bin_dir: default_bin_dir(),
            lifetime: Lifetime::Owned,
            ready_timeout: Duration::from_secs(90),
        }
    }
}

/// `$KUBEFED_BIN_DIR`, else `.cache/bin` of the source tree this binary was built from.
pub fn default_bin_dir() -> PathBuf {
    std::env::var_os("KUBEFED_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/bin"))
}

/// What `state.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub kubeconfig: PathBuf,
    pub etcd: EtcdState,
    pub clusters: Vec<ClusterState>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EtcdState {
    pub url: String,
    pub pid: Option<u32>,
    pub command: Vec<String>,
    pub log: PathBuf,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterState {
    pub name: String,
    pub context: String,
    pub api_url: String,
    pub pid: Option<u32>,
    /// The full kube-apiserver command line, to restart the cluster on the same port.
    pub command: Vec<String>,
    pub log: PathBuf,
    /// The static bearer token of the cluster's admin user (group system:masters).
    pub admin_token: String,
    /// PEM of the CA that signed the cluster's serving certificate.
    pub ca_file: PathBuf,
}

impl State {
    pub fn load(state_dir: &Path) -> Result<State> {
        let path = state_dir.join("state.json");
        let text = fs::read_to_string(&path).map_err(io(format!("reading {}", path.display())))?;
        serde_json::from_str(&text).map_err(|e| LocalUpError::State {
            path,
            message: e.to_string(),
        })
    }

    fn save(&self, state_dir: &Path) -> Result<()> {
        let path = state_dir.join("state.json");
        let tmp = state_dir.join("state.json.tmp");
        let text = serde_json::to_string_pretty(self).expect("state serialises");
        fs::write(&tmp, text).map_err(io(format!("writing {}", tmp.display())))?;
        fs::rename(&tmp, &path).map_err(io(format!("writing {}", path.display())))
    }

    pub fn cluster(&self, name: &str) -> Option<&ClusterState> {
        self.clusters.iter().find(|c| c.name == name)
    }
}

/// A running local federation.
pub struct LocalFederation {
    dir: PathBuf,
    state: State,
    lifetime: Lifetime,
    etcd: Option<ManagedProcess>,
    apiservers: Vec<Option<ManagedProcess>>,
    ready_timeout: Duration,
}

/// Cluster names: `cluster1`..`clusterN`; `cluster1` is the host.
pub fn cluster_name(index: usize) -> String {
    format!("cluster{}", index + 1)
}

/// A free TCP port on 127.0.0.1 (the listener is closed before returning; callers start
/// the server right away and retry on a lost race).
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(io("binding a free port"))?;
    Ok(l.local_addr().map_err(io("reading a free port"))?.port())
}

impl LocalFederation {
    /// Starts etcd and the API servers and waits until every API server is ready.
    pub async fn start(opts: Options) -> Result<LocalFederation> {
        let dir = opts.state_dir.clone();
        fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let dir = dir
            .canonicalize()
            .map_err(io(format!("resolving {}", dir.display())))?;
        let apiserver_bin = opts.bin_dir.join("kube-apiserver");
        if !apiserver_bin.is_file() {
            return Err(LocalUpError::MissingBinary {
                binary: "kube-apiserver".into(),
                path: apiserver_bin,
            });
        }
        let etcd_bin = find_etcd(&opts.bin_dir)?;

        let etcd_dir = dir.join("etcd");
        fs::create_dir_all(&etcd_dir).map_err(io("creating etcd dir"))?;
        let client_port = free_port()?;
        let peer_port = free_port()?;
        let etcd_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let etcd_command = vec![
            etcd_bin.display().to_string(),
            "--name=default".into(),
            format!("--data-dir={}", etcd_dir.join("data").display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=default={peer_url}"),
            "--log-level=warn".into(),
            // The API servers' watch cache and our dns-server rely on progress and
            // compaction behaving as in production, so no tuning beyond quotas.
            "--quota-backend-bytes=4294967296".into(),
        ];
        let etcd_log = etcd_dir.join("etcd.log");

        let mut clusters = Vec::with_capacity(opts.clusters);
        for i in 0..opts.clusters {
            let name = cluster_name(i);
            let cdir = dir.join(&name);
            fs::create_dir_all(&cdir).map_err(io(format!("creating {}", cdir.display())))?;
            let files = certs::write_cluster_files(&cdir, &name)?;
            let port = free_port()?;
            let api_url = format!("https://127.0.0.1:{port}");
            let command = apiserver_command(&apiserver_bin, &etcd_url, &name, port, &files);
            clusters.push(ClusterState {
                context: name.clone(),
                name,
                api_url,
                pid: None,
                command,
                log: cdir.join("apiserver.log"),
                admin_token: files.admin_token.clone(),
                ca_file: files.ca_cert.clone(),
            });
        }
        let kubeconfig = dir.join("kubeconfig");
        let state = State {
            kubeconfig: kubeconfig.clone(),
            etcd: EtcdState {
                url: etcd_url,
                pid: None,
                command: etcd_command,
                log: etcd_log,
            },
            clusters,
        };
        write_kubeconfig(&kubeconfig, &state)?;

        let mut fed = LocalFederation {
            dir,
            apiservers: (0..state.clusters.len()).map(|_| None).collect(),
            state,
            lifetime: opts.lifetime,
            etcd: None,
            ready_timeout: opts.ready_timeout,
        };
        fed.start_etcd().await?;
        for i in 0..fed.state.clusters.len() {
            fed.spawn_apiserver(i)?;
        }
        fed.save()?;
        for i in 0..fed.state.clusters.len() {
            fed.wait_apiserver_ready(i).await?;
        }
        Ok(fed)
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn state_dir(&self) -> &Path {
        &self.dir
    }

    pub fn kubeconfig_path(&self) -> &Path {
        &self.state.kubeconfig
    }

    pub fn cluster_names(&self) -> Vec<String> {
        self.state.clusters.iter().map(|c| c.name.clone()).collect()
    }

    pub fn etcd_url(&self) -> &str {
        &self.state.etcd.url
    }

    /// A client for a cluster's admin context.
    pub async fn client(&self, cluster: &str) -> Result<kube::Client, kube::Error> {
        client_for_context(&self.state.kubeconfig, cluster).await
    }

    /// Leaves the processes running after this value is dropped (`kubefed demo up`).
    pub fn detach(mut self) -> State {
        self.lifetime = Lifetime::Detached;
        self.state.clone()
    }

    fn index(&self, cluster: &str) -> Result<usize> {
        self.state
            .clusters
            .iter()
            .position(|c| c.name == cluster)
            .ok_or_else(|| LocalUpError::UnknownCluster(cluster.to_string()))
    }

    /// Stops one cluster's API server (SIGTERM; its data stays in etcd).
    pub fn stop_cluster(&mut self, cluster: &str) -> Result<()> {
        let i = self.index(cluster)?;
        if let Some(mut p) = self.apiservers[i].take() {
            p.stop();
        }
        self.state.clusters[i].pid = None;
        self.save()
    }

    /// Kills one cluster's API server with SIGKILL, as a crash: no graceful shutdown,
    /// open connections are reset. [`Self::start_cluster`] brings it back.
    pub fn kill_cluster(&mut self, cluster: &str) -> Result<()> {
        let i = self.index(cluster)?;
        if let Some(mut p) = self.apiservers[i].take() {
            p.kill();
        }
        self.state.clusters[i].pid = None;
        self.save()
    }

    /// Freezes one cluster's API server (SIGSTOP): connections stay open and nothing
    /// answers, like a hung machine. [`Self::resume_cluster`] thaws it.
    pub fn pause_cluster(&mut self, cluster: &str) -> Result<()> {
        self.signal_cluster(cluster, nix::sys::signal::Signal::SIGSTOP)
    }

    /// Thaws a cluster frozen by [`Self::pause_cluster`] (SIGCONT).
    pub fn resume_cluster(&mut self, cluster: &str) -> Result<()> {
        self.signal_cluster(cluster, nix::sys::signal::Signal::SIGCONT)
    }

    fn signal_cluster(&mut self, cluster: &str, sig: nix::sys::signal::Signal) -> Result<()> {
        let i = self.index(cluster)?;
        let p = self.apiservers[i]
            .as_mut()
            .ok_or_else(|| LocalUpError::Io {
                what: format!("signalling {cluster}"),
                source: std::io::Error::other("its API server is not running"),
            })?;
        p.signal(sig)
            .map_err(io(format!("sending {sig} to the API server of {cluster}")))
    }

    /// Kills etcd with SIGKILL, as a crash; [`Self::start_etcd`] brings it back with the
    /// same data and port.
    pub fn kill_etcd(&mut self) -> Result<()> {
        if let Some(mut p) = self.etcd.take() {
            p.kill();
        }
        self.state.etcd.pid = None;
        self.save()
    }

    /// Starts a stopped or killed cluster's API server again with the same arguments (so
    /// on the same port) and waits until it is ready.
    pub async fn start_cluster(&mut self, cluster: &str) -> Result<()> {
        let i = self.index(cluster)?;
        if self.apiservers[i].is_none() {
            self.spawn_apiserver(i)?;
            self.save()?;
        }
        self.wait_apiserver_ready(i).await
    }

    /// Stops etcd (the API servers stay up and report it unavailable).
    pub fn stop_etcd(&mut self) -> Result<()> {
        if let Some(mut p) = self.etcd.take() {
            p.stop();
        }
        self.state.etcd.pid = None;
        self.save()
    }

    /// Starts etcd again with the same data and port.
    pub async fn start_etcd(&mut self) -> Result<()> {
        if self.etcd.is_none() {
            let p = ManagedProcess::spawn(
                &self.state.etcd.command,
                &self.state.etcd.log,
                self.lifetime,
            )?;
            self.state.etcd.pid = Some(p.pid());
            self.etcd = Some(p);
            self.save()?;
        }
        let addr = self
            .state
            .etcd
            .url
            .trim_start_matches("http://")
            .to_string();
        let log = self.state.etcd.log.clone();
        let etcd = self.etcd.as_mut().expect("just started");
        wait_until(self.ready_timeout, "etcd", &log, etcd, || {
            let addr = addr.clone();
            async move {
                tokio::net::TcpStream::connect(&addr)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        })
        .await
    }

    fn spawn_apiserver(&mut self, i: usize) -> Result<()> {
        let c = &mut self.state.clusters[i];
        let p = ManagedProcess::spawn(&c.command, &c.log, self.lifetime)?;
        c.pid = Some(p.pid());
        self.apiservers[i] = Some(p);
        Ok(())
    }

    async fn wait_apiserver_ready(&mut self, i: usize) -> Result<()> {
        let kubeconfig = self.state.kubeconfig.clone();
        let c = self.state.clusters[i].clone();
        let proc_ = self.apiservers[i].as_mut().expect("apiserver started");
        wait_until(
            self.ready_timeout,
            &format!("kube-apiserver of {}", c.name),
            &c.log,
            proc_,
            || {
                let kubeconfig = kubeconfig.clone();
                let ctx = c.context.clone();
                async move {
                    let client = client_for_context(&kubeconfig, &ctx)
                        .await
                        .map_err(|e| e.to_string())?;
                    let req = http::Request::get("/readyz")
                        .body(Vec::new())
                        .map_err(|e| e.to_string())?;
                    let body = client.request_text(req).await.map_err(|e| e.to_string())?;
                    if body.trim() == "ok" {
                        Ok(())
                    } else {
                        Err(body)
                    }
                }
            },
        )
        .await
    }

    fn save(&self) -> Result<()> {
        self.state.save(&self.dir)
    }

    /// Stops everything this value started (API servers first, then etcd).
    pub fn stop(&mut self) {
        for p in self.apiservers.iter_mut() {
            if let Some(mut p) = p.take() {
                p.stop();
            }
        }
        if let Some(mut p) = self.etcd.take() {
            p.stop();
        }
        for c in &mut self.state.clusters {
            c.pid = None;
        }
        self.state.etcd.pid = None;
        let _ = self.save();
    }
}

impl Drop for LocalFederation {
    fn drop(&mut self) {
        match self.lifetime {
            Lifetime::Owned => self.stop(),
            Lifetime::Detached => {
                for p in self
                    .apiservers
                    .iter_mut()
                    .chain(std::iter::once(&mut self.etcd))
                {
                    if let Some(p) = p.take() {
                        p.release();
                    }
                }
            }
        }
    }
}

/// Stops the processes of a detached federation (`kubefed demo down`). A PID is signalled
/// only while it still runs the command recorded for it, so a reused PID is never hit.
/// Returns the PIDs it stopped.
pub fn stop_state_dir(state_dir: &Path) -> Result<Vec<u32>> {
    let mut state = State::load(state_dir)?;
    let mut stopped = Vec::new();
    for c in state.clusters.iter_mut() {
        if let Some(pid) = c.pid.take()
            && process::stop_pid_if_running(pid, &c.command[0])
        {
            stopped.push(pid);
        }
    }
    if let Some(pid) = state.etcd.pid.take()
        && process::stop_pid_if_running(pid, &state.etcd.command[0])
    {
        stopped.push(pid);
    }
    state.save(state_dir)?;
    Ok(stopped)
}

async fn wait_until<F, Fut>(
    timeout: Duration,
    what: &str,
    log: &Path,
    proc_: &mut ManagedProcess,
    mut check: F,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<(), String>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_error = String::from("not checked yet");
    while Instant::now() < deadline {
        if let Some(status) = proc_.try_exit() {
            return Err(LocalUpError::NotReady {
                what: what.to_string(),
                timeout,
                last_error: format!("process exited with {status}"),
                log: log.to_path_buf(),
            });
        }
        match check().await {
            Ok(()) => return Ok(()),
            Err(e) => last_error = e,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(LocalUpError::NotReady {
        what: what.to_string(),
        timeout,
        last_error,
        log: log.to_path_buf(),
    })
}

fn find_etcd(bin_dir: &Path) -> Result<PathBuf> {
    let local = bin_dir.join("etcd");
    if local.is_file() {
        return Ok(local);
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        let p = dir.join("etcd");
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(LocalUpError::MissingBinary {
        binary: "etcd".into(),
        path: local,
    })
}

fn apiserver_command(
    bin: &Path,
    etcd_url: &str,
    name: &str,
    port: u16,
    f: &certs::ClusterFiles,
) -> Vec<String> {
    let p = |p: &Path| p.display().to_string();
    vec![
        p(bin),
        format!("--etcd-servers={etcd_url}"),
        // One etcd for all clusters, one key prefix each.
        format!("--etcd-prefix=/registry-{name}"),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        format!("--secure-port={port}"),
        format!("--cert-dir={}", p(&f.dir)),
        format!("--tls-cert-file={}", p(&f.serving_cert)),
        format!("--tls-private-key-file={}", p(&f.serving_key)),
        format!("--client-ca-file={}", p(&f.ca_cert)),
        format!("--token-auth-file={}", p(&f.token_file)),
        "--authorization-mode=RBAC".into(),
        format!("--service-account-key-file={}", p(&f.sa_pub)),
        format!("--service-account-signing-key-file={}", p(&f.sa_key)),
        "--service-account-issuer=https://kubernetes.default.svc".into(),
        // Only allocated, never routed: no kube-proxy runs.
        "--service-cluster-ip-range=10.96.0.0/16".into(),
        "--allow-privileged=true".into(),
        // No kube-controller-manager runs, so nothing would create token Secrets or
        // default ServiceAccounts that this plugin waits for.
        "--disable-admission-plugins=ServiceAccount".into(),
        "--enable-priority-and-fairness=false".into(),
        "--profiling=false".into(),
        "--v=1".into(),
    ]
}

fn write_kubeconfig(path: &Path, state: &State) -> Result<()> {
    use base64::Engine;
    let mut clusters = Vec::new();
    let mut users = Vec::new();
    let mut contexts = Vec::new();
    for c in &state.clusters {
        let ca = fs::read(&c.ca_file).map_err(io("reading CA"))?;
        clusters.push(serde_json::json!({
            "name": c.name,
            "cluster": {
                "server": c.api_url,
                "certificate-authority-data": base64::engine::general_purpose::STANDARD.encode(ca),
            }
        }));
        users.push(serde_json::json!({"name": format!("{}-admin", c.name), "user": {"token": c.admin_token}}));
        contexts.push(serde_json::json!({
            "name": c.context,
            "context": {"cluster": c.name, "user": format!("{}-admin", c.name)}
        }));
    }
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": clusters,
        "users": users,
        "contexts": contexts,
        "current-context": state.clusters.first().map(|c| c.context.clone()).unwrap_or_default(),
        "preferences": {},
    });
    let text = serde_saphyr::to_string(&doc).expect("kubeconfig serialises");
    fs::write(path, text).map_err(io(format!("writing {}", path.display())))
}

/// A kube client for one context of a kubeconfig file.
pub async fn client_for_context(
    kubeconfig: &Path,
    context: &str,
) -> Result<kube::Client, kube::Error> {
    let kc =
        kube::config::Kubeconfig::read_from(kubeconfig).map_err(kube::Error::InferKubeconfig)?;
    let opts = kube::config::KubeConfigOptions {
        context: Some(context.to_string()),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kc, &opts)
        .await
        .map_err(kube::Error::InferKubeconfig)?;
    kube::Client::try_from(config)
}
