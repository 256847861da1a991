//! IngressDNSRecord -> endpoints: every host of `spec.hosts` gets the addresses of every
//! cluster's Ingress load balancer (A for IPv4, AAAA for IPv6); a host gets no endpoint
//! when there are no addresses at all (there is no level above a host to point a CNAME
//! to). This is KubeFed's `getIngressDNSEndpoints`, except that an unresolvable load
//! balancer hostname loses only its own addresses instead of failing the record.

use std::collections::{BTreeMap, BTreeSet};

use super::common::{Addresses, address_endpoints, effective_ttl, lb_addresses, merge};
use super::{RecordOutput, Resolved, lb_targets};
use crate::api::multiclusterdns::IngressDNSRecord;

/// The load balancer hostnames (entries that are not IP literals) in the record's status.
pub fn ingress_hostnames(rec: &IngressDNSRecord) -> BTreeSet<String> {
    rec.status
        .iter()
        .flat_map(|s| s.dns.iter())
        .flat_map(|cd| lb_targets(&cd.load_balancer))
        .filter(|t| t.parse::<std::net::IpAddr>().is_err())
        .map(str::to_string)
        .collect()
}

/// The endpoints of an IngressDNSRecord: one A and/or AAAA endpoint per host with the
/// addresses of all clusters, TTL `spec.recordTTL` (180 when 0), no labels. Duplicate
/// hosts are merged. Never fails: the hosts are the names, and they need no metadata.
pub fn ingress_endpoints(rec: &IngressDNSRecord, resolved: &Resolved) -> RecordOutput {
    let mut problems = Vec::new();
    let mut all = Addresses::default();
    for cd in rec.status.iter().flat_map(|s| s.dns.iter()) {
        all.extend(&lb_addresses(
            &cd.cluster,
            &cd.load_balancer,
            resolved,
            &mut problems,
        ));
    }
    let ttl = effective_ttl(rec.spec.record_ttl);
    let labels = BTreeMap::new();
    let endpoints = rec
        .spec
        .hosts
        .iter()
        .filter(|h| !h.is_empty())
        .flat_map(|host| address_endpoints(host, &all, ttl, &labels))
        .collect();
    RecordOutput {
        endpoints: merge(endpoints),
        problems,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::super::common::testutil::*;
    use super::super::{Endpoint, Problem};
    use super::*;
    use crate::api::multiclusterdns::{
        ClusterIngressDns, IngressDNSRecordSpec, IngressDNSRecordStatus,
    };

    const H1: &str = "ingress.example.com";
    const H2: &str = "shop.example.com";
    const LB1: &str = "10.20.30.1";
    const LB2: &str = "10.20.30.2";
    const LB3: &str = "10.20.30.3";
    const ELB: &str = "a9.us-west-2.elb.amazonaws.test";

    pub fn mk_ingress_record(hosts: &[&str], dns: &[(&str, &[&str])]) -> IngressDNSRecord {
        IngressDNSRecord {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("test".into()),
                uid: Some("9f1c-uid".into()),
                ..Default::default()
            },
            spec: IngressDNSRecordSpec {
                hosts: hosts.iter().map(|h| h.to_string()).collect(),
                record_ttl: 0,
            },
            status: Some(IngressDNSRecordStatus {
                dns: dns
                    .iter()
                    .map(|(c, lb)| ClusterIngressDns {
                        cluster: c.to_string(),
                        load_balancer: mk_lb(lb),
                    })
                    .collect(),
                conditions: vec![],
            }),
        }
    }

    #[test]
    fn ingress_endpoint_rules() {
        type Row<'a> = (
            &'a str,
            IngressDNSRecord,
            Resolved,
            Vec<Endpoint>,
            Vec<Problem>,
        );
        let none = Resolved::new;
        let rows: Vec<Row> = vec![
            (
                "no clusters",
                mk_ingress_record(&[H1], &[]),
                none(),
                vec![],
                vec![],
            ),
            (
                "no hosts",
                mk_ingress_record(&[], &[("c1", &[LB1])]),
                none(),
                vec![],
                vec![],
            ),
            (
                "one LB in one cluster",
                mk_ingress_record(&[H1], &[("c1", &[LB1])]),
                none(),
                vec![ep(H1, "A", &[LB1], 180)],
                vec![],
            ),
            (
                "LBs in two clusters, two hosts",
                mk_ingress_record(&[H2, H1], &[("c1", &[LB1]), ("c2", &[LB2])]),
                none(),
                vec![ep(H1, "A", &[LB1, LB2], 180), ep(H2, "A", &[LB1, LB2], 180)],
                vec![],
            ),
            (
                "no LB in one cluster",
                mk_ingress_record(&[H1], &[("c1", &[LB1]), ("c2", &[])]),
                none(),
                vec![ep(H1, "A", &[LB1], 180)],
                vec![],
            ),
            (
                "no LB anywhere: no endpoint",
                mk_ingress_record(&[H1], &[("c1", &[]), ("c2", &[])]),
                none(),
                vec![],
                vec![],
            ),
            (
                "several LBs per cluster, duplicates merged",
                mk_ingress_record(&[H1, H1], &[("c1", &[LB1, LB3]), ("c2", &[LB3, LB2])]),
                none(),
                vec![ep(H1, "A", &[LB1, LB2, LB3], 180)],
                vec![],
            ),
            (
                "LB hostname resolved",
                mk_ingress_record(&[H1], &[("c1", &[ELB]), ("c2", &[LB2])]),
                resolved(&[(ELB, &[LB3])]),
                vec![ep(H1, "A", &[LB2, LB3], 180)],
                vec![],
            ),
            (
                "unresolved LB hostname drops only itself",
                mk_ingress_record(&[H1], &[("c1", &[ELB]), ("c2", &[LB2])]),
                none(),
                vec![ep(H1, "A", &[LB2], 180)],
                vec![Problem::UnresolvedHostname {
                    cluster: "c1".into(),
                    hostname: ELB.into(),
                    reason: "not looked up".into(),
                }],
            ),
            (
                "IPv6 is AAAA beside A",
                mk_ingress_record(&[H1], &[("c1", &[LB1, "2001:db8::1"])]),
                none(),
                vec![
                    ep(H1, "A", &[LB1], 180),
                    ep(H1, "AAAA", &["2001:db8::1"], 180),
                ],
                vec![],
            ),
        ];
        for (what, rec, table, want, problems) in rows {
            let out = ingress_endpoints(&rec, &table);
            assert_eq!(out.endpoints, want, "{what}");
            assert_eq!(out.problems, problems, "{what}: problems");
        }
    }

    #[test]
    fn ingress_user_ttl() {
        let mut rec = mk_ingress_record(&[H1], &[("c1", &[LB1])]);
        rec.spec.record_ttl = 30;
        assert_eq!(
            ingress_endpoints(&rec, &Resolved::new()).endpoints,
            vec![ep(H1, "A", &[LB1], 30)]
        );
    }

    #[test]
    fn ingress_hostnames_to_resolve() {
        let rec = mk_ingress_record(&[H1], &[("c1", &[ELB, LB1]), ("c2", &[ELB])]);
        assert_eq!(
            ingress_hostnames(&rec).into_iter().collect::<Vec<_>>(),
            vec![ELB.to_string()]
        );
    }
}
