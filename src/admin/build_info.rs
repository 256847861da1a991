//! What this binary is: version, git commit, build date and target (stamped by
//! `build.rs`), for `kubefed version` and the `kubefed_build_info` metric, and the
//! process metrics every long-running subcommand exports.

use prometheus::{IntGaugeVec, Opts, Registry};
use serde::Serialize;

/// The build of the running binary.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BuildInfo {
    pub version: &'static str,
    pub git_commit: &'static str,
    pub build_date: &'static str,
    pub target: &'static str,
}

pub const BUILD: BuildInfo = BuildInfo {
    version: env!("CARGO_PKG_VERSION"),
    git_commit: env!("KUBEFED_GIT_COMMIT"),
    build_date: env!("KUBEFED_BUILD_DATE"),
    target: env!("KUBEFED_TARGET"),
};

/// Registers `kubefed_build_info{version,git_commit,build_date,target} 1` and, on Linux,
/// the standard `process_*` metrics (CPU, memory, file descriptors, start time).
pub fn register(registry: &Registry) -> prometheus::Result<()> {
    let info = IntGaugeVec::new(
        Opts::new(
            "kubefed_build_info",
            "The running kubefed build; always 1, the build is in the labels",
        ),
        &["version", "git_commit", "build_date", "target"],
    )?;
    info.with_label_values(&[
        BUILD.version,
        BUILD.git_commit,
        BUILD.build_date,
        BUILD.target,
    ])
    .set(1);
    registry.register(Box::new(info))?;
    #[cfg(target_os = "linux")]
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_info_and_process_metrics_are_exported() {
        let r = Registry::new();
        register(&r).unwrap();
        let names: Vec<String> = r.gather().iter().map(|m| m.name().to_string()).collect();
        assert!(names.iter().any(|n| n == "kubefed_build_info"), "{names:?}");
        assert!(
            names.iter().any(|n| n == "process_resident_memory_bytes"),
            "{names:?}"
        );
        assert!(!BUILD.git_commit.is_empty() && BUILD.build_date.ends_with('Z'));
    }
}
