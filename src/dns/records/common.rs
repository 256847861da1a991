//! What the Service and Ingress rules share: turning a load balancer status into addresses,
//! building address/CNAME endpoints, merging endpoints of the same name, checking names.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::LoadBalancerStatus;

use super::{
    Endpoint, Problem, RECORD_TYPE_A, RECORD_TYPE_AAAA, RECORD_TYPE_CNAME, Resolution, Resolved,
    lb_targets,
};
use crate::api::multiclusterdns::DEFAULT_RECORD_TTL;

/// A load balancer's addresses split by family, as canonical text. `BTreeSet<String>`
/// sorts as strings, which is the order KubeFed wrote targets in (`10.0.0.10` before
/// `10.0.0.2`); keeping it keeps the output byte-identical.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Addresses {
    pub v4: BTreeSet<String>,
    pub v6: BTreeSet<String>,
}

impl Addresses {
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    pub fn insert(&mut self, ip: IpAddr) {
        // `::ffff:a.b.c.d` is an IPv4 address in IPv6 clothing: publish it as A.
        match ip.to_canonical() {
            IpAddr::V4(v4) => self.v4.insert(v4.to_string()),
            IpAddr::V6(v6) => self.v6.insert(v6.to_string()),
        };
    }

    pub fn extend(&mut self, other: &Addresses) {
        self.v4.extend(other.v4.iter().cloned());
        self.v6.extend(other.v6.iter().cloned());
    }
}

/// The addresses of one cluster's load balancer. Like KubeFed, an entry's `ip` or
/// `hostname` that parses as an IP address is an address and anything else is a name to
/// look up; unlike KubeFed, a name that did not resolve loses only its own addresses.
pub(crate) fn lb_addresses(
    cluster: &str,
    lb: &LoadBalancerStatus,
    resolved: &Resolved,
    problems: &mut Vec<Problem>,
) -> Addresses {
    let mut out = Addresses::default();
    let targets: BTreeSet<&str> = lb_targets(lb).collect();
    for target in targets {
        if let Ok(ip) = target.parse::<IpAddr>() {
            out.insert(ip);
            continue;
        }
        let reason = match resolved.get(target) {
            Some(Resolution::Addresses(ips)) if !ips.is_empty() => {
                ips.iter().for_each(|ip| out.insert(*ip));
                continue;
            }
            Some(Resolution::Addresses(_)) => "no addresses".to_string(),
            Some(Resolution::Failed(why)) => why.clone(),
            None => "not looked up".to_string(),
        };
        problems.push(Problem::UnresolvedHostname {
            cluster: cluster.to_string(),
            hostname: target.to_string(),
            reason,
        });
    }
    out
}

/// KubeFed's TTL rule: unset (0) means 180 seconds. A negative TTL, which the schema
/// refuses, is treated the same way rather than written out.
pub(crate) fn effective_ttl(ttl: i64) -> i64 {
    if ttl > 0 { ttl } else { DEFAULT_RECORD_TTL }
}

/// The A and/or AAAA endpoints of `name`; nothing when there are no addresses.
pub(crate) fn address_endpoints(
    name: &str,
    addrs: &Addresses,
    ttl: i64,
    labels: &BTreeMap<String, String>,
) -> Vec<Endpoint> {
    [(RECORD_TYPE_A, &addrs.v4), (RECORD_TYPE_AAAA, &addrs.v6)]
        .into_iter()
        .filter(|(_, set)| !set.is_empty())
        .map(|(rtype, set)| Endpoint {
            dns_name: name.to_string(),
            targets: set.iter().cloned().collect(),
            record_type: rtype.to_string(),
            record_ttl: ttl,
            labels: labels.clone(),
        })
        .collect()
}

pub(crate) fn cname(
    name: &str,
    target: &str,
    ttl: i64,
    labels: &BTreeMap<String, String>,
) -> Endpoint {
    Endpoint {
        dns_name: name.to_string(),
        targets: vec![target.to_string()],
        record_type: RECORD_TYPE_CNAME.to_string(),
        record_ttl: ttl,
        labels: labels.clone(),
    }
}

/// One level of the hierarchy: the addresses when there are any, else a CNAME one level up.
pub(crate) fn level(
    name: &str,
    addrs: &Addresses,
    up: &str,
    ttl: i64,
    labels: &BTreeMap<String, String>,
) -> Vec<Endpoint> {
    if addrs.is_empty() {
        vec![cname(name, up, ttl, labels)]
    } else {
        address_endpoints(name, addrs, ttl, labels)
    }
}

/// Merges endpoints that share a name, KubeFed's way: endpoints of the same name and type
/// get the union of their targets (sorted, unique); when a name has address records, its
/// CNAMEs are dropped (a cluster without a load balancer must not hide one with). Empty
/// targets and endpoints left without targets are dropped. The result is sorted by
/// `(dnsName, recordType)`. TTL and labels come from the first endpoint of a group (all
/// endpoints of one record share them).
pub(crate) fn merge(endpoints: Vec<Endpoint>) -> Vec<Endpoint> {
    let mut groups: BTreeMap<(String, String), (Endpoint, BTreeSet<String>)> = BTreeMap::new();
    for mut ep in endpoints {
        let targets: BTreeSet<String> = std::mem::take(&mut ep.targets)
            .into_iter()
            .filter(|t| !t.is_empty())
            .collect();
        if targets.is_empty() {
            continue;
        }
        let key = (ep.dns_name.clone(), ep.record_type.clone());
        groups
            .entry(key)
            .or_insert_with(|| (ep, BTreeSet::new()))
            .1
            .extend(targets);
    }
    let has_address: BTreeSet<String> = groups
        .keys()
        .filter(|(_, t)| t == RECORD_TYPE_A || t == RECORD_TYPE_AAAA)
        .map(|(name, _)| name.clone())
        .collect();
    groups
        .into_iter()
        .filter(|((name, rtype), _)| !(rtype == RECORD_TYPE_CNAME && has_address.contains(name)))
        .map(|(_, (mut ep, targets))| {
            ep.targets = targets.into_iter().collect();
            ep
        })
        .collect()
}

/// Checks what a DNS name must be on the wire: labels of 1 to 63 octets, at most 253 octets
/// in all (without the root dot). The characters were checked by the CRD schemas and the
/// node labels; only the lengths come from composing names.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.len() > 253 {
        return Err(format!("{} octets, more than 253", name.len()));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("empty label".to_string());
        }
        if label.len() > 63 {
            return Err(format!("label {label} has more than 63 octets"));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod testutil {
    use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus};

    use super::*;

    /// A load balancer status from entries: an IP literal goes to `ip`, anything else to
    /// `hostname` (both are accepted either way, like KubeFed).
    pub fn mk_lb(entries: &[&str]) -> LoadBalancerStatus {
        if entries.is_empty() {
            return LoadBalancerStatus::default();
        }
        LoadBalancerStatus {
            ingress: Some(
                entries
                    .iter()
                    .map(|e| {
                        if e.parse::<IpAddr>().is_ok() {
                            LoadBalancerIngress {
                                ip: Some(e.to_string()),
                                ..Default::default()
                            }
                        } else {
                            LoadBalancerIngress {
                                hostname: Some(e.to_string()),
                                ..Default::default()
                            }
                        }
                    })
                    .collect(),
            ),
        }
    }

    pub fn ep(name: &str, rtype: &str, targets: &[&str], ttl: i64) -> Endpoint {
        Endpoint {
            dns_name: name.to_string(),
            targets: targets.iter().map(|t| t.to_string()).collect(),
            record_type: rtype.to_string(),
            record_ttl: ttl,
            labels: BTreeMap::new(),
        }
    }

    pub fn resolved(entries: &[(&str, &[&str])]) -> Resolved {
        entries
            .iter()
            .map(|(h, ips)| {
                (
                    h.to_string(),
                    Resolution::Addresses(ips.iter().map(|i| i.parse().unwrap()).collect()),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    #[test]
    fn merge_rules() {
        let cases: Vec<(&str, Vec<Endpoint>, Vec<Endpoint>)> = vec![
            ("nothing", vec![], vec![]),
            (
                "same name and type: union, sorted as strings, unique",
                vec![
                    ep("a.x", "A", &["10.0.0.2", "10.0.0.10"], 180),
                    ep("a.x", "A", &["10.0.0.2", "10.0.0.1"], 180),
                ],
                vec![ep("a.x", "A", &["10.0.0.1", "10.0.0.10", "10.0.0.2"], 180)],
            ),
            (
                "address beats CNAME, whichever comes first",
                vec![
                    ep("r.x", "CNAME", &["g.x"], 180),
                    ep("r.x", "A", &["1.1.1.1"], 180),
                    ep("s.x", "A", &["2.2.2.2"], 180),
                    ep("s.x", "CNAME", &["g.x"], 180),
                ],
                vec![
                    ep("r.x", "A", &["1.1.1.1"], 180),
                    ep("s.x", "A", &["2.2.2.2"], 180),
                ],
            ),
            (
                "AAAA alone also beats CNAME; A and AAAA live side by side",
                vec![
                    ep("r.x", "CNAME", &["g.x"], 180),
                    ep("r.x", "AAAA", &["2001:db8::1"], 180),
                    ep("r.x", "A", &["1.1.1.1"], 180),
                ],
                vec![
                    ep("r.x", "A", &["1.1.1.1"], 180),
                    ep("r.x", "AAAA", &["2001:db8::1"], 180),
                ],
            ),
            (
                "same CNAME twice is one",
                vec![
                    ep("z.x", "CNAME", &["r.x"], 180),
                    ep("z.x", "CNAME", &["r.x"], 180),
                ],
                vec![ep("z.x", "CNAME", &["r.x"], 180)],
            ),
            (
                "empty targets dropped, then empty endpoints",
                vec![
                    ep("a.x", "A", &[""], 180),
                    ep("b.x", "A", &["", "1.1.1.1"], 180),
                ],
                vec![ep("b.x", "A", &["1.1.1.1"], 180)],
            ),
            (
                "sorted by name",
                vec![
                    ep("b.x", "A", &["1.1.1.1"], 180),
                    ep("a.x", "A", &["1.1.1.1"], 180),
                ],
                vec![
                    ep("a.x", "A", &["1.1.1.1"], 180),
                    ep("b.x", "A", &["1.1.1.1"], 180),
                ],
            ),
        ];
        for (what, input, want) in cases {
            assert_eq!(merge(input), want, "{what}");
        }
    }

    #[test]
    fn lb_addresses_rules() {
        let table = {
            let mut t = resolved(&[
                ("lb.example.test", &["10.0.0.3", "2001:db8::3"]),
                ("empty.example.test", &[]),
            ]);
            t.insert(
                "broken.example.test".into(),
                Resolution::Failed("SERVFAIL".into()),
            );
            t
        };
        // (what, load balancer entries, want v4, want v6, want (hostname, reason) problems)
        type Row<'a> = (
            &'a str,
            Vec<&'a str>,
            Vec<&'a str>,
            Vec<&'a str>,
            Vec<(&'a str, &'a str)>,
        );
        let cases: Vec<Row> = vec![
            ("nothing", vec![], vec![], vec![], vec![]),
            (
                "v4 and v6 split, v6 canonical, v4-mapped is v4",
                vec!["10.0.0.1", "2001:DB8:0:0::1", "::ffff:10.0.0.2"],
                vec!["10.0.0.1", "10.0.0.2"],
                vec!["2001:db8::1"],
                vec![],
            ),
            (
                "hostname resolved through the table",
                vec!["lb.example.test", "10.0.0.1"],
                vec!["10.0.0.1", "10.0.0.3"],
                vec!["2001:db8::3"],
                vec![],
            ),
            (
                "unresolved hostnames drop only themselves",
                vec![
                    "10.0.0.1",
                    "missing.example.test",
                    "empty.example.test",
                    "broken.example.test",
                ],
                vec!["10.0.0.1"],
                vec![],
                vec![
                    ("broken.example.test", "SERVFAIL"),
                    ("empty.example.test", "no addresses"),
                    ("missing.example.test", "not looked up"),
                ],
            ),
        ];
        for (what, entries, v4, v6, want_problems) in cases {
            let mut problems = vec![];
            let got = lb_addresses("c1", &mk_lb(&entries), &table, &mut problems);
            let strs = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>();
            assert_eq!(strs(&got.v4), v4, "{what}: v4");
            assert_eq!(strs(&got.v6), v6, "{what}: v6");
            let want: Vec<Problem> = want_problems
                .iter()
                .map(|(h, r)| Problem::UnresolvedHostname {
                    cluster: "c1".into(),
                    hostname: h.to_string(),
                    reason: r.to_string(),
                })
                .collect();
            assert_eq!(problems, want, "{what}: problems");
        }
    }

    #[test]
    fn ttl_zero_or_negative_is_180() {
        assert_eq!(effective_ttl(0), 180);
        assert_eq!(effective_ttl(-5), 180);
        assert_eq!(effective_ttl(300), 300);
    }

    #[test]
    fn name_checks() {
        assert!(check_name("a.b.example.com").is_ok());
        assert!(check_name(&format!("{}.com", "a".repeat(63))).is_ok());
        assert!(check_name(&format!("{}.com", "a".repeat(64))).is_err());
        assert!(check_name("a..com").is_err());
        let long = vec!["abcdefghi"; 26].join(".");
        assert_eq!(long.len(), 259);
        assert!(check_name(&long).is_err());
    }
}
