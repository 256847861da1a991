//! `kubefed render` as users run it: the built binary on the golden inputs under
//! `tests/golden/render/<case>/input.yaml`, compared byte for byte with `stdout.golden`
//! and `stderr.golden` beside them. `UPDATE_GOLDEN=1 cargo test --test render` rewrites
//! the golden files (review the diff before committing it).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kubefed::api::multiclusterdns::{DNSEndpoint, ServiceDNSRecord};
use kubefed::dns::records::{self, Resolved};

fn golden_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/render")
        .join(case)
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `kubefed render <args>` in the case's directory (so that messages name
/// `input.yaml`, not an absolute path), feeding `stdin` when given.
fn render(case: &str, args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubefed"))
        .arg("render")
        .args(args)
        .current_dir(golden_dir(case))
        .env_remove("KUBEFED_LOG")
        .env_remove("KUBEFED_LOG_FORMAT")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubefed binary runs");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn check_golden(case: &str, file: &str, got: &str) {
    let path = golden_dir(case).join(file);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run `UPDATE_GOLDEN=1 cargo test --test render` to create it",
            path.display()
        )
    });
    assert!(
        got == want,
        "{} differs from the output (UPDATE_GOLDEN=1 rewrites it)\n--- want\n{want}\n--- got\n{got}",
        path.display()
    );
}

fn golden_case(case: &str, args: &[&str], want_code: i32) -> Run {
    let run = render(case, args, None);
    assert_eq!(
        run.code, want_code,
        "{case}: exit status; stderr:\n{}",
        run.stderr
    );
    check_golden(case, "stdout.golden", &run.stdout);
    check_golden(case, "stderr.golden", &run.stderr);
    run
}

#[test]
fn seed_service_record_renders_like_kubefed() {
    golden_case("seed-service", &["-f", "input.yaml"], 0);
}

#[test]
fn every_service_rule_renders() {
    golden_case("service-rules", &["-f", "input.yaml"], 0);
}

/// `--resolve` looks load balancer hostnames up as the controller does; offline (the
/// default) their addresses are left out with a warning.
#[test]
fn resolve_looks_load_balancer_hostnames_up() {
    let run = golden_case("resolve", &["-f", "input.yaml", "--resolve"], 0);
    assert!(run.stdout.contains("\"127.0.0.1\""), "{}", run.stdout);
    let offline = render("resolve", &["-f", "input.yaml"], None);
    assert_eq!(offline.code, 0);
    assert!(!offline.stdout.contains("127.0.0.1"), "{}", offline.stdout);
    assert!(
        offline
            .stderr
            .contains("hostname localhost did not resolve (not looked up)"),
        "{}",
        offline.stderr
    );
}

#[test]
fn ingress_record_renders_with_a_warning_for_its_hostname() {
    golden_case("ingress", &["-f", "input.yaml", "-o", "yaml"], 0);
}

#[test]
fn kubectl_list_as_json_with_the_externaldns_copy() {
    golden_case(
        "list-json-externaldns",
        &[
            "-f",
            "input.yaml",
            "-o",
            "json",
            "--externaldns",
            "-n",
            "shop",
        ],
        0,
    );
}

#[test]
fn unrenderable_record_fails_but_the_others_are_printed() {
    golden_case("errors", &["-f", "input.yaml"], 1);
}

#[test]
fn stdin_gives_the_same_output_as_the_file() {
    let input = std::fs::read(golden_dir("seed-service").join("input.yaml")).unwrap();
    let from_stdin = render("seed-service", &["-f", "-"], Some(&input));
    let from_file = render("seed-service", &["-f", "input.yaml"], None);
    assert_eq!(from_stdin.code, 0, "{}", from_stdin.stderr);
    assert_eq!(from_stdin.stdout, from_file.stdout);
}

#[test]
fn missing_file_is_a_clear_error() {
    let run = render("seed-service", &["-f", "no-such-file.yaml"], None);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("reading no-such-file.yaml"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
}

/// The CLI is the library: what `render` prints parses back into exactly the DNSEndpoints
/// that `records::render_service` (the controller's function) builds from the input.
#[test]
fn printed_objects_are_what_the_controller_builds() {
    let run = golden_case("seed-service", &["-f", "input.yaml"], 0);
    let printed: Vec<DNSEndpoint> = serde_saphyr::from_multiple(&run.stdout).unwrap();

    let input = std::fs::read_to_string(golden_dir("seed-service").join("input.yaml")).unwrap();
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&input).unwrap();
    let built: Vec<DNSEndpoint> = docs
        .into_iter()
        .filter(|d| d["kind"] == "ServiceDNSRecord")
        .map(|d| {
            let rec: ServiceDNSRecord = serde_json::from_value(d).unwrap();
            records::render_service(&rec, &Resolved::new())
                .unwrap()
                .object
        })
        .collect();
    let parts = |v: &[DNSEndpoint]| {
        v.iter()
            .map(|e| (e.metadata.clone(), e.spec.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(parts(&printed), parts(&built));
    assert_eq!(built.len(), 1);
    assert_eq!(built[0].spec.endpoints.len(), 5);
}
