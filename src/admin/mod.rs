//! Operations: the metrics/health HTTP endpoint shared by every long-running subcommand.

pub mod http;
