//! ServiceDNSRecord / IngressDNSRecord -> DNSEndpoint: the KubeFed rules, as pure functions.
//!
//! This module owns the DNS name scheme of multi-cluster DNS (`docs/dns-names.md` is the
//! user-facing description) and the aggregation of member-cluster Services and Ingresses
//! into record status. Everything here is synchronous over borrowed data: the controllers
//! and `kubefed render` call the same functions, so what `render` prints is what the
//! controller writes.
//!
//! ```text
//!  member Services/Ingresses ──status::service_dns_status──▶ ServiceDNSRecord.status.dns
//!  record (spec + status) + Resolved ──service_endpoints──▶ RecordOutput { endpoints, problems }
//!  record + endpoints ──dns_endpoint_for_service──▶ DNSEndpoint ──externaldns_copy──▶ JSON
//! ```
//!
//! Names, with `<p>` = `<service|externalName>.<namespace>.<domainRef>.svc` and `<domain>`
//! = `status.domain`:
//!
//! | level   | name                                  | without addresses        |
//! |---------|---------------------------------------|--------------------------|
//! | global  | `<p>.<domain>`                        | no record                |
//! | region  | `<p>.<region>.<domain>`               | CNAME to global          |
//! | zone    | `<p>.<zone>.<region>.<domain>`        | CNAME to region          |
//! | cluster | `<p>.<cluster>.clusters.<domain>` (opt-in `perClusterRecords`) | CNAME to region (global without one) |
//! | prefix  | `<dnsPrefix>.<domain>`                | always a CNAME to global |
//!
//! Invariants of every output: endpoints are sorted by `(dnsName, recordType)`; a name
//! carries either address records (A and/or AAAA) or one CNAME, never both (an address
//! beats a CNAME); targets are sorted (as strings, like KubeFed) and unique.
//!
//! Limits: load balancer hostnames are resolved by the caller (I/O), which passes the
//! answers in as [`Resolved`]; a hostname missing from that table or without addresses
//! drops only that target and is reported as a [`Problem`]. One cluster's bad data never
//! blocks another cluster's entries.

mod common;
mod ingress;
mod object;
mod service;
pub mod status;

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::LoadBalancerStatus;

pub use crate::api::multiclusterdns::Endpoint;
pub use ingress::{ingress_endpoints, ingress_hostnames};
pub use object::{
    EXTERNALDNS_API_VERSION, ExternalDnsEndpoint, Rendered, dns_endpoint_for_ingress,
    dns_endpoint_for_service, externaldns_copy, externaldns_copy_object, ingress_dns_endpoint_name,
    render_ingress, render_service, service_dns_endpoint_name,
};
pub use service::{service_endpoints, service_hostnames};

/// Record types this module writes.
pub const RECORD_TYPE_A: &str = "A";
pub const RECORD_TYPE_AAAA: &str = "AAAA";
pub const RECORD_TYPE_CNAME: &str = "CNAME";

/// Label KubeFed puts on every endpoint of a record with `externalName`: the Service name.
pub const SERVICE_NAME_LABEL: &str = "serviceName";

/// The region label reserved by `perClusterRecords` (`<p>.<cluster>.clusters.<domain>`).
pub const CLUSTERS_LABEL: &str = "clusters";

/// What the I/O edge found for one load balancer hostname.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The hostname's addresses (A and AAAA answers together). Empty = resolved to nothing.
    Addresses(Vec<IpAddr>),
    /// The lookup failed; the text says why (shown in the problem).
    Failed(String),
}

/// Hostname -> what its lookup gave. A hostname that is not a key counts as unresolved.
pub type Resolved = BTreeMap<String, Resolution>;

/// The endpoints of one record and what was wrong with its inputs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecordOutput {
    /// Sorted by `(dnsName, recordType)`, merged and de-duplicated.
    pub endpoints: Vec<Endpoint>,
    /// Everything left out and why, in cluster order; empty when all went in.
    pub problems: Vec<Problem>,
}

/// Something in a record's inputs that made the output smaller than the user asked for.
/// Never fatal: the rest of the record, and every other cluster, is still published.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A load balancer hostname had no addresses in the [`Resolved`] table.
    #[error(
        "cluster {cluster}: load balancer hostname {hostname} did not resolve ({reason}); its addresses are left out"
    )]
    UnresolvedHostname {
        cluster: String,
        hostname: String,
        reason: String,
    },
    /// The cluster has no region (KubeFed refused every record then: kubefed#1031).
    #[error(
        "cluster {cluster} has no region: only the global name gets its addresses, no region or zone names are made for it"
    )]
    ClusterWithoutRegion { cluster: String },
    /// The cluster has a region but no zones.
    #[error("cluster {cluster} has no zones: no zone names are made for it")]
    ClusterWithoutZones { cluster: String },
    /// With `perClusterRecords` the region `clusters` would collide with the per-cluster names.
    #[error(
        "cluster {cluster} is in region `clusters`, which perClusterRecords reserves: no region or zone names are made for it"
    )]
    ReservedRegion { cluster: String },
    /// A composed name is not a valid DNS name (a label over 63 or a name over 253 octets).
    #[error("{name} is not a valid DNS name ({reason}); it is left out")]
    InvalidName {
        cluster: Option<String>,
        name: String,
        reason: String,
    },
}

impl Problem {
    /// A CamelCase reason for conditions, Events and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Problem::UnresolvedHostname { .. } => "UnresolvedHostname",
            Problem::ClusterWithoutRegion { .. } | Problem::ClusterWithoutZones { .. } => {
                "ClusterWithoutTopology"
            }
            Problem::ReservedRegion { .. } => "ReservedRegion",
            Problem::InvalidName { .. } => "InvalidName",
        }
    }

    /// The member cluster the problem belongs to, when it belongs to one.
    pub fn cluster(&self) -> Option<&str> {
        match self {
            Problem::UnresolvedHostname { cluster, .. }
            | Problem::ClusterWithoutRegion { cluster }
            | Problem::ClusterWithoutZones { cluster }
            | Problem::ReservedRegion { cluster } => Some(cluster),
            Problem::InvalidName { cluster, .. } => cluster.as_deref(),
        }
    }
}

/// Why a record produces no DNSEndpoint at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// `metadata.name` or `metadata.namespace` is missing; both are part of every name.
    #[error("the record has no metadata.{0}")]
    MissingMetadata(&'static str),
    /// `status.domain` is empty: the servicedns controller has not (yet) found the Domain
    /// named by `spec.domainRef`, so there is no zone to put the names in.
    #[error(
        "status.domain is empty: the Domain `{domain_ref}` has not been resolved into the record's status yet"
    )]
    NoDomain { domain_ref: String },
    /// The global name cannot be a DNS name, so no name of the record can.
    #[error("{name} is not a valid DNS name: {reason}")]
    InvalidName { name: String, reason: String },
}

/// The load balancer ingress entries of a status, whatever the caller keeps them in.
pub(crate) fn lb_targets(lb: &LoadBalancerStatus) -> impl Iterator<Item = &str> {
    lb.ingress.iter().flatten().flat_map(|i| {
        [i.ip.as_deref(), i.hostname.as_deref()]
            .into_iter()
            .flatten()
            .filter(|t| !t.is_empty())
    })
}
