//! Record status from what the member clusters show: the `status.dns` lists of
//! ServiceDNSRecord and IngressDNSRecord. Pure; the controllers gather the inputs from
//! their member-cluster indexes.
//!
//! When a cluster has an entry, as in KubeFed's servicedns / ingressdns controllers:
//!
//! - every **ready** cluster has one, whether or not the Service (Ingress) exists there;
//!   without it, or (Services only) without ready endpoints and without
//!   `allowServiceWithoutEndpoints`, the entry's `loadBalancer` is empty. An entry
//!   without addresses still makes the region/zone CNAMEs, which send clients in that
//!   cluster's zone to the clusters that serve the Service.
//! - a **not ready** cluster keeps the entry it had in the previous status, with its
//!   previous region and zones and an empty `loadBalancer`; one that had none gets none.
//!   Ingress records keep no entries for clusters that are not ready (KubeFed's rule).
//!
//! Beyond KubeFed: a ready cluster without region or zones has an entry too (KubeFed
//! stopped the whole record, kubefed#1031); the endpoint rules make only the names it
//! can have. Load balancer ingress entries are sorted (by IP, then hostname) so that
//! equal states compare equal and the status is written only when it changes.

use k8s_openapi::api::core::v1::LoadBalancerStatus;

use crate::api::multiclusterdns::{ClusterDns, ClusterIngressDns};

/// What a Service looks like in one member cluster.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceObservation {
    /// The Service's `status.loadBalancer`.
    pub load_balancer: LoadBalancerStatus,
    /// Whether an EndpointSlice of the Service has a ready endpoint.
    pub has_ready_endpoints: bool,
}

/// One member cluster as the servicedns controller sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemberService {
    pub cluster: String,
    /// The cluster's `Ready` condition is True.
    pub ready: bool,
    /// From `KubeFedCluster.status.region`.
    pub region: Option<String>,
    /// From `KubeFedCluster.status.zones`.
    pub zones: Vec<String>,
    /// The Service of the record's name in that cluster; `None` when it does not exist.
    pub service: Option<ServiceObservation>,
}

/// One member cluster as the ingressdns controller sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemberIngress {
    pub cluster: String,
    pub ready: bool,
    /// The Ingress's `status.loadBalancer`; `None` when the Ingress does not exist.
    pub ingress: Option<LoadBalancerStatus>,
}

/// Sorts ingress entries by IP then hostname, as KubeFed did, so that the same load
/// balancer always gives the same status.
fn sorted(lb: &LoadBalancerStatus) -> LoadBalancerStatus {
    let mut lb = lb.clone();
    if let Some(ingress) = lb.ingress.as_mut() {
        ingress.sort_by(|a, b| (&a.ip, &a.hostname).cmp(&(&b.ip, &b.hostname)));
    }
    lb
}

/// `ServiceDNSRecord.status.dns`: one entry per ready cluster, plus the previous entries
/// of clusters that are not ready (emptied of addresses); sorted by cluster name.
pub fn service_dns_status(
    members: &[MemberService],
    previous: &[ClusterDns],
    allow_service_without_endpoints: bool,
) -> Vec<ClusterDns> {
    let mut out: Vec<ClusterDns> = members
        .iter()
        .filter_map(|m| {
            if m.ready {
                let load_balancer = match &m.service {
                    Some(s) if s.has_ready_endpoints || allow_service_without_endpoints => {
                        sorted(&s.load_balancer)
                    }
                    _ => LoadBalancerStatus::default(),
                };
                Some(ClusterDns {
                    cluster: m.cluster.clone(),
                    load_balancer,
                    zones: m.zones.clone(),
                    region: m.region.clone().unwrap_or_default(),
                })
            } else {
                previous
                    .iter()
                    .find(|p| p.cluster == m.cluster)
                    .map(|p| ClusterDns {
                        load_balancer: LoadBalancerStatus::default(),
                        ..p.clone()
                    })
            }
        })
        .collect();
    out.sort_by(|a, b| a.cluster.cmp(&b.cluster));
    out
}

/// `IngressDNSRecord.status.dns`: one entry per ready cluster, sorted by cluster name.
pub fn ingress_dns_status(members: &[MemberIngress]) -> Vec<ClusterIngressDns> {
    let mut out: Vec<ClusterIngressDns> = members
        .iter()
        .filter(|m| m.ready)
        .map(|m| ClusterIngressDns {
            cluster: m.cluster.clone(),
            load_balancer: m.ingress.as_ref().map(sorted).unwrap_or_default(),
        })
        .collect();
    out.sort_by(|a, b| a.cluster.cmp(&b.cluster));
    out
}

#[cfg(test)]
mod tests {
    use super::super::common::testutil::mk_lb;
    use super::*;

    fn member(cluster: &str, ready: bool, lb: Option<(&[&str], bool)>) -> MemberService {
        MemberService {
            cluster: cluster.into(),
            ready,
            region: Some("us".into()),
            zones: vec!["us1".into()],
            service: lb.map(|(lb, has_ready_endpoints)| ServiceObservation {
                load_balancer: mk_lb(lb),
                has_ready_endpoints,
            }),
        }
    }

    fn entry(cluster: &str, lb: &[&str]) -> ClusterDns {
        ClusterDns {
            cluster: cluster.into(),
            load_balancer: mk_lb(lb),
            zones: vec!["us1".into()],
            region: "us".into(),
        }
    }

    #[test]
    fn service_status_rules() {
        type Row<'a> = (
            &'a str,
            Vec<MemberService>,
            Vec<ClusterDns>,
            bool,
            Vec<ClusterDns>,
        );
        let rows: Vec<Row> = vec![
            ("no clusters", vec![], vec![], false, vec![]),
            (
                "ready cluster with LB and endpoints, sorted by cluster",
                vec![
                    member("c2", true, Some((&["10.0.0.2"], true))),
                    member("c1", true, Some((&["10.0.0.1"], true))),
                ],
                vec![],
                false,
                vec![entry("c1", &["10.0.0.1"]), entry("c2", &["10.0.0.2"])],
            ),
            (
                "no ready endpoints: entry without addresses",
                vec![member("c1", true, Some((&["10.0.0.1"], false)))],
                vec![],
                false,
                vec![entry("c1", &[])],
            ),
            (
                "no ready endpoints but allowServiceWithoutEndpoints",
                vec![member("c1", true, Some((&["10.0.0.1"], false)))],
                vec![],
                true,
                vec![entry("c1", &["10.0.0.1"])],
            ),
            (
                "Service missing in a ready cluster: entry without addresses (as KubeFed)",
                vec![member("c1", true, None)],
                vec![],
                true,
                vec![entry("c1", &[])],
            ),
            (
                "offline cluster keeps its previous entry without addresses",
                vec![
                    member("c1", false, Some((&["10.0.0.1"], true))),
                    member("c2", true, Some((&["10.0.0.2"], true))),
                ],
                vec![
                    ClusterDns {
                        region: "eu".into(),
                        zones: vec!["eu1".into()],
                        ..entry("c1", &["10.0.0.1"])
                    },
                    entry("c2", &["10.0.0.9"]),
                ],
                false,
                vec![
                    ClusterDns {
                        region: "eu".into(),
                        zones: vec!["eu1".into()],
                        ..entry("c1", &[])
                    },
                    entry("c2", &["10.0.0.2"]),
                ],
            ),
            (
                "offline cluster without a previous entry gets none",
                vec![member("c1", false, Some((&["10.0.0.1"], true)))],
                vec![entry("c9", &[])],
                false,
                vec![],
            ),
            (
                "LB ingress entries sorted by IP then hostname",
                vec![member(
                    "c1",
                    true,
                    Some((&["10.0.0.2", "b.lb.test", "10.0.0.1", "a.lb.test"], true)),
                )],
                vec![],
                false,
                vec![ClusterDns {
                    // Hostname-only entries have no IP and sort first, as in KubeFed.
                    load_balancer: mk_lb(&["a.lb.test", "b.lb.test", "10.0.0.1", "10.0.0.2"]),
                    ..entry("c1", &[])
                }],
            ),
        ];
        for (what, members, previous, allow, want) in rows {
            assert_eq!(
                service_dns_status(&members, &previous, allow),
                want,
                "{what}"
            );
        }
    }

    #[test]
    fn cluster_without_region_or_zones_still_gets_an_entry() {
        let m = MemberService {
            cluster: "kind".into(),
            ready: true,
            region: None,
            zones: vec![],
            service: Some(ServiceObservation {
                load_balancer: mk_lb(&["172.18.0.5"]),
                has_ready_endpoints: true,
            }),
        };
        assert_eq!(
            service_dns_status(&[m], &[], false),
            vec![ClusterDns {
                cluster: "kind".into(),
                load_balancer: mk_lb(&["172.18.0.5"]),
                zones: vec![],
                region: String::new(),
            }]
        );
    }

    #[test]
    fn ingress_status_rules() {
        let members = vec![
            MemberIngress {
                cluster: "c3".into(),
                ready: true,
                ingress: Some(mk_lb(&["10.0.0.3", "10.0.0.1"])),
            },
            MemberIngress {
                cluster: "c1".into(),
                ready: true,
                ingress: None,
            },
            MemberIngress {
                cluster: "c2".into(),
                ready: false,
                ingress: Some(mk_lb(&["10.0.0.2"])),
            },
        ];
        assert_eq!(
            ingress_dns_status(&members),
            vec![
                ClusterIngressDns {
                    cluster: "c1".into(),
                    load_balancer: LoadBalancerStatus::default(),
                },
                ClusterIngressDns {
                    cluster: "c3".into(),
                    load_balancer: mk_lb(&["10.0.0.1", "10.0.0.3"]),
                },
            ]
        );
    }
}
