//! Member clusters: how the control plane reaches them (client), whether they are healthy
//! and where they are (health, prober), and the registry that keeps one client and one set of
//! shared watches per joined cluster (registry).

pub mod client;
pub mod health;
pub mod join;
pub mod prober;
pub mod registry;

/// An RFC 1123 label: what Kubernetes accepts as a KubeFedCluster name (and DNS as a label).
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// An RFC 1123 subdomain (`prod.eu`): what Kubernetes accepts as an object name, and so
/// as a KubeFedCluster name, as kubefedctl allows.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::{is_dns_label, is_dns_subdomain};

    #[test]
    fn cluster_names_may_be_rfc1123_subdomains() {
        for ok in ["a", "prod.eu", "us-east-1.prod"] {
            assert!(is_dns_subdomain(ok), "{ok}");
        }
        let long = ["a"; 128].join(".");
        for bad in ["", ".a", "a.", "a..b", "Prod.eu", "a_b.c", long.as_str()] {
            assert!(!is_dns_subdomain(bad), "{bad}");
        }
    }

    #[test]
    fn cluster_names_are_rfc1123_labels() {
        for ok in ["a", "cluster1", "us-east-1"] {
            assert!(is_dns_label(ok), "{ok}");
        }
        let long = "a".repeat(64);
        for bad in ["", "-a", "a-", "Cluster", "a.b", "a_b", long.as_str()] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }
}
