//! `docs/user-guide.md` followed literally: every `sh` block of the page, in order, as
//! one bash script (`set -euo pipefail`), with `kubefed` and `kubectl` on the PATH and
//! the local federation's kubeconfig (contexts `cluster1`, the host, and `cluster2`), in a
//! directory that has the repository's `examples/`. The guide cannot rot: a command that
//! fails, or an answer that is not the one it shows, fails this test. A healthy run logs
//! no ERROR line.

mod common;

use std::path::Path;

/// The `sh` blocks of a markdown page, in order.
fn sh_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(_), "```") => blocks.push(current.take().unwrap()),
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    blocks
}

#[test]
fn the_blocks_are_found_in_order() {
    let md = "a\n```sh\none\n```\n```text\nout\n```\n```sh\ntwo \\\n  more\n```\n";
    assert_eq!(sh_blocks(md), ["one\n", "two \\\n  more\n"]);
}

#[tokio::test]
async fn the_user_guide_runs_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let guide = std::fs::read_to_string(root.join("docs/user-guide.md")).unwrap();
    let blocks = sh_blocks(&guide);
    assert!(blocks.len() >= 6, "{} sh blocks", blocks.len());
    let script = format!(
        "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{}",
        blocks.join("")
    );

    let shared = common::federation();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(root.join("examples"), dir.path().join("examples")).unwrap();
    let kubefed_dir = Path::new(env!("CARGO_BIN_EXE_kubefed")).parent().unwrap();
    let kubectl_dir = Path::new(&common::kubectl())
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}:{}",
        kubefed_dir.display(),
        kubectl_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path)
        .env("KUBECONFIG", &shared.state.kubeconfig)
        .env_remove("KUBEFED_LOG")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let log =
        std::fs::read_to_string(dir.path().join("controller-manager.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "the guide failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- controller-manager.log\n{log}"
    );
    // The answers the guide shows.
    for ip in ["198.51.100.20", "203.0.113.10"] {
        assert!(stdout.lines().any(|l| l == ip), "dig answer {ip}: {stdout}");
    }
    assert!(stdout.contains("federated-xwings"), "{stdout}");
    assert!(
        stdout.contains("servicednsrecord.multiclusterdns.kubefed.io/test-service"),
        "{stdout}"
    );
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(
        errors.is_empty(),
        "ERROR lines on a healthy run:\n{}",
        errors.join("\n")
    );
    assert!(!stderr.contains("ERROR"), "{stderr}");
}
