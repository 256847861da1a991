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

/// The CRD for a federated type. Every field carries a description, so that
/// `kubectl explain federateddeployments.spec.placement` helps.
pub fn federated_crd(federated: &ApiResource) -> CustomResourceDefinition {
    let scope = match federated.scope {
        ResourceScope::Namespaced => "Namespaced",
        ResourceScope::Cluster => "Cluster",
    };
    let target = federated
        .kind
        .strip_prefix("Federated")
        .unwrap_or(&federated.kind);
    let description = format!(
        "A {target} to propagate to member clusters: its template, the clusters it goes to \
         and per-cluster overrides. The sync controller creates, updates and deletes the \
         {target} in each placed cluster and reports the outcome in status."
    );
    let spec_schema = json!({
        "description": "What to propagate and where.",
        "type": "object",
        "properties": {
            "template": {
                "description": format!("The {target} to create in each placed cluster, without apiVersion and kind (namespace and name are the federated object's)."),
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true
            },
            "placement": placement_schema(),
            "overrides": overrides_schema()
        }
    });
    let status_schema = json!({
        "description": "Propagation as the sync controller last saw it.",
        "type": "object",
        "properties": {
            "observedGeneration": {
                "description": "The metadata.generation this status describes.",
                "type": "integer", "format": "int64"
            },
            "conditions": {
                "description": "The `Propagation` condition: True when every placed cluster holds the current template.",
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["type", "status"],
                    "properties": {
                        "type": {"description": "The condition type, `Propagation`.", "type": "string"},
                        "status": {"description": "`True`, `False` or `Unknown`.", "type": "string", "enum": ["True", "False", "Unknown"]},
                        "reason": {"description": "Why, in one CamelCase word (`CheckClusters`, `ClusterRetrievalFailed`, `NamespaceNotFederated`, ...).", "type": "string"},
                        "lastUpdateTime": {"description": "When the condition was last written.", "type": "string", "format": "date-time"},
                        "lastTransitionTime": {"description": "When `status` last changed.", "type": "string", "format": "date-time"}
                    }
                }
            },
            "clusters": {
                "description": "One entry per placed cluster where propagation is not (yet) in the desired state.",
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"description": "Name of the KubeFedCluster.", "type": "string"},
                        "status": {"description": "What happened there (`AlreadyExists`, `ClusterNotReady`, `CreationFailed`, `UpdateFailed`, `WaitingForRemoval`, ...).", "type": "string"},
                        "message": {"description": "Details of the failure, for people.", "type": "string"},
                        "remoteStatus": {"description": format!("The status of the {target} in that cluster, when status collection is on."), "type": "object", "x-kubernetes-preserve-unknown-fields": true}
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
                    "description": description,
                    "type": "object",
                    "required": ["spec"],
                    "properties": {
                        "apiVersion": {"description": "The versioned schema of this object, e.g. `types.kubefed.io/v1beta1`.", "type": "string"},
                        "kind": {"description": format!("`{}`.", federated.kind), "type": "string"},
                        // The API server describes metadata itself and refuses anything
                        // but its type here.
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
                "description": "The clusters, by KubeFedCluster name.",
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"description": "Name of a KubeFedCluster.", "type": "string", "minLength": 1}}
                }
            },
            "clusterSelector": {
                "description": "The clusters whose KubeFedCluster labels match (used when `clusters` is absent).",
                "type": "object",
                "properties": {
                    "matchLabels": {"description": "Labels a cluster must have, all of them.", "type": "object", "additionalProperties": {"type": "string"}},
                    "matchExpressions": {
                        "description": "Label requirements a cluster must meet, all of them.",
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["key", "operator"],
                            "properties": {
                                "key": {"description": "The label key.", "type": "string"},
                                "operator": {"description": "`In`, `NotIn`, `Exists` or `DoesNotExist`.", "type": "string", "enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                                "values": {"description": "The values for `In` and `NotIn`.", "type": "array", "items": {"type": "string"}}
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
                "clusterName": {"description": "The KubeFedCluster the patches apply to.", "type": "string", "minLength": 1},
                "clusterOverrides": {
                    "description": "The patches, applied in order.",
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["path"],
                        "properties": {
                            "op": {"description": "`add`, `remove` or `replace` (the default).", "type": "string", "enum": ["add", "remove", "replace"], "default": "replace"},
                            "path": {"description": "A JSON pointer into the template, e.g. `/spec/replicas`.", "type": "string", "pattern": "^/"},
                            "value": {"description": "The value for `add` and `replace`.", "x-kubernetes-preserve-unknown-fields": true}
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
