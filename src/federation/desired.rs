//! The desired target object for one member cluster: template → identity → retained
//! member fields → the cluster's overrides → managed label, in KubeFed's order.
//!
//! - The template is `spec.template` (an absent template is an empty object: a
//!   Namespace needs nothing else). `metadata.annotations` and `metadata.finalizers` in
//!   the template are dropped with a warning, as KubeFed drops them: member controllers
//!   own those collections; overrides may still add to them.
//! - Name is the federated object's; the namespace too for namespaced targets; `kind`
//!   is the target kind; `apiVersion` defaults to the target's group/version.
//! - Retention ([`super::retain`]) applies only when updating an existing object.
//! - Overrides come after retention so that they can set retained fields.
//! - `kubefed.io/managed: "true"` is set last, so no override can remove it.

use serde_json::{Map, Value, json};

use super::overrides::{ClusterOverride, OverrideError, apply_overrides};
use super::retain::{RetainError, retain_cluster_fields};
use crate::api::core::{ApiResource, ResourceScope};

/// The label on every object the sync controller manages; `"false"` on a member object
/// tells the controller to leave it alone.
pub const MANAGED_LABEL: &str = "kubefed.io/managed";

/// Something in the template that was ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemplateWarning {
    AnnotationsNotSupported,
    FinalizersNotSupported,
}

impl TemplateWarning {
    /// The event reason KubeFed records.
    pub fn reason(self) -> &'static str {
        match self {
            TemplateWarning::AnnotationsNotSupported => "AnnotationsNotSupported",
            TemplateWarning::FinalizersNotSupported => "FinalizersNotSupported",
        }
    }

    pub fn message(self) -> String {
        let field = match self {
            TemplateWarning::AnnotationsNotSupported => "annotations",
            TemplateWarning::FinalizersNotSupported => "finalizers",
        };
        format!(
            "metadata.{field} cannot be set via template to avoid conflicting with controllers \
             in member clusters; use an override to add or remove elements of this collection"
        )
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct DesiredObject {
    pub object: Value,
    pub warnings: Vec<TemplateWarning>,
}

/// Each variant is one per-cluster propagation status of seed 004.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DesiredError {
    #[error("computing the target object: {0}")]
    ComputeResourceFailed(String),
    #[error("retaining member fields: {0}")]
    FieldRetentionFailed(#[source] RetainError),
    #[error("applying overrides: {0}")]
    ApplyOverridesFailed(#[source] OverrideError),
}

impl DesiredError {
    /// The per-cluster status reason of the federated object.
    pub fn reason(&self) -> &'static str {
        match self {
            DesiredError::ComputeResourceFailed(_) => "ComputeResourceFailed",
            DesiredError::FieldRetentionFailed(_) => "FieldRetentionFailed",
            DesiredError::ApplyOverridesFailed(_) => "ApplyOverridesFailed",
        }
    }
}

/// `apiVersion` of a target type (`v1` for the core group).
pub fn api_version(target: &ApiResource) -> String {
    target.api_version()
}

/// The template made into a target object, before retention and overrides.
pub fn object_from_template(
    federated: &Value,
    target: &ApiResource,
) -> Result<DesiredObject, DesiredError> {
    let mut warnings = Vec::new();
    let mut obj = match federated["spec"].get("template") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(DesiredError::ComputeResourceFailed(
                "spec.template is not an object".into(),
            ));
        }
    };
    let meta = obj.entry("metadata").or_insert_with(|| json!({}));
    if meta.is_null() {
        *meta = json!({});
    }
    let meta = meta.as_object_mut().ok_or_else(|| {
        DesiredError::ComputeResourceFailed("spec.template.metadata is not an object".into())
    })?;
    for (field, warning) in [
        ("annotations", TemplateWarning::AnnotationsNotSupported),
        ("finalizers", TemplateWarning::FinalizersNotSupported),
    ] {
        if let Some(v) = meta.remove(field) {
            let non_empty = v.as_object().is_some_and(|m| !m.is_empty())
                || v.as_array().is_some_and(|a| !a.is_empty());
            if non_empty {
                warnings.push(warning);
            }
        }
    }
    let fmeta = &federated["metadata"];
    let name = fmeta["name"].as_str().ok_or_else(|| {
        DesiredError::ComputeResourceFailed("the federated object has no name".into())
    })?;
    meta.insert("name".into(), json!(name));
    meta.remove("namespace");
    meta.remove("generateName");
    if target.scope == ResourceScope::Namespaced {
        let ns = fmeta["namespace"].as_str().ok_or_else(|| {
            DesiredError::ComputeResourceFailed(
                "the federated object of a namespaced type has no namespace".into(),
            )
        })?;
        meta.insert("namespace".into(), json!(ns));
    }
    obj.insert("kind".into(), json!(target.kind));
    if obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        obj.insert("apiVersion".into(), json!(api_version(target)));
    }
    Ok(DesiredObject {
        object: Value::Object(obj),
        warnings,
    })
}

/// The object the sync controller should write to `cluster`: `existing` is the member's
/// current object when updating (its member-owned fields are kept), `None` when creating.
pub fn desired_object(
    federated: &Value,
    target: &ApiResource,
    overrides: &[ClusterOverride],
    existing: Option<&Value>,
) -> Result<DesiredObject, DesiredError> {
    let mut out = object_from_template(federated, target)?;
    if let Some(existing) = existing {
        retain_cluster_fields(&target.kind, &mut out.object, existing, federated)
            .map_err(DesiredError::FieldRetentionFailed)?;
    }
    apply_overrides(&mut out.object, overrides).map_err(DesiredError::ApplyOverridesFailed)?;
    let meta = out.object["metadata"].as_object_mut().ok_or_else(|| {
        DesiredError::ComputeResourceFailed("metadata was overridden with a non-object".into())
    })?;
    let labels = meta.entry("labels").or_insert_with(|| json!({}));
    if !labels.is_object() {
        *labels = json!({});
    }
    labels[MANAGED_LABEL] = json!("true");
    Ok(out)
}

/// Whether a member object is explicitly unmanaged (`kubefed.io/managed: "false"`).
pub fn is_explicitly_unmanaged(member_obj: &Value) -> bool {
    member_obj["metadata"]["labels"][MANAGED_LABEL].as_str() == Some("false")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployments() -> ApiResource {
        ApiResource {
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
            plural_name: "deployments".into(),
            scope: ResourceScope::Namespaced,
        }
    }

    fn fed() -> Value {
        json!({
            "apiVersion": "types.kubefed.io/v1beta1", "kind": "FederatedDeployment",
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {
                "template": {
                    "metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}, "name": "ignored"},
                    "spec": {"replicas": 2}
                },
                "retainReplicas": false
            }
        })
    }

    #[test]
    fn create_builds_identity_overrides_and_label() {
        let ovs = vec![ClusterOverride::replace("/spec/replicas", json!(5))];
        let d = desired_object(&fed(), &deployments(), &ovs, None).unwrap();
        assert_eq!(
            d.object,
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "ns",
                             "labels": {"app": "web", "kubefed.io/managed": "true"}},
                "spec": {"replicas": 5}
            })
        );
        assert_eq!(d.warnings, vec![TemplateWarning::AnnotationsNotSupported]);
    }

    #[test]
    fn update_retains_then_overrides() {
        let existing = json!({"metadata": {"resourceVersion": "5", "annotations": {"deployment.kubernetes.io/revision": "3"}}});
        let ovs = vec![ClusterOverride {
            op: "add".into(),
            path: "/metadata/annotations/extra".into(),
            value: Some(json!("1")),
        }];
        let d = desired_object(&fed(), &deployments(), &ovs, Some(&existing)).unwrap();
        assert_eq!(d.object["metadata"]["resourceVersion"], "5");
        assert_eq!(
            d.object["metadata"]["annotations"],
            json!({"deployment.kubernetes.io/revision": "3", "extra": "1"})
        );
    }

    #[test]
    fn overrides_cannot_remove_the_managed_label() {
        let ovs = vec![ClusterOverride {
            op: "remove".into(),
            path: "/metadata/labels".into(),
            value: None,
        }];
        let d = desired_object(&fed(), &deployments(), &ovs, None).unwrap();
        assert_eq!(
            d.object["metadata"]["labels"],
            json!({"kubefed.io/managed": "true"})
        );
    }

    #[test]
    fn namespaces_and_core_types() {
        let ns_target = ApiResource {
            group: "".into(),
            version: "v1".into(),
            kind: "Namespace".into(),
            plural_name: "namespaces".into(),
            scope: ResourceScope::Cluster,
        };
        let fed_ns = json!({"metadata": {"name": "myns", "namespace": "myns"}, "spec": {"placement": {"clusterSelector": {}}}});
        let d = desired_object(&fed_ns, &ns_target, &[], None).unwrap();
        assert_eq!(
            d.object,
            json!({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": "myns", "labels": {"kubefed.io/managed": "true"}}})
        );
    }

    #[test]
    fn errors_carry_their_status_reason() {
        let bad = json!({"metadata": {"name": "x", "namespace": "n"}, "spec": {"template": []}});
        assert_eq!(
            desired_object(&bad, &deployments(), &[], None)
                .unwrap_err()
                .reason(),
            "ComputeResourceFailed"
        );
        let ovs = vec![ClusterOverride {
            op: "remove".into(),
            path: "/spec/nothing".into(),
            value: None,
        }];
        let err = desired_object(&fed(), &deployments(), &ovs, None).unwrap_err();
        assert_eq!(err.reason(), "ApplyOverridesFailed");
        assert!(err.to_string().contains("/spec/nothing"), "{err}");
    }

    #[test]
    fn unmanaged_label() {
        assert!(is_explicitly_unmanaged(
            &json!({"metadata": {"labels": {"kubefed.io/managed": "false"}}})
        ));
        assert!(!is_explicitly_unmanaged(
            &json!({"metadata": {"labels": {"kubefed.io/managed": "true"}}})
        ));
        assert!(!is_explicitly_unmanaged(&json!({"metadata": {}})));
    }
}
