//! Patterns and limits shared by the CRD schemas, so that the API server refuses a bad
//! object with a message that names the field, before any controller sees it.

/// An RFC 1123 label, as Kubernetes object names of clusters, namespaces and DNS labels use.
pub const DNS_LABEL: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// An RFC 1123 subdomain (Kubernetes object names such as a `domainRef`).
pub const DNS_SUBDOMAIN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// A DNS name as users write zones and hostnames: labels of letters, digits and hyphens
/// (case-insensitive, DNS is), at most 63 characters each, an optional trailing dot.
pub const DNS_NAME: &str = r"^([A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?\.?$";

/// Like [`DNS_NAME`], with an optional leading `*.` wildcard label (ingress hosts, endpoints).
pub const DNS_NAME_WILDCARD: &str = r"^(\*\.)?([A-Za-z0-9_]([-A-Za-z0-9_]{0,61}[A-Za-z0-9_])?\.)*[A-Za-z0-9_]([-A-Za-z0-9_]{0,61}[A-Za-z0-9_])?\.?$";

/// Longest DNS name in presentation form (RFC 1035 §2.3.4, without the final dot).
pub const DNS_NAME_MAX: u32 = 253;

/// Largest TTL a resolver must honour (RFC 2181 §8: 2^31 - 1).
pub const TTL_MAX: i64 = 2_147_483_647;

/// An RFC 1035 label (a resource's version and plural name, as KubeFed validates them).
pub const DNS_1035_LABEL: &str = r"^[a-z]([-a-z0-9]*[a-z0-9])?$";

/// A kind: an RFC 1035 label once lower-cased (KubeFed's check).
pub const API_KIND: &str = r"^[A-Za-z]([-A-Za-z0-9]*[A-Za-z0-9])?$";

/// An API group: empty (the core group) or an RFC 1123 subdomain.
pub const API_GROUP: &str = r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// A Go `time.Duration` string as `metav1.Duration` accepts it (`10s`, `1m30s`, `500ms`).
pub const GO_DURATION: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";

#[cfg(test)]
mod tests {
    //! The API server is the real judge (tests/crds.rs); these table tests pin the shapes
    //! the patterns promise, through the `regex` crate whose syntax matches RE2's here.
    use super::*;
    use regex::Regex;

    fn check(pattern: &str, good: &[&str], bad: &[&str]) {
        let re = Regex::new(pattern).unwrap();
        for s in good {
            assert!(re.is_match(s), "{pattern} should accept {s:?}");
        }
        for s in bad {
            assert!(!re.is_match(s), "{pattern} should refuse {s:?}");
        }
    }

    #[test]
    fn dns_label_is_rfc1123() {
        check(
            DNS_LABEL,
            &["a", "cluster1", "a-b"],
            &["", "-a", "a-", "A", "a.b", "a_b"],
        );
    }

    #[test]
    fn dns_subdomain_allows_dots_not_empty_labels() {
        check(
            DNS_SUBDOMAIN,
            &["test-domain", "a.b.c"],
            &["a..b", ".a", "A.b", "a_b"],
        );
    }

    #[test]
    fn dns_name_allows_case_and_trailing_dot() {
        let long_label = "a".repeat(64);
        check(
            DNS_NAME,
            &["example.com", "Example.COM.", "a", "x-1.y"],
            &[
                "",
                "exa mple.com",
                "-a.com",
                "a..com",
                "*.example.com",
                long_label.as_str(),
            ],
        );
    }

    #[test]
    fn wildcard_only_as_first_label() {
        check(
            DNS_NAME_WILDCARD,
            &[
                "*.example.com",
                "_srv._tcp.example.com",
                "ingress.example.com",
            ],
            &["a.*.com", "**.com", "exa mple.com"],
        );
    }

    #[test]
    fn go_durations() {
        check(
            GO_DURATION,
            &["10s", "1m30s", "500ms", "1.5h"],
            &["", "10", "s", "-1s"],
        );
    }
}
