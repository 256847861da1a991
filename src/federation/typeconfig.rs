//! Enabling a type for propagation: which API resource the user means, and the
//! `Federated<Kind>` CRD and `FederatedTypeConfig` that enable it (KubeFed's field
//! values). Pure: the discovery documents come in, objects and decisions go out; the CLI
//! (`cli::enable`) does the requests.
//!
//! Name resolution is KubeFed's: case-insensitive match against the plural, the singular,
//! the kind, `plural.group` or a short name, over the server-preferred version of every
//! group; a match in the core group wins outright; several matches elsewhere are an
//! error that lists them (give `plural.group`).
//!
//! The federated type is `Federated<Kind>` in the federated group (default
//! `types.kubefed.io`), version `v1beta1`, plural `federated<target plural>`, with the
//! target's scope except that a FederatedNamespace is namespaced; its CRD gets the
//! target's short names prefixed with `f`. The FederatedTypeConfig is named
//! `<plural>[.<group>]`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use kube::api::ObjectMeta;

use crate::api::core::{
    ApiResource, FederatedTypeConfig, FederatedTypeConfigSpec, PropagationMode, ResourceScope,
};
use crate::api::types::{federated_crd, federated_type_for};

/// An API resource as discovery lists it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiscoveredResource {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub short_names: Vec<String>,
    pub namespaced: bool,
}

impl DiscoveredResource {
    /// `plural` or `plural.group`: the FederatedTypeConfig name.
    pub fn qualified_name(&self) -> String {
        qualified(&self.plural, &self.group)
    }

    pub fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.clone(),
            version: self.version.clone(),
            kind: self.kind.clone(),
            plural_name: self.plural.clone(),
            scope: if self.namespaced {
                ResourceScope::Namespaced
            } else {
                ResourceScope::Cluster
            },
        }
    }

    fn matches(&self, name: &str) -> bool {
        let name = name.to_lowercase();
        name == self.plural
            || name == self.singular
            || name == self.kind.to_lowercase()
            || name == self.qualified_name()
            || self.short_names.iter().any(|s| s.to_lowercase() == name)
    }
}

fn qualified(plural: &str, group: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

/// The resources of one discovery document (`/api/v1` or `/apis/<group>/<version>`);
/// subresources (`pods/status`) are left out.
pub fn discovered_resources(list: &APIResourceList) -> Vec<DiscoveredResource> {
    let (group, version) = match list.group_version.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), list.group_version.clone()),
    };
    list.resources
        .iter()
        .filter(|r| !r.name.contains('/'))
        .map(|r| DiscoveredResource {
            group: group.clone(),
            version: version.clone(),
            kind: r.kind.clone(),
            plural: r.name.clone(),
            singular: if r.singular_name.is_empty() {
                r.kind.to_lowercase()
            } else {
                r.singular_name.clone()
            },
            short_names: r.short_names.clone().unwrap_or_default(),
            namespaced: r.namespaced,
        })
        .collect()
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TypeConfigError {
    #[error(
        "no API resource named {0:?} is served by the host cluster (try `kubectl api-resources`)"
    )]
    NotFound(String),
    #[error("{name:?} matches several API resources ({}); give a group-qualified plural name", .matches.join(", "))]
    Ambiguous { name: String, matches: Vec<String> },
    #[error(
        "federation of {target} is already enabled with federated type {existing}; changing it to {wanted} is not supported (disable it with --delete-crd first)"
    )]
    FederatedTypeChanged {
        target: String,
        existing: String,
        wanted: String,
    },
    #[error(
        "FederatedTypeConfig {other:?} already uses the federated type CRD {crd:?}; enable {name:?} with a different --federated-group"
    )]
    CrdInUse {
        name: String,
        other: String,
        crd: String,
    },
}

/// The resource a user's type name means (see the module doc).
pub fn resolve_type(
    name: &str,
    resources: &[DiscoveredResource],
) -> Result<DiscoveredResource, TypeConfigError> {
    let matches: Vec<&DiscoveredResource> = resources.iter().filter(|r| r.matches(name)).collect();
    if let Some(core) = matches.iter().find(|r| r.group.is_empty()) {
        return Ok((*core).clone());
    }
    match matches.as_slice() {
        [] => Err(TypeConfigError::NotFound(name.to_string())),
        [one] => Ok((*one).clone()),
        many => {
            let mut names: Vec<String> = many.iter().map(|r| r.qualified_name()).collect();
            names.sort();
            names.dedup();
            if names.len() == 1 {
                return Ok(many[0].clone());
            }
            Err(TypeConfigError::Ambiguous {
                name: name.to_string(),
                matches: names,
            })
        }
    }
}

/// The federated type of a target (see [`federated_type_for`]).
pub fn federated_type(target: &ApiResource, federated_group: &str) -> ApiResource {
    federated_type_for(target, federated_group)
}

/// The FederatedTypeConfig that enables `target` (propagation Enabled).
pub fn type_config(
    target: &DiscoveredResource,
    federated_group: &str,
    namespace: &str,
) -> FederatedTypeConfig {
    let target_type = target.api_resource();
    let federated_type = federated_type(&target_type, federated_group);
    FederatedTypeConfig {
        metadata: ObjectMeta {
            name: Some(target.qualified_name()),
            namespace: Some(namespace.to_string()),
            ..Default::default()
        },
        spec: FederatedTypeConfigSpec {
            target_type,
            propagation: PropagationMode::Enabled,
            federated_type,
            status_type: None,
            status_collection: None,
        },
        status: None,
    }
}

/// The CRD name of a federated type: `<plural>.<group>`.
pub fn crd_name(federated: &ApiResource) -> String {
    qualified(&federated.plural_name, &federated.group)
}

/// The `Federated<Kind>` CRD of a type config, with the target's short names prefixed
/// by `f` (`deploy` → `fdeploy`).
pub fn type_crd(
    ftc: &FederatedTypeConfig,
    target: &DiscoveredResource,
) -> CustomResourceDefinition {
    let mut crd = federated_crd(&ftc.spec.federated_type);
    if !target.short_names.is_empty() {
        crd.spec.names.short_names =
            Some(target.short_names.iter().map(|s| format!("f{s}")).collect());
    }
    crd
}

fn describe(r: &ApiResource) -> String {
    format!("{}/{}", qualified(&r.plural_name, &r.group), r.version)
}

/// Whether enabling `wanted` conflicts with the type configs already there: the same
/// FTC with another federated type, or another FTC using the same federated CRD.
pub fn check_enable_conflicts(
    wanted: &FederatedTypeConfig,
    existing: &[FederatedTypeConfig],
) -> Result<(), TypeConfigError> {
    let name = wanted.metadata.name.clone().unwrap_or_default();
    let wanted_crd = crd_name(&wanted.spec.federated_type);
    for ftc in existing {
        let other = ftc.metadata.name.clone().unwrap_or_default();
        let fed = &ftc.spec.federated_type;
        if other == name {
            let w = &wanted.spec.federated_type;
            if fed.group != w.group || fed.version != w.version || fed.plural_name != w.plural_name
            {
                return Err(TypeConfigError::FederatedTypeChanged {
                    target: describe(&ftc.spec.target_type),
                    existing: describe(fed),
                    wanted: describe(w),
                });
            }
        } else if crd_name(fed) == wanted_crd {
            return Err(TypeConfigError::CrdInUse {
                name,
                other,
                crd: wanted_crd,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn discovery() -> Vec<DiscoveredResource> {
        let core: APIResourceList = serde_json::from_value(json!({
            "groupVersion": "v1",
            "resources": [
                {"name": "services", "singularName": "service", "namespaced": true, "kind": "Service",
                 "verbs": ["get"], "shortNames": ["svc"]},
                {"name": "services/status", "singularName": "", "namespaced": true, "kind": "Service", "verbs": ["get"]},
                {"name": "namespaces", "singularName": "namespace", "namespaced": false, "kind": "Namespace",
                 "verbs": ["get"], "shortNames": ["ns"]},
                {"name": "events", "singularName": "event", "namespaced": true, "kind": "Event",
                 "verbs": ["get"], "shortNames": ["ev"]}
            ]
        }))
        .unwrap();
        let apps: APIResourceList = serde_json::from_value(json!({
            "groupVersion": "apps/v1",
            "resources": [
                {"name": "deployments", "singularName": "deployment", "namespaced": true, "kind": "Deployment",
                 "verbs": ["get"], "shortNames": ["deploy"]}
            ]
        }))
        .unwrap();
        let events: APIResourceList = serde_json::from_value(json!({
            "groupVersion": "events.k8s.io/v1",
            "resources": [{"name": "events", "singularName": "event", "namespaced": true, "kind": "Event",
                           "verbs": ["get"], "shortNames": ["ev"]}]
        }))
        .unwrap();
        let widgets = |g: &str| -> APIResourceList {
            serde_json::from_value(json!({
                "groupVersion": format!("{g}/v1"),
                "resources": [{"name": "widgets", "singularName": "widget", "namespaced": true, "kind": "Widget", "verbs": ["get"]}]
            }))
            .unwrap()
        };
        [
            core,
            apps,
            events,
            widgets("a.example.com"),
            widgets("b.example.com"),
        ]
        .iter()
        .flat_map(discovered_resources)
        .collect()
    }

    #[test]
    fn names_resolve_like_kubefed() {
        let d = discovery();
        let cases = [
            ("deployments", "deployments.apps"),
            ("Deployment", "deployments.apps"),
            ("deployment", "deployments.apps"),
            ("deployments.apps", "deployments.apps"),
            ("deploy", "deployments.apps"),
            ("svc", "services"),
            ("services", "services"),
            ("Namespace", "namespaces"),
            ("events", "events"),
            ("events.events.k8s.io", "events.events.k8s.io"),
            ("widgets.b.example.com", "widgets.b.example.com"),
        ];
        for (name, want) in cases {
            assert_eq!(
                resolve_type(name, &d).unwrap().qualified_name(),
                want,
                "{name}"
            );
        }
        assert_eq!(
            resolve_type("widgets", &d),
            Err(TypeConfigError::Ambiguous {
                name: "widgets".into(),
                matches: vec![
                    "widgets.a.example.com".into(),
                    "widgets.b.example.com".into()
                ]
            })
        );
        let err = resolve_type("nosuchthing", &d).unwrap_err();
        assert_eq!(err, TypeConfigError::NotFound("nosuchthing".into()));
        assert!(!err.to_string().contains('\n'));
        assert_eq!(
            discovery()
                .iter()
                .filter(|r| r.plural.contains('/'))
                .count(),
            0
        );
    }

    #[test]
    fn type_config_has_kubefeds_field_values() {
        let d = discovery();
        let dep = resolve_type("deployments", &d).unwrap();
        let ftc = type_config(&dep, "types.kubefed.io", "kube-federation-system");
        assert_eq!(
            serde_json::to_value(&ftc).unwrap(),
            json!({
                "apiVersion": "core.kubefed.io/v1beta1", "kind": "FederatedTypeConfig",
                "metadata": {"name": "deployments.apps", "namespace": "kube-federation-system"},
                "spec": {
                    "federatedType": {"group": "types.kubefed.io", "kind": "FederatedDeployment",
                        "pluralName": "federateddeployments", "scope": "Namespaced", "version": "v1beta1"},
                    "propagation": "Enabled",
                    "targetType": {"group": "apps", "kind": "Deployment",
                        "pluralName": "deployments", "scope": "Namespaced", "version": "v1"}
                }
            })
        );
        let crd = type_crd(&ftc, &dep);
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("federateddeployments.types.kubefed.io")
        );
        assert_eq!(
            crd.spec.names.short_names,
            Some(vec!["fdeploy".to_string()])
        );

        let ns = type_config(
            &resolve_type("ns", &d).unwrap(),
            "types.kubefed.io",
            "kube-federation-system",
        );
        assert_eq!(ns.metadata.name.as_deref(), Some("namespaces"));
        assert_eq!(ns.spec.target_type.scope, ResourceScope::Cluster);
        assert_eq!(ns.spec.federated_type.scope, ResourceScope::Namespaced);
        assert_eq!(ns.spec.federated_type.plural_name, "federatednamespaces");
        assert!(ns.spec.target_type.group.is_empty());
    }

    #[test]
    fn enable_conflicts() {
        let d = discovery();
        let a = type_config(
            &resolve_type("widgets.a.example.com", &d).unwrap(),
            "types.kubefed.io",
            "ns",
        );
        let b = type_config(
            &resolve_type("widgets.b.example.com", &d).unwrap(),
            "types.kubefed.io",
            "ns",
        );
        assert_eq!(
            check_enable_conflicts(&a, std::slice::from_ref(&a)),
            Ok(()),
            "enabling twice is fine"
        );
        assert!(matches!(
            check_enable_conflicts(&b, std::slice::from_ref(&a)),
            Err(TypeConfigError::CrdInUse { .. })
        ));
        let b_elsewhere = type_config(
            &resolve_type("widgets.b.example.com", &d).unwrap(),
            "b.types.example.com",
            "ns",
        );
        assert_eq!(
            check_enable_conflicts(&b_elsewhere, std::slice::from_ref(&a)),
            Ok(())
        );
        let a_moved = type_config(
            &resolve_type("widgets.a.example.com", &d).unwrap(),
            "other.example.com",
            "ns",
        );
        assert!(matches!(
            check_enable_conflicts(&a_moved, &[a]),
            Err(TypeConfigError::FederatedTypeChanged { .. })
        ));
    }
}
