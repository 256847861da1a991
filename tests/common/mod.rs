//! The local control plane shared by the tests of one test binary.
//!
//! Started once, on first use, from its own thread and runtime so that no test's runtime
//! owns it; its processes die with the test binary (parent-death signal, see
//! `kubefed::localup`). Each test builds its own clients: a kube client is bound to the
//! runtime it was made in.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kubefed::localup::{LocalFederation, Options, State};

pub struct Shared {
    pub state: State,
    /// Held across awaits by tests that stop or restart a cluster.
    pub fed: tokio::sync::Mutex<LocalFederation>,
}

/// Number of clusters of the shared federation: a host and two members.
pub const CLUSTERS: usize = 3;

pub fn federation() -> &'static Shared {
    // A failed start is kept, not retried by every test of the binary.
    static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();
    let shared = SHARED.get_or_init(|| {
        let dir = unique_dir("fed");
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            let fed = rt
                .block_on(LocalFederation::start(Options::new(&dir, CLUSTERS)))
                .map_err(|e| e.to_string())?;
            Ok(Shared {
                state: fed.state().clone(),
                fed: tokio::sync::Mutex::new(fed),
            })
        })
        .join()
        .expect("control plane thread")
    });
    match shared {
        Ok(s) => s,
        Err(e) => panic!("local control plane failed to start: {e}"),
    }
}

/// A fresh directory under cargo's target tmp dir, kept after the run for inspection
/// until the next test binary starts (see [`prune_finished_runs`]).
pub fn unique_dir(prefix: &str) -> PathBuf {
    static PRUNED: std::sync::Once = std::sync::Once::new();
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    PRUNED.call_once(|| prune_finished_runs(&root));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = root.join(format!("{prefix}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Removes the directories of test processes that have exited. Each holds an etcd data
/// directory (two 62 MiB preallocated WAL files), so keeping every run's would fill the
/// disk of a machine that runs the suite often. `cargo test` stops after the first
/// failing test binary, so a failure's directories survive until the next run.
fn prune_finished_runs(root: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let mut parts = name.rsplitn(3, '-');
        let (Some(_nanos), Some(pid), Some(_prefix)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

pub async fn client(cluster: &str) -> kube::Client {
    let shared = federation();
    kubefed::localup::client_for_context(&shared.state.kubeconfig, cluster)
        .await
        .expect("client")
}

pub fn host() -> &'static str {
    "cluster1"
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The kubectl built into .cache/bin by `make bins`.
pub fn kubectl() -> PathBuf {
    let p = kubefed::localup::default_bin_dir().join("kubectl");
    assert!(p.is_file(), "{} missing: run `make bins`", p.display());
    p
}

/// `kubectl --context CTX ARGS...` against the shared federation, which must succeed;
/// its standard output.
pub fn run_kubectl(ctx: &str, args: &[&str]) -> String {
    let kc = federation().state.kubeconfig.display().to_string();
    let out = std::process::Command::new(kubectl())
        .args(["--kubeconfig", &kc, "--context", ctx])
        .args(args)
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the kubefed binary to completion.
pub fn kubefed(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_kubefed"))
        .args(args)
        .output()
        .expect("kubefed runs")
}

/// `kubefed` with the shared federation's kubeconfig appended.
pub fn kubefed_fed(args: &[&str]) -> std::process::Output {
    let kc = federation().state.kubeconfig.display().to_string();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--kubeconfig", kc.as_str()]);
    kubefed(&all)
}

/// A long-running kubefed subcommand, killed (by PID) when dropped.
pub struct Daemon {
    pub child: std::process::Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(args: &[&str], log_name: &str) -> Daemon {
        Daemon::start_with_env(args, log_name, &[])
    }

    /// [`Daemon::start`] with extra environment variables.
    pub fn start_with_env(args: &[&str], log_name: &str, env: &[(&str, &str)]) -> Daemon {
        let log = unique_dir("logs").join(format!("{log_name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kubefed"));
        cmd.args(args)
            .env("KUBEFED_LOG", "info,kubefed=debug")
            .envs(env.iter().copied())
            .stdout(out)
            .stderr(err);
        // Dies with the test binary even if no Drop runs (a fixture held in a static).
        let child = kubefed::localup::spawn_owned(cmd).expect("kubefed starts");
        Daemon { child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a graceful exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        self.child.wait().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn free_addr() -> String {
    format!("127.0.0.1:{}", kubefed::localup::free_port().unwrap())
}

/// The host with the KubeFed namespace and every CRD installed (idempotent).
pub async fn install_host() -> kube::Client {
    let host = client(host()).await;
    kubefed::kube::apply::ensure_namespace(&host, kubefed::api::DEFAULT_KUBEFED_NAMESPACE)
        .await
        .unwrap();
    kubefed::kube::apply::apply_crds(&host, &kubefed::api::crds(), Duration::from_secs(60))
        .await
        .unwrap();
    host
}

/// `kubefed join NAME --cluster-context CTX --host-cluster-context cluster1`, which must succeed.
pub fn join(name: &str, ctx: &str) {
    let out = kubefed_fed(&[
        "join",
        name,
        "--cluster-context",
        ctx,
        "--host-cluster-context",
        host(),
    ]);
    assert!(
        out.status.success(),
        "join {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `dig @ADDR -p PORT ARGS...` (1 s timeout, 2 tries); its standard output.
pub fn dig(addr: &str, args: &[&str]) -> String {
    let (ip, port) = addr.rsplit_once(':').unwrap();
    let out = std::process::Command::new("dig")
        .args([&format!("@{ip}"), "-p", port, "+time=1", "+tries=2"])
        .args(args)
        .output()
        .expect("dig is installed (apt-get install bind9-dnsutils)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A plain HTTP/1.1 GET on loopback (the servers' /metrics, /readyz): the whole response,
/// headers included; `None` when the connection fails.
pub async fn http_get(port: u16, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    Some(out)
}
