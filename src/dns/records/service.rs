//! ServiceDNSRecord -> endpoints.
//!
//! For each cluster entry of `status.dns`, the cluster's load balancer addresses go to
//! the global name, its region name and each of its zone names (and, with
//! `perClusterRecords`, its own cluster name). A level for which the cluster has no
//! addresses becomes a CNAME one level up, so that a client asking for its own zone is
//! sent to its region, and from there to the global name. Entries of the same name are
//! then merged; an address record beats a CNAME. This is KubeFed's
//! `getServiceDNSEndpoints`, except where KubeFed failed the whole record for one
//! cluster's sake (no region/zones, unresolvable hostname): here that cluster loses only
//! the names it cannot have, and the reason is returned as a [`Problem`].

use std::collections::{BTreeMap, BTreeSet};

use super::common::{
    Addresses, address_endpoints, check_name, cname, effective_ttl, lb_addresses, level, merge,
};
use super::{
    CLUSTERS_LABEL, Problem, RecordError, RecordOutput, Resolved, SERVICE_NAME_LABEL, lb_targets,
};
use crate::api::multiclusterdns::ServiceDNSRecord;

/// The load balancer hostnames (entries that are not IP literals) of every cluster in the
/// record's status: what the I/O edge must resolve into the [`Resolved`] table.
pub fn service_hostnames(rec: &ServiceDNSRecord) -> BTreeSet<String> {
    rec.status
        .iter()
        .flat_map(|s| s.dns.iter())
        .flat_map(|cd| lb_targets(&cd.load_balancer))
        .filter(|t| t.parse::<std::net::IpAddr>().is_err())
        .map(str::to_string)
        .collect()
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// The endpoints of a ServiceDNSRecord, from its spec and status.
///
/// With `<p>` = `<metadata.name or spec.externalName>.<metadata.namespace>.<spec.domainRef>.svc`
/// and `<domain>` = `status.domain`:
///
/// - global `<p>.<domain>`: the addresses of every cluster; no record without any.
/// - region `<p>.<region>.<domain>`: the region's addresses, else CNAME to global.
/// - zone `<p>.<zone>.<region>.<domain>`: the zone's addresses, else CNAME to region.
/// - with `perClusterRecords`, `<p>.<cluster>.clusters.<domain>`: the cluster's
///   addresses, else CNAME to its region name (global when it has no region).
/// - with `dnsPrefix`, `<dnsPrefix>.<domain>`: CNAME to global, always.
///
/// IPv4 addresses are A records, IPv6 addresses AAAA records (KubeFed wrote both as A).
/// TTL is `spec.recordTTL`, 180 when 0. With `externalName` every endpoint but the
/// `dnsPrefix` CNAME carries the label `serviceName: <metadata.name>`, as in KubeFed.
///
/// Errors only when no name at all can be made (no name/namespace, no `status.domain`,
/// a global name that is not a DNS name); everything else is a [`Problem`].
pub fn service_endpoints(
    rec: &ServiceDNSRecord,
    resolved: &Resolved,
) -> Result<RecordOutput, RecordError> {
    let name = non_empty(&rec.metadata.name).ok_or(RecordError::MissingMetadata("name"))?;
    let namespace =
        non_empty(&rec.metadata.namespace).ok_or(RecordError::MissingMetadata("namespace"))?;
    let status = rec.status.clone().unwrap_or_default();
    let domain = status.domain.as_str();
    if domain.is_empty() {
        return Err(RecordError::NoDomain {
            domain_ref: rec.spec.domain_ref.clone(),
        });
    }

    let mut labels = BTreeMap::new();
    let first = match non_empty(&rec.spec.external_name) {
        Some(external) => {
            labels.insert(SERVICE_NAME_LABEL.to_string(), name.to_string());
            external
        }
        None => name,
    };
    let prefix = format!("{first}.{namespace}.{}.svc", rec.spec.domain_ref);
    let global = format!("{prefix}.{domain}");
    check_name(&global).map_err(|reason| RecordError::InvalidName {
        name: global.clone(),
        reason,
    })?;
    let ttl = effective_ttl(rec.spec.record_ttl);
    let per_cluster = rec.spec.per_cluster_records;

    let mut endpoints = Vec::new();
    let mut problems = Vec::new();
    // A composed name that is too long is left out with a problem, never fatal.
    let valid = |name: String, cluster: Option<&str>, problems: &mut Vec<Problem>| match check_name(
        &name,
    ) {
        Ok(()) => Some(name),
        Err(reason) => {
            problems.push(Problem::InvalidName {
                cluster: cluster.map(str::to_string),
                name,
                reason,
            });
            None
        }
    };

    for cd in &status.dns {
        let cluster = cd.cluster.as_str();
        let addrs: Addresses = lb_addresses(cluster, &cd.load_balancer, resolved, &mut problems);
        endpoints.extend(address_endpoints(&global, &addrs, ttl, &labels));

        let region = cd.region.as_str();
        let mut region_name = None;
        if region.is_empty() {
            problems.push(Problem::ClusterWithoutRegion {
                cluster: cluster.to_string(),
            });
        } else if per_cluster && region == CLUSTERS_LABEL {
            problems.push(Problem::ReservedRegion {
                cluster: cluster.to_string(),
            });
        } else if let Some(rname) = valid(
            format!("{prefix}.{region}.{domain}"),
            Some(cluster),
            &mut problems,
        ) {
            endpoints.extend(level(&rname, &addrs, &global, ttl, &labels));
            let zones: Vec<&str> = cd
                .zones
                .iter()
                .map(String::as_str)
                .filter(|z| !z.is_empty())
                .collect();
            if zones.is_empty() {
                problems.push(Problem::ClusterWithoutZones {
                    cluster: cluster.to_string(),
                });
            }
            for zone in zones {
                if let Some(zname) = valid(
                    format!("{prefix}.{zone}.{region}.{domain}"),
                    Some(cluster),
                    &mut problems,
                ) {
                    endpoints.extend(level(&zname, &addrs, &rname, ttl, &labels));
                }
            }
            region_name = Some(rname);
        }

        if per_cluster
            && let Some(cname_) = valid(
                format!("{prefix}.{cluster}.{CLUSTERS_LABEL}.{domain}"),
                Some(cluster),
                &mut problems,
            )
        {
            let up = region_name.as_deref().unwrap_or(&global);
            endpoints.extend(level(&cname_, &addrs, up, ttl, &labels));
        }
    }

    if let Some(dns_prefix) = non_empty(&rec.spec.dns_prefix)
        && let Some(pname) = valid(format!("{dns_prefix}.{domain}"), None, &mut problems)
    {
        endpoints.push(cname(&pname, &global, ttl, &BTreeMap::new()));
    }

    Ok(RecordOutput {
        endpoints: merge(endpoints),
        problems,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::super::common::testutil::*;
    use super::super::{Endpoint, Resolution};
    use super::*;
    use crate::api::multiclusterdns::{ClusterDns, ServiceDNSRecordSpec, ServiceDNSRecordStatus};

    // The fixture of KubeFed's own tests, so that the expectations can be compared.
    const P: &str = "nginx.test.galactic.svc";
    const LB1: &str = "10.20.30.1";
    const LB2: &str = "10.20.30.2";
    const LB3: &str = "10.20.30.3";
    const V6A: &str = "2001:db8::1";
    const V6B: &str = "2001:db8::2";
    const ELB: &str = "a9.us-west-2.elb.amazonaws.test";

    fn g() -> String {
        format!("{P}.example.com")
    }
    fn r(region: &str) -> String {
        format!("{P}.{region}.example.com")
    }
    fn z(zone: &str, region: &str) -> String {
        format!("{P}.{zone}.{region}.example.com")
    }
    fn cl(cluster: &str) -> String {
        format!("{P}.{cluster}.clusters.example.com")
    }

    pub fn mk_cluster(cluster: &str, region: &str, zones: &[&str], lb: &[&str]) -> ClusterDns {
        ClusterDns {
            cluster: cluster.into(),
            load_balancer: mk_lb(lb),
            zones: zones.iter().map(|z| z.to_string()).collect(),
            region: region.into(),
        }
    }

    pub fn mk_record(dns: Vec<ClusterDns>) -> ServiceDNSRecord {
        ServiceDNSRecord {
            metadata: ObjectMeta {
                name: Some("nginx".into()),
                namespace: Some("test".into()),
                uid: Some("0b3b2c1e-uid".into()),
                ..Default::default()
            },
            spec: ServiceDNSRecordSpec {
                domain_ref: "galactic".into(),
                record_ttl: 0,
                ..Default::default()
            },
            status: Some(ServiceDNSRecordStatus {
                domain: "example.com".into(),
                dns,
                conditions: vec![],
            }),
        }
    }

    fn c1(lb: &[&str]) -> ClusterDns {
        mk_cluster("c1", "us", &["us1"], lb)
    }
    fn c2(lb: &[&str]) -> ClusterDns {
        mk_cluster("c2", "eu", &["eu1"], lb)
    }

    fn a(name: String, targets: &[&str]) -> Endpoint {
        ep(&name, "A", targets, 180)
    }
    fn aaaa(name: String, targets: &[&str]) -> Endpoint {
        ep(&name, "AAAA", targets, 180)
    }
    fn cn(name: String, target: String) -> Endpoint {
        ep(&name, "CNAME", &[&target], 180)
    }

    struct Case {
        what: &'static str,
        rec: ServiceDNSRecord,
        resolved: Resolved,
        want: Vec<Endpoint>,
        problems: Vec<Problem>,
    }

    fn case(what: &'static str, rec: ServiceDNSRecord, want: Vec<Endpoint>) -> Case {
        Case {
            what,
            rec,
            resolved: Resolved::new(),
            want,
            problems: vec![],
        }
    }

    fn with<F: FnOnce(&mut ServiceDNSRecord)>(mut rec: ServiceDNSRecord, f: F) -> ServiceDNSRecord {
        f(&mut rec);
        rec
    }

    fn cases() -> Vec<Case> {
        vec![
            case("no clusters", mk_record(vec![]), vec![]),
            case(
                "one LB in one cluster",
                mk_record(vec![c1(&[LB1])]),
                vec![
                    a(g(), &[LB1]),
                    a(r("us"), &[LB1]),
                    a(z("us1", "us"), &[LB1]),
                ],
            ),
            case(
                "LBs in two clusters",
                mk_record(vec![c1(&[LB1]), c2(&[LB2])]),
                vec![
                    a(g(), &[LB1, LB2]),
                    a(r("us"), &[LB1]),
                    a(z("us1", "us"), &[LB1]),
                    a(r("eu"), &[LB2]),
                    a(z("eu1", "eu"), &[LB2]),
                ],
            ),
            case(
                "no LB in one cluster: zone -> region -> global CNAME fallback",
                mk_record(vec![c1(&[LB1]), c2(&[])]),
                vec![
                    a(g(), &[LB1]),
                    a(r("us"), &[LB1]),
                    a(z("us1", "us"), &[LB1]),
                    cn(r("eu"), g()),
                    cn(z("eu1", "eu"), r("eu")),
                ],
            ),
            case(
                "no LB anywhere: CNAMEs only, no global record",
                mk_record(vec![c1(&[]), c2(&[])]),
                vec![
                    cn(r("us"), g()),
                    cn(z("us1", "us"), r("us")),
                    cn(r("eu"), g()),
                    cn(z("eu1", "eu"), r("eu")),
                ],
            ),
            case(
                "several LBs per cluster",
                mk_record(vec![c1(&[LB1, LB3]), c2(&[LB2])]),
                vec![
                    a(g(), &[LB1, LB2, LB3]),
                    a(r("us"), &[LB1, LB3]),
                    a(z("us1", "us"), &[LB1, LB3]),
                    a(r("eu"), &[LB2]),
                    a(z("eu1", "eu"), &[LB2]),
                ],
            ),
            Case {
                resolved: resolved(&[(ELB, &[LB3])]),
                ..case(
                    "LB hostname is resolved to its addresses",
                    mk_record(vec![c1(&[ELB]), c2(&[LB2])]),
                    vec![
                        a(g(), &[LB2, LB3]),
                        a(r("us"), &[LB3]),
                        a(z("us1", "us"), &[LB3]),
                        a(r("eu"), &[LB2]),
                        a(z("eu1", "eu"), &[LB2]),
                    ],
                )
            },
            Case {
                problems: vec![Problem::UnresolvedHostname {
                    cluster: "c1".into(),
                    hostname: ELB.into(),
                    reason: "NXDOMAIN".into(),
                }],
                resolved: [(ELB.to_string(), Resolution::Failed("NXDOMAIN".into()))].into(),
                ..case(
                    "unresolvable LB hostname drops only that target",
                    mk_record(vec![c1(&[ELB, LB1]), c2(&[LB2])]),
                    vec![
                        a(g(), &[LB1, LB2]),
                        a(r("us"), &[LB1]),
                        a(z("us1", "us"), &[LB1]),
                        a(r("eu"), &[LB2]),
                        a(z("eu1", "eu"), &[LB2]),
                    ],
                )
            },
            Case {
                problems: vec![Problem::UnresolvedHostname {
                    cluster: "c1".into(),
                    hostname: ELB.into(),
                    reason: "not looked up".into(),
                }],
                ..case(
                    "cluster whose only LB hostname is unresolved falls back to CNAMEs",
                    mk_record(vec![c1(&[ELB]), c2(&[LB2])]),
                    vec![
                        a(g(), &[LB2]),
                        cn(r("us"), g()),
                        cn(z("us1", "us"), r("us")),
                        a(r("eu"), &[LB2]),
                        a(z("eu1", "eu"), &[LB2]),
                    ],
                )
            },
            case(
                "user TTL",
                with(mk_record(vec![c1(&[LB1])]), |r| r.spec.record_ttl = 300),
                vec![
                    ep(&g(), "A", &[LB1], 300),
                    ep(&r("us"), "A", &[LB1], 300),
                    ep(&z("us1", "us"), "A", &[LB1], 300),
                ],
            ),
            case(
                "TTL 0 is 180",
                with(mk_record(vec![c1(&[])]), |r| r.spec.record_ttl = 0),
                vec![cn(r("us"), g()), cn(z("us1", "us"), r("us"))],
            ),
            case(
                "dnsPrefix adds a CNAME to global",
                with(mk_record(vec![c1(&[LB1]), c2(&[LB2])]), |r| {
                    r.spec.dns_prefix = Some("foo".into())
                }),
                vec![
                    a(g(), &[LB1, LB2]),
                    a(r("us"), &[LB1]),
                    a(z("us1", "us"), &[LB1]),
                    a(r("eu"), &[LB2]),
                    a(z("eu1", "eu"), &[LB2]),
                    cn("foo.example.com".into(), g()),
                ],
            ),
            case(
                "dnsPrefix CNAME exists even without clusters (as in KubeFed)",
                with(mk_record(vec![]), |r| {
                    r.spec.dns_prefix = Some("www.shop".into());
                    r.spec.record_ttl = 60;
                }),
                vec![ep("www.shop.example.com", "CNAME", &[&g()], 60)],
            ),
            case(
                "externalName replaces the Service name and labels every endpoint",
                with(mk_record(vec![c1(&[LB1]), c2(&[])]), |r| {
                    r.spec.external_name = Some("foo".into())
                }),
                {
                    let fp = "foo.test.galactic.svc";
                    let label = |mut e: Endpoint| {
                        e.labels.insert("serviceName".into(), "nginx".into());
                        e
                    };
                    vec![
                        label(a(format!("{fp}.example.com"), &[LB1])),
                        label(a(format!("{fp}.us.example.com"), &[LB1])),
                        label(a(format!("{fp}.us1.us.example.com"), &[LB1])),
                        label(cn(
                            format!("{fp}.eu.example.com"),
                            format!("{fp}.example.com"),
                        )),
                        label(cn(
                            format!("{fp}.eu1.eu.example.com"),
                            format!("{fp}.eu.example.com"),
                        )),
                    ]
                },
            ),
            case(
                "several zones per cluster",
                mk_record(vec![
                    mk_cluster("c1", "us", &["us1", "us2"], &[LB1]),
                    c2(&[LB2]),
                ]),
                vec![
                    a(g(), &[LB1, LB2]),
                    a(r("us"), &[LB1]),
                    a(z("us1", "us"), &[LB1]),
                    a(z("us2", "us"), &[LB1]),
                    a(r("eu"), &[LB2]),
                    a(z("eu1", "eu"), &[LB2]),
                ],
            ),
            case(
                "duplicates merged: clusters in the same zone, a shared address",
                mk_record(vec![
                    mk_cluster("c1", "us", &["us1"], &[LB1, LB2]),
                    mk_cluster("c3", "us", &["us1"], &[LB2, LB3]),
                ]),
                vec![
                    a(g(), &[LB1, LB2, LB3]),
                    a(r("us"), &[LB1, LB2, LB3]),
                    a(z("us1", "us"), &[LB1, LB2, LB3]),
                ],
            ),
            case(
                "address beats CNAME for the same name",
                mk_record(vec![
                    mk_cluster("c1", "us", &["us1"], &[LB1]),
                    mk_cluster("c3", "us", &["us1", "us2"], &[]),
                ]),
                vec![
                    a(g(), &[LB1]),
                    a(r("us"), &[LB1]),
                    a(z("us1", "us"), &[LB1]),
                    cn(z("us2", "us"), r("us")),
                ],
            ),
            case(
                "IPv6 address is AAAA",
                mk_record(vec![c1(&["2001:DB8::1"])]),
                vec![
                    aaaa(g(), &[V6A]),
                    aaaa(r("us"), &[V6A]),
                    aaaa(z("us1", "us"), &[V6A]),
                ],
            ),
            Case {
                resolved: resolved(&[(ELB, &[LB3, V6B])]),
                ..case(
                    "mixed v4/v6: separate A and AAAA endpoints of the same name",
                    mk_record(vec![c1(&[LB1, V6A]), c2(&[ELB])]),
                    vec![
                        a(g(), &[LB1, LB3]),
                        aaaa(g(), &[V6A, V6B]),
                        a(r("us"), &[LB1]),
                        aaaa(r("us"), &[V6A]),
                        a(z("us1", "us"), &[LB1]),
                        aaaa(z("us1", "us"), &[V6A]),
                        a(r("eu"), &[LB3]),
                        aaaa(r("eu"), &[V6B]),
                        a(z("eu1", "eu"), &[LB3]),
                        aaaa(z("eu1", "eu"), &[V6B]),
                    ],
                )
            },
            case(
                "per-cluster names: addresses, else CNAME to the cluster's region",
                with(mk_record(vec![c1(&[LB1]), c2(&[])]), |r| {
                    r.spec.per_cluster_records = true
                }),
                vec![
                    a(g(), &[LB1]),
                    a(r("us"), &[LB1]),
                    a(z("us1", "us"), &[LB1]),
                    a(cl("c1"), &[LB1]),
                    cn(r("eu"), g()),
                    cn(z("eu1", "eu"), r("eu")),
                    cn(cl("c2"), r("eu")),
                ],
            ),
            Case {
                problems: vec![Problem::ClusterWithoutRegion {
                    cluster: "c2".into(),
                }],
                ..case(
                    "per-cluster name of a cluster without region is a CNAME to global",
                    with(
                        mk_record(vec![c1(&[LB1]), mk_cluster("c2", "", &[], &[])]),
                        |r| r.spec.per_cluster_records = true,
                    ),
                    vec![
                        a(g(), &[LB1]),
                        a(r("us"), &[LB1]),
                        a(z("us1", "us"), &[LB1]),
                        a(cl("c1"), &[LB1]),
                        cn(cl("c2"), g()),
                    ],
                )
            },
            Case {
                problems: vec![Problem::ReservedRegion {
                    cluster: "c2".into(),
                }],
                ..case(
                    "region `clusters` is reserved with per-cluster names",
                    with(
                        mk_record(vec![mk_cluster("c2", "clusters", &["c1"], &[LB2])]),
                        |r| r.spec.per_cluster_records = true,
                    ),
                    vec![a(g(), &[LB2]), a(cl("c2"), &[LB2])],
                )
            },
            case(
                "region `clusters` is an ordinary region without per-cluster names",
                mk_record(vec![mk_cluster("c2", "clusters", &["c1"], &[LB2])]),
                vec![
                    a(g(), &[LB2]),
                    a(r("clusters"), &[LB2]),
                    a(z("c1", "clusters"), &[LB2]),
                ],
            ),
            Case {
                problems: vec![Problem::ClusterWithoutRegion {
                    cluster: "c2".into(),
                }],
                ..case(
                    "cluster without region or zones does not block others (kubefed#1031)",
                    mk_record(vec![c1(&[LB1]), mk_cluster("c2", "", &[], &[LB2])]),
                    vec![
                        a(g(), &[LB1, LB2]),
                        a(r("us"), &[LB1]),
                        a(z("us1", "us"), &[LB1]),
                    ],
                )
            },
            Case {
                problems: vec![Problem::ClusterWithoutRegion {
                    cluster: "c2".into(),
                }],
                ..case(
                    "zones without a region make no zone names",
                    mk_record(vec![mk_cluster("c2", "", &["eu1"], &[LB2])]),
                    vec![a(g(), &[LB2])],
                )
            },
            Case {
                problems: vec![Problem::ClusterWithoutZones {
                    cluster: "c2".into(),
                }],
                ..case(
                    "cluster with a region but no zones gets its region name",
                    mk_record(vec![c1(&[LB1]), mk_cluster("c2", "eu", &[], &[LB2])]),
                    vec![
                        a(g(), &[LB1, LB2]),
                        a(r("us"), &[LB1]),
                        a(z("us1", "us"), &[LB1]),
                        a(r("eu"), &[LB2]),
                    ],
                )
            },
            Case {
                problems: vec![Problem::InvalidName {
                    cluster: Some("c2".into()),
                    name: r(&"x".repeat(64)),
                    reason: format!("label {} has more than 63 octets", "x".repeat(64)),
                }],
                ..case(
                    "an impossible region name is left out, the rest stays",
                    mk_record(vec![
                        c1(&[LB1]),
                        mk_cluster("c2", &"x".repeat(64), &["a"], &[LB2]),
                    ]),
                    vec![
                        a(g(), &[LB1, LB2]),
                        a(r("us"), &[LB1]),
                        a(z("us1", "us"), &[LB1]),
                    ],
                )
            },
        ]
    }

    #[test]
    fn service_endpoint_rules() {
        for c in cases() {
            let out = service_endpoints(&c.rec, &c.resolved)
                .unwrap_or_else(|e| panic!("{}: unexpected error {e}", c.what));
            let mut want = c.want;
            want.sort_by(|x, y| (&x.dns_name, &x.record_type).cmp(&(&y.dns_name, &y.record_type)));
            assert_eq!(out.endpoints, want, "{}", c.what);
            assert_eq!(out.problems, c.problems, "{}: problems", c.what);
        }
    }

    #[test]
    fn record_errors() {
        let cases: Vec<(&str, ServiceDNSRecord, RecordError)> = vec![
            (
                "no status.domain yet",
                with(mk_record(vec![c1(&[LB1])]), |r| r.status = None),
                RecordError::NoDomain {
                    domain_ref: "galactic".into(),
                },
            ),
            (
                "no namespace",
                with(mk_record(vec![]), |r| r.metadata.namespace = None),
                RecordError::MissingMetadata("namespace"),
            ),
            (
                "no name",
                with(mk_record(vec![]), |r| r.metadata.name = Some(String::new())),
                RecordError::MissingMetadata("name"),
            ),
            (
                "global name too long",
                with(mk_record(vec![]), |r| {
                    r.status.as_mut().unwrap().domain = vec!["d".repeat(60); 4].join(".")
                }),
                RecordError::InvalidName {
                    name: format!("{P}.{}", vec!["d".repeat(60); 4].join(".")),
                    reason: "267 octets, more than 253".into(),
                },
            ),
        ];
        for (what, rec, want) in cases {
            assert_eq!(
                service_endpoints(&rec, &Resolved::new()),
                Err(want),
                "{what}"
            );
        }
    }

    #[test]
    fn hostnames_to_resolve_are_the_non_ip_targets() {
        let rec = mk_record(vec![c1(&[LB1, ELB]), c2(&["lb.eu.test", V6A, ELB])]);
        let got: Vec<String> = service_hostnames(&rec).into_iter().collect();
        assert_eq!(got, vec![ELB.to_string(), "lb.eu.test".to_string()]);
    }

    #[test]
    fn output_does_not_depend_on_cluster_order() {
        let rec = mk_record(vec![
            c1(&[LB1, V6A]),
            c2(&[]),
            mk_cluster("c3", "us", &["us2"], &[LB3]),
        ]);
        let mut reversed = rec.clone();
        reversed.status.as_mut().unwrap().dns.reverse();
        let table = Resolved::new();
        assert_eq!(
            service_endpoints(&rec, &table).unwrap().endpoints,
            service_endpoints(&reversed, &table).unwrap().endpoints
        );
    }
}
