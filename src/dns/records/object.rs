//! The objects the DNSEndpoint controller writes: `service-<name>` / `ingress-<name>`
//! DNSEndpoints in the record's namespace, owned by the record, and their
//! `externaldns.k8s.io/v1alpha1` copies for ExternalDNS >= v0.21.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use serde::Serialize;
use serde_json::Value;

use super::{Endpoint, Problem, RecordError, Resolved, ingress_endpoints, service_endpoints};
use crate::api::multiclusterdns::{
    DNSEndpoint, DNSEndpointSpec, ENDPOINT_COUNT_ANNOTATION, IngressDNSRecord, ServiceDNSRecord,
};

/// The group/version ExternalDNS's CRD source reads from v0.21 on (external-dns#6414).
pub const EXTERNALDNS_API_VERSION: &str = "externaldns.k8s.io/v1alpha1";

/// `service-<record name>`, KubeFed's name for a ServiceDNSRecord's DNSEndpoint.
pub fn service_dns_endpoint_name(record_name: &str) -> String {
    format!("service-{record_name}")
}

/// `ingress-<record name>`, KubeFed's name for an IngressDNSRecord's DNSEndpoint.
pub fn ingress_dns_endpoint_name(record_name: &str) -> String {
    format!("ingress-{record_name}")
}

/// The owner reference to a record, with `controller` and `blockOwnerDeletion` set, so
/// that deleting the record deletes its DNSEndpoints. `None` when the record has no uid
/// (a record read from a file by `kubefed render`): a reference without uid is invalid.
fn owner_of<K: Resource<DynamicType = ()>>(rec: &K) -> Option<OwnerReference> {
    let meta = rec.meta();
    let uid = meta.uid.as_ref().filter(|u| !u.is_empty())?;
    Some(OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: meta.name.clone().unwrap_or_default(),
        uid: uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

fn dns_endpoint<K: Resource<DynamicType = ()>>(
    rec: &K,
    name: String,
    endpoints: Vec<Endpoint>,
) -> DNSEndpoint {
    let count = endpoints.len().to_string();
    let mut obj = DNSEndpoint::new(&name, DNSEndpointSpec { endpoints });
    obj.metadata = ObjectMeta {
        name: Some(name),
        namespace: rec.meta().namespace.clone(),
        owner_references: owner_of(rec).map(|o| vec![o]),
        annotations: Some([(ENDPOINT_COUNT_ANNOTATION.to_string(), count)].into()),
        ..Default::default()
    };
    obj
}

/// The DNSEndpoint `service-<name>` for a ServiceDNSRecord's endpoints (from
/// [`service_endpoints`]): same namespace, owned by the record.
pub fn dns_endpoint_for_service(rec: &ServiceDNSRecord, endpoints: Vec<Endpoint>) -> DNSEndpoint {
    let name = service_dns_endpoint_name(rec.metadata.name.as_deref().unwrap_or_default());
    dns_endpoint(rec, name, endpoints)
}

/// The DNSEndpoint `ingress-<name>` for an IngressDNSRecord's endpoints (from
/// [`ingress_endpoints`]): same namespace, owned by the record.
pub fn dns_endpoint_for_ingress(rec: &IngressDNSRecord, endpoints: Vec<Endpoint>) -> DNSEndpoint {
    let name = ingress_dns_endpoint_name(rec.metadata.name.as_deref().unwrap_or_default());
    dns_endpoint(rec, name, endpoints)
}

/// A record's DNSEndpoint and what was left out of it.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub object: DNSEndpoint,
    pub problems: Vec<Problem>,
}

/// [`service_endpoints`] then [`dns_endpoint_for_service`]: the one path from a
/// ServiceDNSRecord to its DNSEndpoint, shared by the controller and `kubefed render`.
pub fn render_service(
    rec: &ServiceDNSRecord,
    resolved: &Resolved,
) -> Result<Rendered, RecordError> {
    let out = service_endpoints(rec, resolved)?;
    Ok(Rendered {
        object: dns_endpoint_for_service(rec, out.endpoints),
        problems: out.problems,
    })
}

/// [`ingress_endpoints`] then [`dns_endpoint_for_ingress`]. Fails only without
/// name/namespace, which the DNSEndpoint's own name and namespace come from.
pub fn render_ingress(
    rec: &IngressDNSRecord,
    resolved: &Resolved,
) -> Result<Rendered, RecordError> {
    if rec.metadata.name.as_deref().unwrap_or_default().is_empty() {
        return Err(RecordError::MissingMetadata("name"));
    }
    if rec
        .metadata
        .namespace
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        return Err(RecordError::MissingMetadata("namespace"));
    }
    let out = ingress_endpoints(rec, resolved);
    Ok(Rendered {
        object: dns_endpoint_for_ingress(rec, out.endpoints),
        problems: out.problems,
    })
}

/// The `externaldns.k8s.io/v1alpha1` twin of a DNSEndpoint (see [`externaldns_copy`]),
/// typed so that it serialises with the fields in their usual order.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalDnsEndpoint {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: ObjectMeta,
    pub spec: DNSEndpointSpec,
}

/// The `externaldns.k8s.io/v1alpha1` DNSEndpoint of the same name, namespace and owner,
/// for ExternalDNS >= v0.21 whose CRD source reads only that group.
///
/// Endpoint labels are left off. ExternalDNS gives labels meaning (its registry's
/// `owner`/`resource`, and its coredns provider reads labels keyed by a target as that
/// target's etcd key prefix), so KubeFed's `serviceName` label is at best noise there
/// and at worst misread; none of our labels is meant for ExternalDNS. The object labels
/// and annotations of `ep` are not copied either: only identity and ownership are.
pub fn externaldns_copy_object(ep: &DNSEndpoint) -> ExternalDnsEndpoint {
    ExternalDnsEndpoint {
        api_version: EXTERNALDNS_API_VERSION,
        kind: "DNSEndpoint",
        metadata: ObjectMeta {
            name: ep.metadata.name.clone(),
            namespace: ep.metadata.namespace.clone(),
            owner_references: ep.metadata.owner_references.clone(),
            ..Default::default()
        },
        spec: DNSEndpointSpec {
            endpoints: ep
                .spec
                .endpoints
                .iter()
                .map(|e| Endpoint {
                    labels: Default::default(),
                    ..e.clone()
                })
                .collect(),
        },
    }
}

/// [`externaldns_copy_object`] as JSON, ready for a dynamic API (the externaldns.k8s.io
/// CRD is not ours, so there is no typed client for it).
pub fn externaldns_copy(ep: &DNSEndpoint) -> Value {
    serde_json::to_value(externaldns_copy_object(ep))
        .expect("a DNSEndpoint always serialises to JSON")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::ingress::tests::mk_ingress_record;
    use super::super::service::tests::{mk_cluster, mk_record};
    use super::*;

    #[test]
    fn service_dns_endpoint_is_named_and_owned_like_kubefed() {
        let mut rec = mk_record(vec![mk_cluster("c1", "us", &["us1"], &["10.0.0.1"])]);
        rec.spec.external_name = Some("foo".into());
        let r = render_service(&rec, &Resolved::new()).unwrap();
        let v = serde_json::to_value(&r.object).unwrap();
        assert_eq!(v["apiVersion"], "multiclusterdns.kubefed.io/v1alpha1");
        assert_eq!(v["kind"], "DNSEndpoint");
        assert_eq!(v["metadata"]["name"], "service-nginx");
        assert_eq!(v["metadata"]["namespace"], "test");
        assert_eq!(
            v["metadata"]["ownerReferences"],
            json!([{
                "apiVersion": "multiclusterdns.kubefed.io/v1alpha1",
                "kind": "ServiceDNSRecord",
                "name": "nginx",
                "uid": "0b3b2c1e-uid",
                "controller": true,
                "blockOwnerDeletion": true,
            }])
        );
        assert_eq!(v["spec"]["endpoints"].as_array().unwrap().len(), 3);
        assert_eq!(v["spec"]["endpoints"][0]["labels"]["serviceName"], "nginx");
        assert!(v.get("status").is_none());
    }

    #[test]
    fn ingress_dns_endpoint_is_named_and_owned_like_kubefed() {
        let rec = mk_ingress_record(&["a.example.com"], &[("c1", &["10.0.0.1"])]);
        let r = render_ingress(&rec, &Resolved::new()).unwrap();
        assert_eq!(r.object.metadata.name.as_deref(), Some("ingress-web"));
        let owner = &r.object.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("IngressDNSRecord", "web", "9f1c-uid")
        );
        assert_eq!(
            (owner.controller, owner.block_owner_deletion),
            (Some(true), Some(true))
        );
    }

    #[test]
    fn record_without_uid_gets_no_owner_reference() {
        let mut rec = mk_record(vec![]);
        rec.metadata.uid = None;
        let r = render_service(&rec, &Resolved::new()).unwrap();
        assert_eq!(r.object.metadata.owner_references, None);
        assert!(r.object.spec.endpoints.is_empty());
    }

    #[test]
    fn ingress_without_namespace_is_an_error() {
        let mut rec = mk_ingress_record(&["a.example.com"], &[]);
        rec.metadata.namespace = None;
        assert_eq!(
            render_ingress(&rec, &Resolved::new()).unwrap_err(),
            RecordError::MissingMetadata("namespace")
        );
    }

    #[test]
    fn externaldns_copy_keeps_identity_and_drops_labels() {
        let mut rec = mk_record(vec![mk_cluster("c1", "us", &["us1"], &["10.0.0.1"])]);
        rec.spec.external_name = Some("foo".into());
        let obj = render_service(&rec, &Resolved::new()).unwrap().object;
        let copy = externaldns_copy(&obj);
        assert_eq!(copy["apiVersion"], "externaldns.k8s.io/v1alpha1");
        assert_eq!(copy["kind"], "DNSEndpoint");
        assert_eq!(copy["metadata"]["name"], "service-nginx");
        assert_eq!(copy["metadata"]["namespace"], "test");
        assert_eq!(
            copy["metadata"]["ownerReferences"][0]["kind"],
            "ServiceDNSRecord"
        );
        let eps = copy["spec"]["endpoints"].as_array().unwrap();
        assert_eq!(eps.len(), 3);
        assert!(eps.iter().all(|e| e.get("labels").is_none()));
        assert_eq!(
            eps[0],
            json!({"dnsName": "foo.test.galactic.svc.example.com", "targets": ["10.0.0.1"],
                   "recordType": "A", "recordTTL": 180})
        );
    }
}
