//! Kubernetes plumbing shared by the whole binary: applying CRDs and YAML (`apply`, used
//! by the CLI, the demo and the tests), watches shared through one reflector store per
//! resource with a fast-recovering backoff (`watch`), the controller runtime every
//! controller runs on (`controller`, over `kube::runtime::Controller`), and finding the
//! kubeconfig as kubectl does (`kubeconfig`).
//!
//! This module is named after the crate it wraps; inside this crate it is always
//! reached as `crate::kube`, and `kube::` means the kube crate.

pub mod apply;
pub mod controller;
pub mod kubeconfig;
pub mod ratelimit;
pub mod watch;

pub use apply::FIELD_MANAGER;

use std::fmt;

/// A kube error as one short line for logs, status messages and the CLI.
///
/// `kube::Error`'s own Display appends the whole API `Status` in Debug form (several
/// hundred characters, repeated on every retry); the API server's message already says
/// what went wrong, so that and the code are kept.
pub struct Brief<'a>(pub &'a kube::Error);

impl fmt::Display for Brief<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            kube::Error::Api(s) => {
                let message = if s.message.is_empty() {
                    "no message"
                } else {
                    s.message.trim()
                };
                write!(f, "{message} (")?;
                if !s.reason.is_empty() {
                    write!(f, "{}, ", s.reason)?;
                }
                write!(f, "{})", s.code)
            }
            e => e.fmt(f),
        }
    }
}

/// A watch error as one short line ([`Brief`] for the kube error inside).
pub struct BriefWatch<'a>(pub &'a kube::runtime::watcher::Error);

impl fmt::Display for BriefWatch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use kube::runtime::watcher::Error as W;
        match self.0 {
            W::InitialListFailed(e) => write!(f, "listing: {}", Brief(e)),
            W::WatchStartFailed(e) => write!(f, "starting the watch: {}", Brief(e)),
            W::WatchFailed(e) => write!(f, "watching: {}", Brief(e)),
            W::WatchError(s) => write!(f, "watching: {} ({})", s.message.trim(), s.code),
            e => e.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn not_found() -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            message: "servicednsrecords.multiclusterdns.kubefed.io \"x\" not found".into(),
            reason: "NotFound".into(),
            code: 404,
            ..Default::default()
        }))
    }

    #[test]
    fn an_api_error_is_its_message_reason_and_code() {
        let e = not_found();
        assert_eq!(
            Brief(&e).to_string(),
            "servicednsrecords.multiclusterdns.kubefed.io \"x\" not found (NotFound, 404)"
        );
        // What Brief exists to avoid.
        assert!(e.to_string().contains("Status {"), "{e}");
        let w = kube::runtime::watcher::Error::InitialListFailed(not_found());
        assert_eq!(
            BriefWatch(&w).to_string(),
            "listing: servicednsrecords.multiclusterdns.kubefed.io \"x\" not found (NotFound, 404)"
        );
    }
}
