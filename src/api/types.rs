//! `types.kubefed.io/v1beta1`: the `Federated<Kind>` CRDs. They are made per enabled type
//! (by `kubefed enable`), so this module generates them from the target type rather than
//! from a Rust struct: `spec.template` holds the target object, `spec.placement` chooses
//! clusters and `spec.overrides` patches the template per cluster.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::json;

use super::core::{ApiResource, ResourceScope};

pub const DEFAULT_FEDERATED_GROUP: &str = "types.kubefed.io";
pub const DEFAULT_FEDERATED_VERSION: &str = "v1beta1";

/// KubeFed's plural of a kind: lower case, `-es` after s/x/ch/sh/z/o, `-ies` for a final y.
pub fn plural_name(kind: &str) -> String {
    let lower = kind.to_lowercase();
    if ["s", "x", "ch", "sh", "z", "o"]
        .iter()
        .any(|s| lower.ends_with(s))
    {
        format!("{lower}es")
    } else if let Some(stem) = lower.strip_suffix('y') {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    }
}

/// The federated type of a target type: `Federated<Kind>`, plural `federated<plural>` (as
/// kubefedctl enable names it), in `federated_group`; it has the target's scope, except
/// that a FederatedNamespace is namespaced (it lives in the namespace it federates).
pub fn federated_type_for(target: &ApiResource, federated_group: &str) -> ApiResource {
    let kind = format!("Federated{}", target.kind);
    let namespace_target = target.group.is_empty() && target.kind == "Namespace";
    ApiResource {
        group: federated_group.to_string(),
        version: DEFAULT_FEDERATED_VERSION.to_string(),
        plural_name: format!("federated{}", target.plural_name),
        kind,
        scope: if namespace_target {
            ResourceScope::Namespaced
        } else {
            target.scope
        },
    }
}

/// The CRD for a federated type.
pub fn federated_crd(federated: &ApiResource) -> CustomResourceDefinition {
    let scope = match federated.scope {
        ResourceScope::Namespaced => "Namespaced",
        ResourceScope::Cluster => "Cluster",
    };
    let spec_schema = json!({
        "type": "object",
        "properties": {
            "template": {
                "description": "The target object, without apiVersion and kind.",
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true
            },
            "placement": placement_schema(),
            "overrides": overrides_schema()
        }
    });
    let status_schema = json!({
        "type": "object",
        "properties": {
            "observedGeneration": {"type": "integer", "format": "int64"},
            "conditions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["type", "status"],
                    "properties": {
                        "type": {"type": "string"},
                        "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                        "reason": {"type": "string"},
                        "lastUpdateTime": {"type": "string", "format": "date-time"},
                        "lastTransitionTime": {"type": "string", "format": "date-time"}
                    }
                }
            },
            "clusters": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string"},
                        "status": {"type": "string"},
                        "message": {"type": "string"},
                        "remoteStatus": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                    }
                }
            }
        }
    });
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{}.{}", federated.plural_name, federated.group)},
        "spec": {
            "group": federated.group,
            "names": {
                "kind": federated.kind,
                "listKind": format!("{}List", federated.kind),
                "plural": federated.plural_name,
                "singular": federated.kind.to_lowercase(),
                "categories": ["kubefed", "federated"]
            },
            "scope": scope,
            "versions": [{
                "name": federated.version,
                "served": true,
                "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Propagation", "type": "string",
                     "jsonPath": ".status.conditions[?(@.type=='Propagation')].status"},
                    {"name": "Reason", "type": "string",
                     "jsonPath": ".status.conditions[?(@.type=='Propagation')].reason"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "required": ["spec"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": spec_schema,
                        "status": status_schema
                    }
                }}
            }]
        }
    });
    serde_json::from_value(crd).expect("federated CRD literal matches the CRD type")
}

fn placement_schema() -> serde_json::Value {
    json!({
        "description": "Where the object goes: `clusters` wins over `clusterSelector` (even when empty); no placement means no cluster; `clusterSelector: {}` means every cluster.",
        "type": "object",
        "properties": {
            "clusters": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string", "minLength": 1}}
                }
            },
            "clusterSelector": {
                "type": "object",
                "properties": {
                    "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "matchExpressions": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["key", "operator"],
                            "properties": {
                                "key": {"type": "string"},
                                "operator": {"type": "string", "enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                                "values": {"type": "array", "items": {"type": "string"}}
                            }
                        }
                    }
                }
            }
        }
    })
}

fn overrides_schema() -> serde_json::Value {
    json!({
        "description": "Per-cluster JSON-pointer patches applied to the template.",
        "type": "array",
        "items": {
            "type": "object",
            "required": ["clusterName"],
            "properties": {
                "clusterName": {"type": "string", "minLength": 1},
                "clusterOverrides": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["path"],
                        "properties": {
                            "op": {"type": "string", "enum": ["add", "remove", "replace"], "default": "replace"},
                            "path": {"type": "string", "pattern": "^/"},
                            "value": {"x-kubernetes-preserve-unknown-fields": true}
                        }
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(group: &str, kind: &str, plural: &str, scope: ResourceScope) -> ApiResource {
        ApiResource {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
            plural_name: plural.into(),
            scope,
        }
    }

    #[test]
    fn plural_names_follow_kubefed() {
        assert_eq!(plural_name("FederatedDeployment"), "federateddeployments");
        assert_eq!(plural_name("FederatedIngress"), "federatedingresses");
        assert_eq!(
            plural_name("FederatedNetworkPolicy"),
            "federatednetworkpolicies"
        );
        assert_eq!(plural_name("FederatedMatch"), "federatedmatches");
    }

    #[test]
    fn namespace_federates_into_a_namespaced_type() {
        let ns = target("", "Namespace", "namespaces", ResourceScope::Cluster);
        let fed = federated_type_for(&ns, DEFAULT_FEDERATED_GROUP);
        assert_eq!(fed.kind, "FederatedNamespace");
        assert_eq!(fed.scope, ResourceScope::Namespaced);
        let cr = target(
            "rbac.authorization.k8s.io",
            "ClusterRole",
            "clusterroles",
            ResourceScope::Cluster,
        );
        assert_eq!(
            federated_type_for(&cr, DEFAULT_FEDERATED_GROUP).scope,
            ResourceScope::Cluster
        );
    }

    #[test]
    fn federated_crd_is_named_plural_dot_group() {
        let dep = target(
            "apps",
            "Deployment",
            "deployments",
            ResourceScope::Namespaced,
        );
        let crd = federated_crd(&federated_type_for(&dep, "types.example.io"));
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("federateddeployments.types.example.io")
        );
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.versions[0].name, "v1beta1");
    }
}
