//! The object the sync controller applies to one member cluster: template → identity →
//! the cluster's overrides → managed label, in KubeFed's order, and the rule for when to
//! apply it.
//!
//! - The template is `spec.template` (an absent template is an empty object: a
//!   Namespace needs nothing else). `metadata.annotations` and `metadata.finalizers` in
//!   the template are dropped with a warning, as KubeFed drops them: member controllers
//!   own those collections; overrides may still add to them.
//! - Name is the federated object's; the namespace too for namespaced targets; `kind`
//!   is the target kind; `apiVersion` defaults to the target's group/version.
//! - `kubefed.io/managed: "true"` is set last, so no override can remove it.
//!
//! Ownership (server-side apply, field manager [`SYNC_FIELD_MANAGER`]): the fields this
//! object sets are the controller's, and only those. A member-side change to one of them
//! is reverted; a field removed from the template is removed from the members; fields it
//! does not set (a label a member-side tool adds, a Service's allocated `clusterIP` and
//! `nodePort`s, a ServiceAccount's token `secrets`, the member's annotations) belong to
//! whoever set them and are never touched. KubeFed instead replaced the whole object on
//! any member-side change; see docs/sync.md. With `spec.retainReplicas: true` the member's
//! `spec.replicas` is applied as it is (an HPA there owns it).
//!
//! When: the applied object carries a digest of itself ([`APPLIED_DIGEST_ANNOTATION`]);
//! it is applied when that digest differs from the member's (the federated object changed)
//! or when the member no longer holds every applied field ([`needs_apply`]), and never
//! otherwise, so a restart or a re-list writes nothing.

use serde_json::{Map, Value, json};

use super::overrides::{ClusterOverride, OverrideError, apply_overrides};
use crate::api::core::{ApiResource, ResourceScope};

/// The label on every object the sync controller manages; `"false"` on a member object
/// tells the controller to leave it alone.
pub const MANAGED_LABEL: &str = "kubefed.io/managed";

/// The field manager of the sync controller's server-side applies in member clusters.
pub const SYNC_FIELD_MANAGER: &str = "kubefed-sync";

/// A digest of what the sync controller applied, on each member object it manages.
pub const APPLIED_DIGEST_ANNOTATION: &str = "kubefed.io/applied-digest";

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
    #[error("applying overrides: {0}")]
    ApplyOverridesFailed(#[source] OverrideError),
}

impl DesiredError {
    /// The per-cluster status reason of the federated object.
    pub fn reason(&self) -> &'static str {
        match self {
            DesiredError::ComputeResourceFailed(_) => "ComputeResourceFailed",
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

/// The template with the cluster's overrides and the managed label: what the federated
/// object asks of one cluster.
pub fn desired_object(
    federated: &Value,
    target: &ApiResource,
    overrides: &[ClusterOverride],
) -> Result<DesiredObject, DesiredError> {
    let mut out = object_from_template(federated, target)?;
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

/// What the sync controller server-side applies to a cluster: [`desired_object`] with its
/// digest annotation; with `spec.retainReplicas: true`, `spec.replicas` is the member's
/// (`existing`), outside the digest.
pub fn applied_object(
    federated: &Value,
    target: &ApiResource,
    overrides: &[ClusterOverride],
    existing: Option<&Value>,
) -> Result<DesiredObject, DesiredError> {
    let mut out = desired_object(federated, target, overrides)?;
    let retain = federated["spec"]["retainReplicas"].as_bool() == Some(true);
    if retain && let Some(spec) = out.object.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("replicas");
    }
    let digest = digest(&out.object);
    let meta = out.object["metadata"]
        .as_object_mut()
        .expect("desired_object made metadata an object");
    let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
    if !annotations.is_object() {
        *annotations = json!({});
    }
    annotations[APPLIED_DIGEST_ANNOTATION] = json!(digest);
    if retain
        && let Some(replicas) = existing
            .and_then(|e| e["spec"].get("replicas"))
            .filter(|r| r.is_number())
        && let Some(spec) = out.object.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.insert("replicas".into(), replicas.clone());
    }
    Ok(out)
}

/// Whether `applied` must be applied over the member's `existing` object: the federated
/// object changed since the last apply (another digest), or a field it sets no longer
/// has its value in the member (drift).
pub fn needs_apply(applied: &Value, existing: &Value) -> bool {
    let digest = |v: &Value| v["metadata"]["annotations"][APPLIED_DIGEST_ANNOTATION].clone();
    digest(applied) != digest(existing) || !is_subset(applied, existing)
}

/// A stable digest of a JSON value (its keys are sorted: `serde_json::Map` is ordered).
fn digest(v: &Value) -> String {
    let bytes = serde_json::to_vec(v).expect("a JSON value serialises");
    let d = ring::digest::digest(&ring::digest::SHA256, &bytes);
    d.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every field of `want` has the same value in `got` (the member adds defaults and
/// status, which are not ours to fight over).
pub fn is_subset(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => w
            .iter()
            .all(|(k, v)| g.get(k).is_some_and(|gv| is_subset(v, gv))),
        (Value::Array(w), Value::Array(g)) => {
            w.len() == g.len() && w.iter().zip(g).all(|(a, b)| is_subset(a, b))
        }
        _ => want == got,
    }
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
        let d = desired_object(&fed(), &deployments(), &ovs).unwrap();
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
    fn the_applied_object_is_applied_once_per_change_and_on_drift() {
        let applied = applied_object(&fed(), &deployments(), &[], None)
            .unwrap()
            .object;
        // What the member holds after the apply: defaults, status, others' labels added.
        let mut member = applied.clone();
        member["metadata"]["uid"] = json!("u");
        member["metadata"]["labels"]["added-by-someone"] = json!("x");
        member["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = json!("1");
        member["spec"]["strategy"] = json!({"type": "RollingUpdate"});
        member["status"] = json!({"replicas": 2});
        assert!(!needs_apply(&applied, &member), "nothing to do");
        // Drift in a field it sets.
        let mut drifted = member.clone();
        drifted["spec"]["replicas"] = json!(7);
        assert!(needs_apply(&applied, &drifted));
        // The federated object changed, even only by removing a field.
        let mut less = fed();
        less["spec"]["template"]["metadata"]["labels"] = json!({});
        let applied2 = applied_object(&less, &deployments(), &[], None)
            .unwrap()
            .object;
        assert!(needs_apply(&applied2, &member));
        assert_eq!(
            applied,
            applied_object(&fed(), &deployments(), &[], None)
                .unwrap()
                .object
        );
    }

    #[test]
    fn retained_replicas_are_the_members_and_outside_the_digest() {
        let mut f = fed();
        f["spec"]["retainReplicas"] = json!(true);
        let member = json!({"spec": {"replicas": 9}});
        let a = applied_object(&f, &deployments(), &[], Some(&member))
            .unwrap()
            .object;
        assert_eq!(a["spec"]["replicas"], 9);
        let b = applied_object(
            &f,
            &deployments(),
            &[],
            Some(&json!({"spec": {"replicas": 3}})),
        )
        .unwrap()
        .object;
        assert_eq!(
            a["metadata"]["annotations"][APPLIED_DIGEST_ANNOTATION],
            b["metadata"]["annotations"][APPLIED_DIGEST_ANNOTATION]
        );
    }

    #[test]
    fn subset_ignores_fields_the_member_added() {
        let want = json!({"spec": {"replicas": 2}, "metadata": {"labels": {"a": "b"}}});
        let got = json!({"spec": {"replicas": 2, "strategy": {}}, "metadata": {"labels": {"a": "b"}, "uid": "x"}, "status": {}});
        assert!(is_subset(&want, &got));
        assert!(!is_subset(&json!({"spec": {"replicas": 3}}), &got));
    }

    #[test]
    fn overrides_cannot_remove_the_managed_label() {
        let ovs = vec![ClusterOverride {
            op: "remove".into(),
            path: "/metadata/labels".into(),
            value: None,
        }];
        let d = desired_object(&fed(), &deployments(), &ovs).unwrap();
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
        let d = desired_object(&fed_ns, &ns_target, &[]).unwrap();
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
            desired_object(&bad, &deployments(), &[])
                .unwrap_err()
                .reason(),
            "ComputeResourceFailed"
        );
        let ovs = vec![ClusterOverride {
            op: "remove".into(),
            path: "/spec/nothing".into(),
            value: None,
        }];
        let err = desired_object(&fed(), &deployments(), &ovs).unwrap_err();
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
