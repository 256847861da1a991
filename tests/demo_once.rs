//! `kubefed demo --once` (what `make demo` runs, in check mode): the whole multi-cluster
//! DNS workflow on a fresh local federation answers the global, region and zone names
//! and leaves no process behind; a healthy run shows no ERROR, and its logs go to the
//! file it names rather than between the answers.

mod common;

use std::process::Command;

#[test]
fn demo_once_answers_every_level_and_cleans_up() {
    let dir = common::unique_dir("demo-once");
    let out = Command::new(env!("CARGO_BIN_EXE_kubefed"))
        .args(["demo", "--once", "--state-dir"])
        .arg(&dir)
        .arg("--examples-dir")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.trim_end().ends_with("demo ok"), "{stdout}");
    for (name, answers) in kubefed::demo::expected_answers() {
        let shown = format!("{name} +short\n{}\n", answers.join("\n"));
        assert!(stdout.contains(&shown), "missing {shown:?} in\n{stdout}");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let log = dir.join("kubefed.log");
    assert!(
        stdout.contains(&format!("==> logging to {}", log.display())),
        "{stdout}"
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("INFO"), "the controllers log into {log:?}");
    assert!(
        !stdout.contains(" INFO ") && !stderr.contains(" INFO "),
        "{stdout}\n{stderr}"
    );
    for (what, text) in [
        ("stdout", &*stdout),
        ("stderr", &*stderr),
        ("the log", &*logged),
    ] {
        let errors: Vec<&str> = text.lines().filter(|l| l.contains("ERROR")).collect();
        assert!(
            errors.is_empty(),
            "ERROR in {what} of a healthy run: {errors:#?}"
        );
    }
    let state = kubefed::localup::State::load(&dir).unwrap();
    assert!(state.etcd.pid.is_none() && state.clusters.iter().all(|c| c.pid.is_none()));
}
