//! `kubefed demo up` / `down` from the outside, as a shell user runs them: every cluster
//! answers `kubectl get ns` through its context, and `down` leaves no process behind.

mod common;

use std::path::Path;
use std::process::Command;

use kubefed::localup::State;

fn kubefed(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kubefed"))
        .args(args)
        .arg("--state-dir")
        .arg(dir)
        .output()
        .expect("kubefed runs")
}

fn alive(pid: u32) -> bool {
    kubefed::localup::process_alive(pid)
}

#[test]
fn demo_up_leaves_a_federation_running_and_down_stops_every_process() {
    let dir = common::unique_dir("demo");
    let up = kubefed(&["demo", "up", "--clusters", "2"], &dir);
    assert!(
        up.status.success(),
        "demo up failed: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    // Each step is announced as it starts, and nothing reads as an error.
    let shown = String::from_utf8_lossy(&up.stdout);
    for step in [
        "==> starting etcd and 2 kube-apiservers",
        "==> installing the namespace",
    ] {
        assert!(shown.contains(step), "no {step:?} in\n{shown}");
    }
    let both = format!("{shown}{}", String::from_utf8_lossy(&up.stderr));
    assert!(!both.contains("ERROR"), "{both}");

    let state = State::load(&dir).expect("state.json written");
    assert_eq!(
        state
            .clusters
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["cluster1", "cluster2"]
    );
    let mut pids: Vec<u32> = state
        .clusters
        .iter()
        .map(|c| c.pid.expect("cluster pid"))
        .collect();
    pids.push(state.etcd.pid.expect("etcd pid"));
    assert!(
        pids.iter().all(|p| alive(*p)),
        "processes of demo up must outlive the command"
    );

    // A second `up` on the same directory is refused instead of orphaning the first.
    let again = kubefed(&["demo", "up", "--clusters", "2"], &dir);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a running federation"));

    for c in &state.clusters {
        let out = Command::new(common::kubectl())
            .arg("--kubeconfig")
            .arg(dir.join("kubeconfig"))
            .args(["--context", &c.context, "get", "ns"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("kube-system"),
            "{}: {text} {}",
            c.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The host got the kubefed namespace and CRDs.
    let out = Command::new(common::kubectl())
        .arg("--kubeconfig")
        .arg(dir.join("kubeconfig"))
        .args([
            "--context",
            "cluster1",
            "get",
            "crd",
            "servicednsrecords.multiclusterdns.kubefed.io",
            "-o",
            "name",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let down = kubefed(&["demo", "down"], &dir);
    assert!(
        down.status.success(),
        "demo down failed: {}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&down.stdout).trim(),
        format!("stopped {} processes", pids.len())
    );
    for pid in pids {
        assert!(!alive(pid), "pid {pid} still running after demo down");
    }
    let after = State::load(&dir).unwrap();
    assert!(after.etcd.pid.is_none() && after.clusters.iter().all(|c| c.pid.is_none()));
}
