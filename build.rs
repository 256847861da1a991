//! Build metadata for `kubefed version` and `kubefed_build_info`: the git commit, the
//! build date and the target triple.
//!
//! Works without git: a source tarball has no `.git`, and then the commit is
//! `$KUBEFED_GIT_COMMIT` or `unknown`. `$SOURCE_DATE_EPOCH` fixes the date for
//! reproducible builds. Only files that exist are watched, because cargo reruns a build
//! script on every build when a watched file is missing, and that would recompile the
//! crate each time.

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The commit of this checkout, if the manifest dir is the top of a git work tree (not a
/// tarball unpacked inside some other repository).
fn commit(dir: &Path) -> Option<String> {
    let top = PathBuf::from(git(dir, &["rev-parse", "--show-toplevel"])?);
    if top.canonicalize().ok()? != dir.canonicalize().ok()? {
        return None;
    }
    for rel in ["HEAD", "packed-refs"] {
        watch(dir, git(dir, &["rev-parse", "--git-path", rel]));
    }
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watch(dir, git(dir, &["rev-parse", "--git-path", &branch]));
    }
    git(dir, &["rev-parse", "HEAD"])
}

fn watch(dir: &Path, path: Option<String>) {
    if let Some(p) = path {
        let p = dir.join(p);
        if p.exists() {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    }
}

/// Seconds since the epoch as `YYYY-MM-DDThh:mm:ssZ` (days to civil date after Howard
/// Hinnant's `civil_from_days`).
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    println!("cargo:rerun-if-env-changed=KUBEFED_GIT_COMMIT");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    println!("cargo:rerun-if-changed=build.rs");
    let commit = std::env::var("KUBEFED_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| commit(&dir))
        .unwrap_or_else(|| "unknown".into());
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        });
    println!("cargo:rustc-env=KUBEFED_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=KUBEFED_BUILD_DATE={}", rfc3339(secs));
    println!(
        "cargo:rustc-env=KUBEFED_TARGET={}",
        std::env::var("TARGET").unwrap()
    );
}
