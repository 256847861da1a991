//! The KubeFed API as Rust types: every kind of `../shared/SPEC.md` §1 with KubeFed's
//! field names, JSON casing and defaults, plus the schema validation, status subresources
//! and printer columns that the CRDs in `crds/` are generated from.
//!
//! This module does no I/O. `crds()` is the single source of the checked-in CRD YAML
//! (`kubefed crds` prints it, a test fails when `crds/` drifts from it).

pub mod core;
pub mod multiclusterdns;
pub mod scheduling;
pub mod types;
pub mod validation;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The namespace the control plane runs in unless told otherwise.
pub const DEFAULT_KUBEFED_NAMESPACE: &str = "kube-federation-system";

/// Every CRD this project installs, in a stable order (the order of `crds/`).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        core::FederatedTypeConfig::crd(),
        core::KubeFedCluster::crd(),
        core::KubeFedConfig::crd(),
        multiclusterdns::DNSEndpoint::crd(),
        multiclusterdns::Domain::crd(),
        multiclusterdns::IngressDNSRecord::crd(),
        multiclusterdns::ServiceDNSRecord::crd(),
        scheduling::ReplicaSchedulingPreference::crd(),
    ]
}

/// Renders CRDs as one multi-document YAML stream, the format of `crds/` and `kubefed crds`.
pub fn crds_yaml(crds: &[CustomResourceDefinition]) -> Result<String, serde_saphyr::ser::Error> {
    let mut out = String::new();
    for crd in crds {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(crd)?);
    }
    Ok(out)
}

/// The file name a CRD is stored under in `crds/`.
pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}
