//! Kubernetes plumbing shared by the whole binary: applying CRDs and YAML (`apply`, used
//! by the CLI, the demo and the tests), watches shared through one reflector store per
//! resource with a fast-recovering backoff (`watch`), and the controller runtime every
//! controller runs on (`controller`, over `kube::runtime::Controller`).
//!
//! This module is named after the crate it wraps; inside this crate it is always
//! reached as `crate::kube`, and `kube::` means the kube crate.

pub mod apply;
pub mod controller;
pub mod ratelimit;
pub mod watch;

pub use apply::FIELD_MANAGER;
