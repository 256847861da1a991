//! Operations: the metrics/health HTTP endpoint shared by every long-running subcommand,
//! and leader election.

pub mod http;
pub mod leader;
