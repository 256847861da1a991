//! Overrides: per-cluster JSON-pointer patches on the target object
//! (`spec.overrides[].clusterOverrides[]`, seed 004 §1.4.3).
//!
//! Each override is `{op, path, value}` with `op` one of `add`, `remove`, `replace`
//! (default `replace`); they are applied in order, as one JSON patch, to the object
//! computed from the template. Invariants checked before anything is applied (KubeFed's):
//! a cluster appears at most once, a path at most once per cluster, and `/metadata/name`,
//! `/metadata/namespace`, `/metadata/generateName` and `/kind` are never overridden (they
//! tie the target to its federated object).
//!
//! Compatibility: KubeFed applies patches with evanphx/json-patch v4, where `replace` of
//! a missing object member adds it. Users rely on that (`replace /spec/replicas` on a
//! template without `replicas`, and the replica scheduler writes exactly such overrides),
//! so `replace` here does the same; everything else is RFC 6902.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Paths no override may touch.
pub const INVALID_PATHS: [&str; 4] = [
    "/metadata/namespace",
    "/metadata/name",
    "/metadata/generateName",
    "/kind",
];

/// One `clusterOverrides[]` entry.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ClusterOverride {
    /// `add`, `remove` or `replace`; empty or absent means `replace`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub op: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

impl ClusterOverride {
    pub fn replace(path: &str, value: Value) -> Self {
        ClusterOverride {
            op: String::new(),
            path: path.to_string(),
            value: Some(value),
        }
    }

    fn op(&self) -> &str {
        if self.op.is_empty() {
            "replace"
        } else {
            &self.op
        }
    }
}

/// One `spec.overrides[]` entry.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OverrideItem {
    pub cluster_name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_overrides: Vec<ClusterOverride>,
}

/// Overrides by cluster name.
pub type OverridesMap = BTreeMap<String, Vec<ClusterOverride>>;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OverrideError {
    #[error("spec.overrides is malformed: {0}")]
    Malformed(String),
    #[error("cluster {0:?} appears more than once in spec.overrides")]
    DuplicateCluster(String),
    #[error("override path {path:?} appears more than once for cluster {cluster:?}")]
    DuplicatePath { cluster: String, path: String },
    #[error("override path {path:?} for cluster {cluster:?} may not be overridden")]
    InvalidPath { cluster: String, path: String },
    #[error("override op {op:?} at path {path:?} is not one of add, remove, replace")]
    InvalidOp { op: String, path: String },
    #[error("override {op} at path {path:?} needs a value")]
    MissingValue { op: String, path: String },
    #[error("override {op} at path {path:?} does not apply: {reason}")]
    PathNotApplicable {
        op: String,
        path: String,
        reason: String,
    },
}

/// Parses and checks `spec.overrides` (absent or `null` is no overrides).
pub fn overrides_by_cluster(overrides: Option<&Value>) -> Result<OverridesMap, OverrideError> {
    let items: Vec<OverrideItem> = match overrides {
        None | Some(Value::Null) => return Ok(OverridesMap::new()),
        Some(v) => Vec::<OverrideItem>::deserialize(v)
            .map_err(|e| OverrideError::Malformed(e.to_string()))?,
    };
    let mut out = OverridesMap::new();
    for item in items {
        if out.contains_key(&item.cluster_name) {
            return Err(OverrideError::DuplicateCluster(item.cluster_name));
        }
        let mut paths = BTreeSet::new();
        for o in &item.cluster_overrides {
            if INVALID_PATHS.contains(&o.path.as_str()) {
                return Err(OverrideError::InvalidPath {
                    cluster: item.cluster_name.clone(),
                    path: o.path.clone(),
                });
            }
            if !paths.insert(o.path.as_str()) {
                return Err(OverrideError::DuplicatePath {
                    cluster: item.cluster_name.clone(),
                    path: o.path.clone(),
                });
            }
        }
        out.insert(item.cluster_name, item.cluster_overrides);
    }
    Ok(out)
}

/// Serialises an overrides map back into `spec.overrides` (clusters in name order).
pub fn overrides_to_value(map: &OverridesMap) -> Value {
    Value::Array(
        map.iter()
            .map(|(cluster, overrides)| {
                json!({"clusterName": cluster, "clusterOverrides": overrides})
            })
            .collect(),
    )
}

/// Applies one cluster's overrides to `obj`, in order. On error `obj` is left unchanged
/// and the error names the failing path.
pub fn apply_overrides(
    obj: &mut Value,
    overrides: &[ClusterOverride],
) -> Result<(), OverrideError> {
    let mut work = obj.clone();
    for o in overrides {
        apply_one(&mut work, o)?;
    }
    *obj = work;
    Ok(())
}

fn apply_one(doc: &mut Value, o: &ClusterOverride) -> Result<(), OverrideError> {
    let op = o.op();
    let not_applicable = |reason: String| OverrideError::PathNotApplicable {
        op: op.to_string(),
        path: o.path.clone(),
        reason,
    };
    if !o.path.starts_with('/') {
        return Err(not_applicable(
            "a path is a JSON pointer and starts with \"/\" (e.g. /spec/replicas)".into(),
        ));
    }
    let value = || {
        o.value.clone().ok_or_else(|| OverrideError::MissingValue {
            op: op.to_string(),
            path: o.path.clone(),
        })
    };
    let patch_op = match op {
        "add" => json!({"op": "add", "path": o.path, "value": value()?}),
        "remove" => json!({"op": "remove", "path": o.path}),
        "replace" => {
            // evanphx v4 compatibility: replacing a missing member of an existing object adds it.
            let op = if doc.pointer(&o.path).is_none() && parent_is_object(doc, &o.path) {
                "add"
            } else {
                "replace"
            };
            json!({"op": op, "path": o.path, "value": value()?})
        }
        other => {
            return Err(OverrideError::InvalidOp {
                op: other.to_string(),
                path: o.path.clone(),
            });
        }
    };
    let patch_op: json_patch::PatchOperation =
        serde_json::from_value(patch_op).map_err(|e| not_applicable(e.to_string()))?;
    json_patch::patch(doc, &[patch_op]).map_err(|e| {
        let reason = match e.kind {
            json_patch::PatchErrorKind::InvalidPointer => {
                "the path does not exist in the object".to_string()
            }
            other => other.to_string(),
        };
        not_applicable(reason)
    })
}

fn parent_is_object(doc: &Value, path: &str) -> bool {
    let parent = &path[..path.rfind('/').unwrap_or(0)];
    doc.pointer(parent).is_some_and(Value::is_object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "ns", "labels": {"app": "web"},
                         "annotations": {"foo": "x", "keep": "y"}},
            "spec": {"template": {"spec": {"containers": [
                {"name": "nginx", "image": "nginx:1.16"},
                {"name": "side", "image": "busybox"}]}}}
        })
    }

    fn ovs(v: Value) -> Vec<ClusterOverride> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn seed_example_applies() {
        let mut obj = deployment();
        apply_overrides(
            &mut obj,
            &ovs(json!([
                {"path": "/spec/replicas", "value": 5},
                {"path": "/spec/template/spec/containers/0/image", "value": "nginx:1.17.0-alpine"},
                {"path": "/metadata/annotations", "op": "add", "value": {"foo": "bar"}},
                {"path": "/metadata/annotations/foo", "op": "remove"}
            ])),
        )
        .unwrap();
        assert_eq!(
            obj["spec"]["replicas"], 5,
            "replace of a missing member adds it"
        );
        assert_eq!(
            obj["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:1.17.0-alpine"
        );
        assert_eq!(obj["metadata"]["annotations"], json!({}));
    }

    #[test]
    fn ops_table() {
        let cases: Vec<(&str, Value, Value)> = vec![
            (
                "replace existing",
                json!([{"op": "replace", "path": "/metadata/labels/app", "value": "api"}]),
                json!({"app": "api"}),
            ),
            (
                "default op is replace",
                json!([{"path": "/metadata/labels/app", "value": "api"}]),
                json!({"app": "api"}),
            ),
            (
                "add a member",
                json!([{"op": "add", "path": "/metadata/labels/tier", "value": "fe"}]),
                json!({"app": "web", "tier": "fe"}),
            ),
            (
                "remove a member",
                json!([{"op": "remove", "path": "/metadata/labels/app"}]),
                json!({}),
            ),
            (
                "keys with / and ~ are escaped",
                json!([{"op": "add", "path": "/metadata/labels/example.com~1x~0y", "value": "1"}]),
                json!({"app": "web", "example.com/x~y": "1"}),
            ),
        ];
        for (what, patch, want_labels) in cases {
            let mut obj = deployment();
            apply_overrides(&mut obj, &ovs(patch)).unwrap();
            assert_eq!(obj["metadata"]["labels"], want_labels, "{what}");
        }
    }

    #[test]
    fn array_ops() {
        let mut obj = deployment();
        apply_overrides(
            &mut obj,
            &ovs(json!([
                {"op": "add", "path": "/spec/template/spec/containers/-", "value": {"name": "c3"}},
                {"op": "remove", "path": "/spec/template/spec/containers/1"},
                {"op": "add", "path": "/spec/template/spec/containers/0", "value": {"name": "c0"}}
            ])),
        )
        .unwrap();
        let names: Vec<&str> = obj["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["c0", "nginx", "c3"]);
    }

    #[test]
    fn bad_paths_are_errors_that_name_the_path_and_change_nothing() {
        let cases = vec![
            json!([{"op": "remove", "path": "/spec/missing"}]),
            json!([{"op": "add", "path": "/spec/no/such/parent", "value": 1}]),
            json!([{"op": "replace", "path": "/spec/template/spec/containers/7/image", "value": "x"}]),
            json!([{"op": "replace", "path": "/spec/nothere/replicas", "value": 1}]),
            json!([{"path": "spec.replicas", "value": 5}]),
            json!([{"path": "/metadata/labels/app", "value": "ok"}, {"op": "remove", "path": "/bogus"}]),
        ];
        for patch in cases {
            let mut obj = deployment();
            let o = ovs(patch.clone());
            let err = apply_overrides(&mut obj, &o).unwrap_err();
            let path = &o.last().unwrap().path;
            assert!(
                matches!(err, OverrideError::PathNotApplicable { .. }),
                "{patch}: {err}"
            );
            assert!(
                err.to_string().contains(path.as_str()),
                "{err} names {path}"
            );
            assert_eq!(obj, deployment(), "{patch}: object untouched");
        }
    }

    #[test]
    fn op_and_value_are_checked() {
        let mut obj = deployment();
        let err =
            apply_overrides(&mut obj, &ovs(json!([{"op": "move", "path": "/a"}]))).unwrap_err();
        assert_eq!(
            err,
            OverrideError::InvalidOp {
                op: "move".into(),
                path: "/a".into()
            }
        );
        let err =
            apply_overrides(&mut obj, &ovs(json!([{"op": "add", "path": "/a"}]))).unwrap_err();
        assert!(matches!(err, OverrideError::MissingValue { .. }), "{err}");
    }

    #[test]
    fn overrides_map_checks_kubefed_invariants() {
        let ok = overrides_by_cluster(Some(&json!([
            {"clusterName": "c1", "clusterOverrides": [{"path": "/spec/replicas", "value": 1}]},
            {"clusterName": "c2"}
        ])))
        .unwrap();
        assert_eq!(
            ok["c1"],
            vec![ClusterOverride::replace("/spec/replicas", json!(1))]
        );
        assert!(ok["c2"].is_empty());
        assert!(overrides_by_cluster(None).unwrap().is_empty());
        assert!(overrides_by_cluster(Some(&Value::Null)).unwrap().is_empty());

        let dup =
            overrides_by_cluster(Some(&json!([{"clusterName": "c1"}, {"clusterName": "c1"}])));
        assert_eq!(dup, Err(OverrideError::DuplicateCluster("c1".into())));
        let dup_path =
            overrides_by_cluster(Some(&json!([{"clusterName": "c1", "clusterOverrides": [
            {"path": "/a", "value": 1}, {"op": "remove", "path": "/a"}]}])));
        assert!(matches!(dup_path, Err(OverrideError::DuplicatePath { .. })));
        for p in INVALID_PATHS {
            let r = overrides_by_cluster(Some(&json!([{"clusterName": "c1", "clusterOverrides": [
                {"path": p, "value": "x"}]}])));
            assert!(matches!(r, Err(OverrideError::InvalidPath { .. })), "{p}");
        }
        assert!(matches!(
            overrides_by_cluster(Some(&json!({"clusterName": "c1"}))),
            Err(OverrideError::Malformed(_))
        ));
    }

    #[test]
    fn overrides_round_trip_through_value() {
        let v = json!([
            {"clusterName": "a", "clusterOverrides": [{"path": "/spec/replicas", "value": 3}]},
            {"clusterName": "b", "clusterOverrides": [{"op": "remove", "path": "/x"}]}
        ]);
        let map = overrides_by_cluster(Some(&v)).unwrap();
        assert_eq!(overrides_to_value(&map), v);
    }
}
