//! `multiclusterdns.kubefed.io/v1alpha1`: Domain, ServiceDNSRecord, IngressDNSRecord and
//! DNSEndpoint, compatible with KubeFed v0.6 (the last release with multi-cluster DNS).
//!
//! Additive fields beyond KubeFed (all optional, absent = KubeFed's behaviour):
//! `ServiceDNSRecord.spec.perClusterRecords`, and `status.conditions` on both records.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::LoadBalancerStatus;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::validation::{
    DNS_LABEL, DNS_NAME, DNS_NAME_MAX, DNS_NAME_WILDCARD, DNS_SUBDOMAIN, TTL_MAX,
};

pub const GROUP: &str = "multiclusterdns.kubefed.io";
pub const VERSION: &str = "v1alpha1";
pub const API_VERSION: &str = "multiclusterdns.kubefed.io/v1alpha1";

/// Annotation on a DNSEndpoint holding the number of its endpoints, for the ENDPOINTS
/// printer column: the API server prints only the first match of a JSONPath like
/// `.spec.endpoints[*].dnsName`, and JSONPath cannot count.
pub const ENDPOINT_COUNT_ANNOTATION: &str = "multiclusterdns.kubefed.io/endpoints";

/// TTL KubeFed uses when a record leaves `recordTTL` unset or zero.
pub const DEFAULT_RECORD_TTL: i64 = 180;

fn default_record_ttl() -> i64 {
    DEFAULT_RECORD_TTL
}

fn is_false(b: &bool) -> bool {
    !*b
}

// ---------------------------------------------------------------------------------------
// Domain

/// The DNS zone of a federation. Unlike the other kinds its fields sit at the top level
/// (`domain`, `nameServer`), as in KubeFed; its name is the `<federation>` label of
/// every record name, and it lives in the KubeFed namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Domain {
    pub metadata: ObjectMeta,
    /// The zone, e.g. `example.com`.
    pub domain: String,
    /// The authoritative name server for the zone, e.g. `ns1.example.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_server: Option<String>,
}

impl kube::Resource for Domain {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Domain".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        GROUP.into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        VERSION.into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "domains".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Serialised with apiVersion/kind so that the object can be sent to the API server as is.
impl Domain {
    pub fn new(name: &str, namespace: &str, domain: &str) -> Self {
        Domain {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                ..Default::default()
            },
            domain: domain.into(),
            name_server: None,
        }
    }

    /// The CRD: generated from [`DomainFields`] like the others, then lifted out of `spec`
    /// because KubeFed's Domain has no spec.
    pub fn crd() -> CustomResourceDefinition {
        let mut crd = DomainShape::crd();
        crd.spec.names.kind = "Domain".into();
        crd.spec.names.list_kind = Some("DomainList".into());
        for version in crd.spec.versions.iter_mut() {
            version.subresources = None;
            let Some(schema) = version
                .schema
                .as_mut()
                .and_then(|s| s.open_api_v3_schema.as_mut())
            else {
                continue;
            };
            let props = schema.properties.get_or_insert_with(Default::default);
            let spec: JSONSchemaProps = props.remove("spec").expect("generated CRD has a spec");
            props.extend(spec.properties.unwrap_or_default());
            schema.required = spec.required;
            schema.title = Some("Domain".into());
            schema.description = spec.description;
        }
        crd
    }
}

impl Serialize for DomainWire<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("apiVersion", API_VERSION)?;
        m.serialize_entry("kind", "Domain")?;
        m.serialize_entry("metadata", &self.0.metadata)?;
        m.serialize_entry("domain", &self.0.domain)?;
        if let Some(ns) = &self.0.name_server {
            m.serialize_entry("nameServer", ns)?;
        }
        m.end()
    }
}

/// Wire form of a [`Domain`] with `apiVersion` and `kind`, for creating it.
pub struct DomainWire<'a>(pub &'a Domain);

// The Domain CRD is generated through this spec-shaped twin (the same schema machinery as
// the other kinds), then lifted to the top level by `Domain::crd`. Its doc comment is the
// Domain's description in the CRD.
/// The DNS zone of a federation (in the KubeFed namespace). Its name is the
/// `<federation>` label of every record name, e.g. `test-domain` in
/// `svc.ns.test-domain.svc.example.com`; its fields sit at the top level, as in KubeFed.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "multiclusterdns.kubefed.io",
    version = "v1alpha1",
    kind = "DomainShape",
    plural = "domains",
    singular = "domain",
    namespaced,
    printcolumn(name = "Domain", type_ = "string", json_path = ".domain"),
    printcolumn(name = "NameServer", type_ = "string", json_path = ".nameServer"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct DomainFields {
    /// The DNS zone of the federation, e.g. `example.com`.
    #[schemars(length(min = 1, max = DNS_NAME_MAX), pattern(DNS_NAME))]
    pub domain: String,
    /// The authoritative name server of the zone, e.g. `ns1.example.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = DNS_NAME_MAX), pattern(DNS_NAME))]
    pub name_server: Option<String>,
}

// ---------------------------------------------------------------------------------------
// ServiceDNSRecord

/// DNS names for the Service of the same name and namespace in every member cluster:
/// global `<svc>.<ns>.<federation>.svc.<domain>`, and per region and zone below it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "multiclusterdns.kubefed.io",
    version = "v1alpha1",
    kind = "ServiceDNSRecord",
    namespaced,
    status = "ServiceDNSRecordStatus",
    doc = "DNS names for the Service of the same name and namespace in every member cluster: a global name `<service>.<namespace>.<domainRef>.svc.<domain>` and one per region and zone, whose addresses are the members' load balancers. The controller writes them as the DNSEndpoint `service-<name>`.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='Ready')].status"
    ),
    printcolumn(name = "Domain", type_ = "string", json_path = ".status.domain"),
    printcolumn(
        name = "DomainRef",
        type_ = "string",
        json_path = ".spec.domainRef",
        priority = 1
    ),
    printcolumn(name = "TTL", type_ = "integer", json_path = ".spec.recordTTL"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceDNSRecordSpec {
    /// Name of the Domain (in the KubeFed namespace) the Service's names belong to.
    #[schemars(length(min = 1, max = DNS_NAME_MAX), pattern(DNS_SUBDOMAIN))]
    pub domain_ref: String,
    /// TTL in seconds of the records; 0 means the default, 180.
    #[serde(rename = "recordTTL", default = "default_record_ttl")]
    #[schemars(range(min = 0, max = TTL_MAX))]
    pub record_ttl: i64,
    /// Adds `<dnsPrefix>.<domain>` as a CNAME to the global name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = DNS_NAME_MAX), pattern(DNS_NAME))]
    pub dns_prefix: Option<String>,
    /// Replaces the Service name in the record names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), pattern(DNS_LABEL))]
    pub external_name: Option<String>,
    /// Publish a cluster's addresses even when its Service has no ready endpoints.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_service_without_endpoints: bool,
    /// Beyond KubeFed: also publish `<svc>.<ns>.<federation>.svc.<cluster>.clusters.<domain>`
    /// for each cluster. `clusters` is then a reserved region name.
    #[serde(default, skip_serializing_if = "is_false")]
    pub per_cluster_records: bool,
}

/// What the controller found in the member clusters and could publish.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceDNSRecordStatus {
    /// The zone of the referenced Domain.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// One entry per member cluster, sorted by cluster name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<ClusterDns>,
    /// What only the controller can judge: `Ready` and its reasons (unknown domainRef,
    /// clusters without topology, unresolvable load balancer hostnames).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A cluster's share of a Service: its load balancer and where the cluster is.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterDns {
    /// Name of the KubeFedCluster.
    pub cluster: String,
    /// The Service's load balancer in that cluster; empty while the cluster is offline or
    /// its Service has no ready endpoints.
    #[serde(default)]
    pub load_balancer: LoadBalancerStatus,
    /// Zones of the cluster's nodes (from its KubeFedCluster status).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<String>,
    /// Region of the cluster's nodes (from its KubeFedCluster status).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub region: String,
}

// ---------------------------------------------------------------------------------------
// IngressDNSRecord

/// DNS names for the hosts of the Ingress of the same name and namespace in every member.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "multiclusterdns.kubefed.io",
    version = "v1alpha1",
    kind = "IngressDNSRecord",
    namespaced,
    status = "IngressDNSRecordStatus",
    doc = "DNS names for the hosts of the Ingress of the same name and namespace in every member cluster: one A/AAAA record per host with every member's Ingress load balancer addresses, written as the DNSEndpoint `ingress-<name>`.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='Ready')].status"
    ),
    printcolumn(name = "Hosts", type_ = "string", json_path = ".spec.hosts"),
    printcolumn(name = "TTL", type_ = "integer", json_path = ".spec.recordTTL"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct IngressDNSRecordSpec {
    /// Hosts from the Ingress rules, e.g. `ingress.example.com`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(min = 1, max = DNS_NAME_MAX), pattern(DNS_NAME_WILDCARD)))]
    pub hosts: Vec<String>,
    /// TTL in seconds of the records; 0 means the default, 180.
    #[serde(rename = "recordTTL", default = "default_record_ttl")]
    #[schemars(range(min = 0, max = TTL_MAX))]
    pub record_ttl: i64,
}

/// What the controller found in the member clusters and could publish.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressDNSRecordStatus {
    /// One entry per member cluster, sorted by cluster name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<ClusterIngressDns>,
    /// What only the controller can judge: `Ready` and its reasons (unresolvable load
    /// balancer hostnames, hosts without addresses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A cluster's share of an Ingress: its load balancer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterIngressDns {
    /// Name of the KubeFedCluster.
    pub cluster: String,
    /// The Ingress's load balancer in that cluster; empty while the cluster is offline.
    #[serde(default)]
    pub load_balancer: LoadBalancerStatus,
}

// ---------------------------------------------------------------------------------------
// DNSEndpoint

/// The records a ServiceDNSRecord or IngressDNSRecord produces, in the shape ExternalDNS's
/// CRD source reads.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "multiclusterdns.kubefed.io",
    version = "v1alpha1",
    kind = "DNSEndpoint",
    namespaced,
    status = "DNSEndpointStatus",
    doc = "DNS records in the shape ExternalDNS's CRD source reads, written by the ServiceDNSRecord and IngressDNSRecord controllers (named `service-<record>` or `ingress-<record>`, owned by the record) and served by the skydns writer and the embedded DNS server.",
    printcolumn(
        name = "Endpoints",
        // A string: annotation values are, and the API server prints nothing for a
        // string under an integer column.
        type_ = "string",
        json_path = ".metadata.annotations.multiclusterdns\\.kubefed\\.io/endpoints"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct DNSEndpointSpec {
    /// The records: one per DNS name and record type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<Endpoint>,
}

/// One DNS name with its record type and targets.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// The fully qualified name of the record.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = DNS_NAME_MAX), pattern(DNS_NAME_WILDCARD))]
    pub dns_name: String,
    /// Addresses (A/AAAA), names (CNAME) or text (TXT) the record points to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// `A`, `AAAA`, `CNAME`, `TXT`, `SRV`, `NS`, `PTR`, `MX` or `NAPTR`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(extend("enum" = ["A", "AAAA", "CNAME", "TXT", "SRV", "NS", "PTR", "MX", "NAPTR"]))]
    pub record_type: String,
    /// TTL in seconds; 0 lets the DNS provider choose.
    #[serde(rename = "recordTTL", default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0, max = TTL_MAX))]
    pub record_ttl: i64,
    /// Provider-specific labels (KubeFed sets `serviceName` for records with an
    /// `externalName`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// Written by ExternalDNS once it has processed the object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DNSEndpointStatus {
    /// The `metadata.generation` ExternalDNS last processed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub observed_generation: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn domain_has_top_level_fields() {
        let d: Domain = serde_json::from_value(json!({
            "apiVersion": API_VERSION, "kind": "Domain",
            "metadata": {"name": "test-domain", "namespace": "kube-federation-system"},
            "domain": "example.com", "nameServer": "ns1.example.com"
        }))
        .unwrap();
        assert_eq!(d.domain, "example.com");
        let wire = serde_json::to_value(DomainWire(&d)).unwrap();
        assert_eq!(wire["kind"], "Domain");
        assert_eq!(wire["nameServer"], "ns1.example.com");
        assert!(wire.get("spec").is_none());
    }

    #[test]
    fn domain_crd_lifts_spec_to_top_level() {
        let crd = Domain::crd();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("domains.multiclusterdns.kubefed.io")
        );
        assert_eq!(crd.spec.names.kind, "Domain");
        let schema = crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap();
        let props = schema.properties.as_ref().unwrap();
        assert!(props.contains_key("domain") && props.contains_key("nameServer"));
        assert!(!props.contains_key("spec"));
        assert_eq!(
            schema.required.as_deref(),
            Some(&["domain".to_string()][..])
        );
    }

    #[test]
    fn servicednsrecord_uses_kubefed_field_names() {
        let r: ServiceDNSRecord = serde_json::from_value(json!({
            "apiVersion": API_VERSION, "kind": "ServiceDNSRecord",
            "metadata": {"name": "test-service", "namespace": "test-namespace"},
            "spec": {"domainRef": "test-domain", "recordTTL": 300, "dnsPrefix": "foo",
                     "externalName": "bar", "allowServiceWithoutEndpoints": true},
            "status": {"domain": "example.com", "dns": [{
                "cluster": "c1", "loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]},
                "zones": ["z1"], "region": "r1"}]}
        }))
        .unwrap();
        assert_eq!(r.spec.record_ttl, 300);
        assert!(r.spec.allow_service_without_endpoints);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["spec"]["recordTTL"], 300);
        assert_eq!(
            v["status"]["dns"][0]["loadBalancer"]["ingress"][0]["ip"],
            "10.0.0.1"
        );
    }

    #[test]
    fn record_ttl_defaults_to_180() {
        let r: ServiceDNSRecordSpec = serde_json::from_value(json!({"domainRef": "d"})).unwrap();
        assert_eq!(r.record_ttl, DEFAULT_RECORD_TTL);
        let i: IngressDNSRecordSpec =
            serde_json::from_value(json!({"hosts": ["a.example.com"]})).unwrap();
        assert_eq!(i.record_ttl, 180);
    }

    #[test]
    fn endpoint_matches_externaldns_shape() {
        let e = Endpoint {
            dns_name: "a.example.com".into(),
            targets: vec!["1.2.3.4".into()],
            record_type: "A".into(),
            record_ttl: 300,
            labels: BTreeMap::new(),
        };
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"dnsName": "a.example.com", "targets": ["1.2.3.4"], "recordType": "A", "recordTTL": 300})
        );
    }
}
