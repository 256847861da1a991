//! The controller-manager and dns-server as an operator runs them: SIGTERM stops the
//! controller-manager even when its output is closed (piped to `head`), it finds its
//! kubeconfig through a `$KUBECONFIG` list, JSON logs carry `message` at the top level,
//! and `/metrics` has the process metrics and `kubefed_build_info`, with the
//! `kubefed_dns_etcd_*` series only where etcd feeds the DNS server.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

fn get(addr: &str, path: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sf", "--max-time", "2", &format!("http://{addr}{path}")])
        .output()
        .expect("curl is installed");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn sigterm_stops_the_controller_manager_whose_output_is_closed() {
    common::install_host().await;
    let dir = common::unique_dir("closed-output");
    let kubeconfig = &common::federation().state.kubeconfig;
    // Found through a list whose first file does not exist, as kubectl allows.
    let list = std::env::join_paths([dir.join("absent"), kubeconfig.clone()]).unwrap();
    let metrics = common::free_addr();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubefed"));
    cmd.args([
        "controller-manager",
        "--context",
        "cluster1",
        "--metrics-listen",
        &metrics,
        "--lease-name",
        "closed-output",
        "--identity",
        "closed-output",
    ])
    .env("KUBECONFIG", &list)
    .env("KUBEFED_LOG", "debug")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = kubefed::localup::spawn_owned(cmd).expect("kubefed starts");
    // Both readers gone: every log line from now on hits a closed pipe.
    drop(child.stdout.take());
    drop(child.stderr.take());
    // Leading means it has loaded the kubeconfig, reached the host and logged a lot.
    wait_for("/readyz (leading)", || get(&metrics, "/readyz").is_some());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running 10 s after SIGTERM with its output closed");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn json_logs_and_metrics_of_the_controller_manager_with_embedded_dns() {
    common::install_host().await;
    let kc = common::federation().state.kubeconfig.display().to_string();
    let metrics = common::free_addr();
    let dns = common::free_addr();
    let daemon = common::Daemon::start(
        &[
            "controller-manager",
            "--kubeconfig",
            &kc,
            "--context",
            "cluster1",
            "--metrics-listen",
            &metrics,
            "--dns-listen",
            &dns,
            "--lease-name",
            "json-logs",
            "--log-format",
            "json",
        ],
        "cm-json",
    );
    wait_for("/readyz", || get(&metrics, "/readyz").is_some());
    let body = get(&metrics, "/metrics").unwrap();
    for want in [
        "process_resident_memory_bytes ",
        "process_start_time_seconds ",
        "kubefed_dns_index_entries ",
    ] {
        assert!(body.contains(want), "no {want} in\n{body}");
    }
    let info = body
        .lines()
        .find(|l| l.starts_with("kubefed_build_info{"))
        .unwrap_or_else(|| panic!("no kubefed_build_info in\n{body}"));
    assert!(
        info.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION")))
            && info.contains("git_commit=\"")
            && info.contains("target=\"")
            && info.ends_with(" 1"),
        "{info}"
    );
    // The embedded server has no etcd: no etcd revision, lag or resyncs to report.
    assert!(!body.contains("kubefed_dns_etcd_"), "{body}");

    wait_for("a log line", || !daemon.log_text().is_empty());
    let log = daemon.log_text();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["message"].is_string(), "no top-level message: {line}");
        assert!(v.get("fields").is_none(), "fields nested: {line}");
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
    }
}

#[tokio::test]
async fn the_etcd_fed_dns_server_reports_its_revision() {
    let etcd = common::federation().state.etcd.url.clone();
    let metrics = common::free_addr();
    let _daemon = common::Daemon::start(
        &[
            "dns-server",
            "--zone",
            "example.com",
            "--etcd-endpoints",
            &etcd,
            "--etcd-prefix",
            "/operability-skydns",
            "--listen",
            &common::free_addr(),
            "--metrics-listen",
            &metrics,
        ],
        "dns-server",
    );
    wait_for("/readyz", || get(&metrics, "/readyz").is_some());
    let body = get(&metrics, "/metrics").unwrap();
    for want in [
        "kubefed_dns_etcd_revision ",
        "process_resident_memory_bytes ",
        "kubefed_build_info{",
    ] {
        assert!(body.contains(want), "no {want} in\n{body}");
    }
    let rev: i64 = body
        .lines()
        .find_map(|l| l.strip_prefix("kubefed_dns_etcd_revision "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        rev > 0,
        "revision {rev}: the shared etcd has data, so a loaded index is past 0"
    );
}

#[test]
fn an_invalid_log_filter_is_refused() {
    let out = common::kubefed(&["--log", "info,kubefed=loud", "crds"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: invalid --log filter"), "{err}");
    assert!(out.stdout.is_empty(), "nothing runs with a bad filter");
}

#[test]
fn version_names_the_commit_date_and_target() {
    let out = common::kubefed(&["version"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!("kubefed {}\n", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    // Built from a git checkout: the commit is HEAD's.
    let head = Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "HEAD"])
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    assert!(
        text.contains(&format!("git commit: {head}\n")),
        "{text} (HEAD {head})"
    );
    assert!(
        text.contains("build date: 20") && text.contains("target:     x86_64"),
        "{text}"
    );
    let json = common::kubefed(&["version", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["gitCommit"], head.as_str());
    assert_eq!(common::kubefed(&["--version"]).stdout, out.stdout);
}

#[test]
fn completion_scripts_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F _kubefed"),
        ("zsh", "#compdef kubefed"),
        ("fish", "complete -c kubefed"),
    ] {
        let out = common::kubefed(&["completion", shell]);
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(marker), "{shell}: no {marker:?}");
        assert!(
            text.contains("orphaning-deletion"),
            "{shell}: subcommands missing"
        );
    }
    let out = common::kubefed(&["completion", "tcsh"]);
    assert!(!out.status.success());
}

#[test]
fn crds_output_is_a_format_and_the_directory_its_own_flag() {
    let n = kubefed::api::crds().len();
    let out = common::kubefed(&["crds", "-o", "json"]);
    assert!(out.status.success());
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().unwrap().len(), n);
    let yaml = common::kubefed(&["crds"]);
    assert_eq!(yaml.stdout, common::kubefed(&["crds", "-o", "yaml"]).stdout);
    assert_eq!(
        String::from_utf8_lossy(&yaml.stdout)
            .matches("kind: CustomResourceDefinition")
            .count(),
        n
    );

    let dir = common::unique_dir("crds-out");
    let out = common::kubefed(&["crds", "--output-dir", dir.to_str().unwrap()]);
    assert!(out.status.success() && out.stdout.is_empty());
    for f in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/crds")).unwrap() {
        let f = f.unwrap();
        assert_eq!(
            std::fs::read(f.path()).unwrap(),
            std::fs::read(dir.join(f.file_name())).unwrap(),
            "{:?}",
            f.file_name()
        );
    }
    // The old spelling no longer makes a directory named after the format.
    let cwd = common::unique_dir("crds-cwd");
    let out = Command::new(env!("CARGO_BIN_EXE_kubefed"))
        .args(["crds", "-o", "yaml-dir"])
        .current_dir(&cwd)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values: yaml, json"));
    assert_eq!(std::fs::read_dir(&cwd).unwrap().count(), 0);
}

/// build.rs itself, compiled and run as cargo runs it: in this checkout it stamps HEAD;
/// in a source tarball (no .git), even one unpacked inside another git work tree, the
/// commit is `unknown` and the build still succeeds; SOURCE_DATE_EPOCH fixes the date.
#[test]
fn build_metadata_works_from_a_checkout_and_from_a_tarball() {
    let repo = env!("CARGO_MANIFEST_DIR");
    let dir = common::unique_dir("build-rs");
    let exe = dir.join("build-script");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc)
        .args(["--edition", "2024", "-o"])
        .arg(&exe)
        .arg(format!("{repo}/build.rs"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stamp = |manifest_dir: &std::path::Path| {
        let out = Command::new(&exe)
            .env("CARGO_MANIFEST_DIR", manifest_dir)
            .env("TARGET", "x86_64-unknown-linux-gnu")
            .env("SOURCE_DATE_EPOCH", "951782400")
            .env_remove("KUBEFED_GIT_COMMIT")
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let head = Command::new("git")
        .args(["-C", repo, "rev-parse", "HEAD"])
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    let here = stamp(std::path::Path::new(repo));
    assert!(
        here.contains(&format!("KUBEFED_GIT_COMMIT={head}\n")),
        "{here}"
    );
    assert!(
        here.contains("KUBEFED_BUILD_DATE=2000-02-29T00:00:00Z\n"),
        "{here}"
    );

    // `git archive` is what a release tarball holds; unpack it inside this work tree's
    // target dir (a git work tree, but not the tarball's).
    let tarball = dir.join("src");
    std::fs::create_dir_all(&tarball).unwrap();
    let archive = Command::new("git")
        .args([
            "-C",
            repo,
            "archive",
            "--format=tar",
            "HEAD",
            "build.rs",
            "Cargo.toml",
        ])
        .output()
        .unwrap();
    assert!(archive.status.success());
    let mut untar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(&tarball)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    untar
        .stdin
        .take()
        .unwrap()
        .write_all(&archive.stdout)
        .unwrap();
    assert!(untar.wait().unwrap().success());
    let there = stamp(&tarball);
    assert!(there.contains("KUBEFED_GIT_COMMIT=unknown\n"), "{there}");
    assert!(
        there.contains("KUBEFED_TARGET=x86_64-unknown-linux-gnu\n"),
        "{there}"
    );
}
