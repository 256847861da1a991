//! Operations: the metrics/health HTTP endpoint shared by every long-running subcommand,
//! leader election, and the build and process metrics.

pub mod build_info;
pub mod http;
pub mod leader;
