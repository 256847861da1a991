//! `kubefed federate`: an existing object wrapped into its `Federated<Kind>`.
//!
//! The template is the object without what the API server or member controllers own:
//! `apiVersion`, `kind`, `status` and all `metadata` except `labels` go; a Namespace
//! loses `spec.finalizers`, a ServiceAccount its `secrets`, a Service its `clusterIP`,
//! `clusterIPs` and `nodePort`s (each member allocates its own). Annotations do not
//! travel (the sync controller would drop them, see `desired`), so they are reported.
//! Placement is `clusterSelector: {matchLabels: {}}`: every cluster, as KubeFed does.

use serde_json::{Map, Value, json};

use super::desired::api_version;
use crate::api::core::{FederatedTypeConfig, ResourceScope};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FederateError {
    #[error("the {kind} object has no metadata.name")]
    NoName { kind: String },
    #[error("the {kind} object is not a JSON object")]
    NotAnObject { kind: String },
}

/// The federated object for `target_obj`, plus warnings for what was left out.
pub fn federated_from_target(
    ftc: &FederatedTypeConfig,
    target_obj: &Value,
) -> Result<(Value, Vec<String>), FederateError> {
    let target = &ftc.spec.target_type;
    let fed = &ftc.spec.federated_type;
    let kind = target.kind.clone();
    let mut obj: Map<String, Value> = target_obj
        .as_object()
        .cloned()
        .ok_or_else(|| FederateError::NotAnObject { kind: kind.clone() })?;
    let meta = obj.remove("metadata").unwrap_or(Value::Null);
    let name = meta["name"]
        .as_str()
        .ok_or_else(|| FederateError::NoName { kind: kind.clone() })?
        .to_string();
    let mut warnings = Vec::new();
    if meta["annotations"]
        .as_object()
        .is_some_and(|a| !a.is_empty())
    {
        warnings.push(format!(
            "annotations of {kind} {name:?} do not go into the template of the federated object"
        ));
    }
    for field in ["apiVersion", "kind", "status"] {
        obj.remove(field);
    }
    let spec = obj.get_mut("spec").and_then(Value::as_object_mut);
    match (target.group.as_str(), kind.as_str(), spec) {
        ("", "Namespace", Some(spec)) => {
            spec.remove("finalizers");
        }
        ("", "Service", Some(spec)) => {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
            for port in spec
                .get_mut("ports")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
                .filter_map(Value::as_object_mut)
            {
                port.remove("nodePort");
            }
        }
        _ => {}
    }
    if target.group.is_empty() && kind == "ServiceAccount" {
        obj.remove("secrets");
    }
    if obj
        .get("spec")
        .is_some_and(|s| s.as_object().is_some_and(Map::is_empty))
    {
        obj.remove("spec");
    }
    if let Some(labels) = meta
        .get("labels")
        .filter(|l| l.as_object().is_some_and(|l| !l.is_empty()))
    {
        obj.insert("metadata".into(), json!({"labels": labels}));
    }

    let mut fed_meta = json!({"name": name});
    if fed.scope == ResourceScope::Namespaced {
        // A FederatedNamespace lives in the namespace it federates.
        let ns = if target.scope == ResourceScope::Cluster {
            Some(name.as_str())
        } else {
            meta["namespace"].as_str()
        };
        if let Some(ns) = ns {
            fed_meta["namespace"] = json!(ns);
        }
    }
    let out = json!({
        "apiVersion": api_version(fed),
        "kind": fed.kind,
        "metadata": fed_meta,
        "spec": {
            "template": Value::Object(obj),
            "placement": {"clusterSelector": {"matchLabels": {}}}
        }
    });
    Ok((out, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::federation::typeconfig::{DiscoveredResource, type_config};

    fn ftc(group: &str, kind: &str, plural: &str, namespaced: bool) -> FederatedTypeConfig {
        type_config(
            &DiscoveredResource {
                group: group.into(),
                version: "v1".into(),
                kind: kind.into(),
                plural: plural.into(),
                singular: kind.to_lowercase(),
                short_names: vec![],
                namespaced,
            },
            "types.kubefed.io",
            "kube-federation-system",
        )
    }

    #[test]
    fn deployment_becomes_a_federated_deployment_for_every_cluster() {
        let dep = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "test", "uid": "u", "resourceVersion": "1",
                         "generation": 2, "creationTimestamp": "2026-01-01T00:00:00Z",
                         "labels": {"app": "web"}, "annotations": {"deployment.kubernetes.io/revision": "1"},
                         "managedFields": []},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"readyReplicas": 3}
        });
        let (fed, warnings) =
            federated_from_target(&ftc("apps", "Deployment", "deployments", true), &dep).unwrap();
        assert_eq!(
            fed,
            json!({
                "apiVersion": "types.kubefed.io/v1beta1", "kind": "FederatedDeployment",
                "metadata": {"name": "web", "namespace": "test"},
                "spec": {
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}}},
                    "placement": {"clusterSelector": {"matchLabels": {}}}
                }
            })
        );
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn member_allocated_fields_are_left_out() {
        let svc = json!({
            "metadata": {"name": "web", "namespace": "test"},
            "spec": {"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"], "type": "NodePort",
                     "ports": [{"port": 80, "nodePort": 30080}]}
        });
        let (fed, _) = federated_from_target(&ftc("", "Service", "services", true), &svc).unwrap();
        assert_eq!(
            fed["spec"]["template"],
            json!({"spec": {"type": "NodePort", "ports": [{"port": 80}]}})
        );

        let sa = json!({"metadata": {"name": "bot", "namespace": "test"}, "secrets": [{"name": "bot-token"}]});
        let (fed, _) =
            federated_from_target(&ftc("", "ServiceAccount", "serviceaccounts", true), &sa)
                .unwrap();
        assert_eq!(fed["spec"]["template"], json!({}));

        let ns = json!({"metadata": {"name": "myns"}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
        let (fed, _) =
            federated_from_target(&ftc("", "Namespace", "namespaces", false), &ns).unwrap();
        assert_eq!(fed["kind"], "FederatedNamespace");
        assert_eq!(
            fed["metadata"],
            json!({"name": "myns", "namespace": "myns"})
        );
        assert_eq!(fed["spec"]["template"], json!({}));
    }

    #[test]
    fn cluster_scoped_targets_stay_cluster_scoped() {
        let cr = json!({"metadata": {"name": "reader"}, "rules": []});
        let (fed, _) = federated_from_target(
            &ftc(
                "rbac.authorization.k8s.io",
                "ClusterRole",
                "clusterroles",
                false,
            ),
            &cr,
        )
        .unwrap();
        assert_eq!(fed["metadata"], json!({"name": "reader"}));
        assert_eq!(fed["spec"]["template"], json!({"rules": []}));
        assert_eq!(
            federated_from_target(
                &ftc("", "ConfigMap", "configmaps", true),
                &json!({"data": {}})
            ),
            Err(FederateError::NoName {
                kind: "ConfigMap".into()
            })
        );
    }
}
