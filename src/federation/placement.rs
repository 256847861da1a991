//! Placement: which joined clusters a `Federated<Kind>` selects (`spec.placement`).
//!
//! Rules (KubeFed's, seed 004 §1.4.2):
//! - `clusters` wins over `clusterSelector` whenever it is present, even when it is an
//!   empty list (which then selects nothing);
//! - without `clusters`, `clusterSelector` is a Kubernetes label selector over the
//!   KubeFedCluster labels: `{}` selects every joined cluster, an absent selector none;
//! - no placement at all selects nothing;
//! - names that are not joined clusters are dropped (the result is always a subset of the
//!   joined clusters).
//!
//! Readiness does not change placement: a selected cluster that is not Ready stays
//! selected, so the controller reports `ClusterNotReady` for it and leaves its objects
//! alone instead of deleting them. [`PlacementResult`] splits the selection by readiness.
//!
//! Namespaced federated objects are further limited by the placement of the
//! `FederatedNamespace` of their namespace ([`namespaced_selected_clusters`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::Value;

use crate::api::core::KubeFedCluster;

/// A joined cluster as placement sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterInfo {
    pub name: String,
    /// The KubeFedCluster's `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// The KubeFedCluster's `Ready` condition is `True`.
    pub ready: bool,
}

impl ClusterInfo {
    pub fn new(name: &str, labels: &[(&str, &str)], ready: bool) -> Self {
        ClusterInfo {
            name: name.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ready,
        }
    }

    /// Name, labels and readiness of a KubeFedCluster.
    pub fn from_cluster(c: &KubeFedCluster) -> Self {
        ClusterInfo {
            name: c.metadata.name.clone().unwrap_or_default(),
            labels: c.metadata.labels.clone().unwrap_or_default(),
            ready: c.is_ready(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlacementError {
    #[error("spec.placement is malformed: {0}")]
    Malformed(String),
    #[error("invalid cluster selector: {0}")]
    InvalidSelector(String),
}

/// `spec.placement` of a federated object.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// `None` when absent (or `null`); `Some(vec![])` selects nothing.
    #[serde(default)]
    pub clusters: Option<Vec<ClusterReference>>,
    #[serde(default)]
    pub cluster_selector: Option<LabelSelector>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct ClusterReference {
    pub name: String,
}

/// A Kubernetes `metav1.LabelSelector`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: String,
    #[serde(default)]
    pub values: Vec<String>,
}

impl LabelSelector {
    /// Whether `labels` satisfy every requirement (an empty selector matches everything).
    /// Errors on an unknown operator or on values that do not fit the operator, as
    /// Kubernetes' `LabelSelectorAsSelector` does.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> Result<bool, PlacementError> {
        let mut all = self
            .match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v));
        for req in &self.match_expressions {
            let value = labels.get(&req.key);
            let ok = match req.operator.as_str() {
                "In" | "NotIn" => {
                    if req.values.is_empty() {
                        return Err(PlacementError::InvalidSelector(format!(
                            "operator {} on key {:?} needs at least one value",
                            req.operator, req.key
                        )));
                    }
                    let contained = value.is_some_and(|v| req.values.contains(v));
                    if req.operator == "In" {
                        contained
                    } else {
                        !contained
                    }
                }
                "Exists" | "DoesNotExist" => {
                    if !req.values.is_empty() {
                        return Err(PlacementError::InvalidSelector(format!(
                            "operator {} on key {:?} takes no values",
                            req.operator, req.key
                        )));
                    }
                    (req.operator == "Exists") == value.is_some()
                }
                other => {
                    return Err(PlacementError::InvalidSelector(format!(
                        "unknown operator {other:?} on key {:?} (In, NotIn, Exists, DoesNotExist)",
                        req.key
                    )));
                }
            };
            all &= ok;
        }
        Ok(all)
    }
}

impl Placement {
    /// Parses `spec.placement`; `null` or absent is the empty placement.
    pub fn from_value(placement: Option<&Value>) -> Result<Placement, PlacementError> {
        match placement {
            None | Some(Value::Null) => Ok(Placement::default()),
            Some(v) => {
                Placement::deserialize(v).map_err(|e| PlacementError::Malformed(e.to_string()))
            }
        }
    }

    /// The joined clusters this placement selects. With `selector_only` the `clusters`
    /// list is ignored (the replica scheduler rewrites `clusters` itself and intersects
    /// with the selector only).
    pub fn select(
        &self,
        clusters: &[ClusterInfo],
        selector_only: bool,
    ) -> Result<BTreeSet<String>, PlacementError> {
        let mut out = BTreeSet::new();
        match (&self.clusters, selector_only) {
            (Some(names), false) => {
                for c in clusters {
                    if names.iter().any(|n| n.name == c.name) {
                        out.insert(c.name.clone());
                    }
                }
            }
            _ => {
                let Some(selector) = &self.cluster_selector else {
                    return Ok(out);
                };
                for c in clusters {
                    if selector.matches(&c.labels)? {
                        out.insert(c.name.clone());
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The joined clusters that `spec.placement` selects (see the module doc for the rules).
pub fn selected_clusters(
    placement: Option<&Value>,
    clusters: &[ClusterInfo],
) -> Result<BTreeSet<String>, PlacementError> {
    Placement::from_value(placement)?.select(clusters, false)
}

/// Placement of a namespaced federated object: its own selection intersected with the
/// selection of the `FederatedNamespace` of its namespace (`namespace_placement`: that
/// object's `spec.placement`, `None` when there is no FederatedNamespace).
///
/// Without a FederatedNamespace nothing is selected (the controller reports
/// `NamespaceNotFederated`), unless KubeFed runs namespace-scoped (`limited_scope`), where
/// the namespace necessarily exists everywhere and the object's own placement is used.
pub fn namespaced_selected_clusters(
    placement: Option<&Value>,
    namespace_placement: Option<Option<&Value>>,
    clusters: &[ClusterInfo],
    limited_scope: bool,
) -> Result<BTreeSet<String>, PlacementError> {
    let own = selected_clusters(placement, clusters)?;
    match namespace_placement {
        None if limited_scope => Ok(own),
        None => Ok(BTreeSet::new()),
        Some(ns) => {
            let ns = selected_clusters(ns, clusters)?;
            Ok(own.intersection(&ns).cloned().collect())
        }
    }
}

/// A selection split by readiness: the controller propagates to `ready` and reports
/// `ClusterNotReady` for `not_ready`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlacementResult {
    pub ready: BTreeSet<String>,
    pub not_ready: BTreeSet<String>,
}

impl PlacementResult {
    pub fn split(selected: &BTreeSet<String>, clusters: &[ClusterInfo]) -> Self {
        let mut out = PlacementResult::default();
        for c in clusters.iter().filter(|c| selected.contains(&c.name)) {
            if c.ready {
                out.ready.insert(c.name.clone());
            } else {
                out.not_ready.insert(c.name.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fleet() -> Vec<ClusterInfo> {
        vec![
            ClusterInfo::new("cluster1", &[("region", "eu"), ("foo", "bar")], true),
            ClusterInfo::new("cluster2", &[("region", "us")], true),
            ClusterInfo::new("cluster3", &[("region", "eu")], false),
        ]
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn placement_table() {
        let cases: Vec<(&str, Option<Value>, &[&str])> = vec![
            ("no placement selects nothing", None, &[]),
            ("null placement selects nothing", Some(Value::Null), &[]),
            ("empty placement selects nothing", Some(json!({})), &[]),
            (
                "empty selector selects every joined cluster, ready or not",
                Some(json!({"clusterSelector": {}})),
                &["cluster1", "cluster2", "cluster3"],
            ),
            (
                "clusters list selects those clusters",
                Some(json!({"clusters": [{"name": "cluster2"}, {"name": "cluster1"}]})),
                &["cluster1", "cluster2"],
            ),
            (
                "clusters wins over the selector",
                Some(json!({"clusters": [{"name": "cluster2"}],
                            "clusterSelector": {"matchLabels": {"foo": "bar"}}})),
                &["cluster2"],
            ),
            (
                "an empty clusters list wins over the selector too",
                Some(json!({"clusters": [], "clusterSelector": {}})),
                &[],
            ),
            (
                "null clusters falls back to the selector",
                Some(json!({"clusters": null, "clusterSelector": {}})),
                &["cluster1", "cluster2", "cluster3"],
            ),
            (
                "unknown cluster names are dropped",
                Some(json!({"clusters": [{"name": "ghost"}, {"name": "cluster3"}]})),
                &["cluster3"],
            ),
            (
                "matchLabels",
                Some(json!({"clusterSelector": {"matchLabels": {"foo": "bar"}}})),
                &["cluster1"],
            ),
            (
                "matchExpressions In",
                Some(json!({"clusterSelector": {"matchExpressions": [
                    {"key": "region", "operator": "In", "values": ["eu", "ap"]}]}})),
                &["cluster1", "cluster3"],
            ),
            (
                "matchExpressions NotIn matches a missing key",
                Some(json!({"clusterSelector": {"matchExpressions": [
                    {"key": "foo", "operator": "NotIn", "values": ["bar"]}]}})),
                &["cluster2", "cluster3"],
            ),
            (
                "matchExpressions Exists and DoesNotExist",
                Some(json!({"clusterSelector": {"matchExpressions": [
                    {"key": "region", "operator": "Exists"},
                    {"key": "foo", "operator": "DoesNotExist"}]}})),
                &["cluster2", "cluster3"],
            ),
            (
                "matchLabels and matchExpressions are ANDed",
                Some(json!({"clusterSelector": {"matchLabels": {"region": "eu"},
                    "matchExpressions": [{"key": "foo", "operator": "Exists"}]}})),
                &["cluster1"],
            ),
        ];
        for (what, placement, want) in cases {
            let got = selected_clusters(placement.as_ref(), &fleet()).unwrap();
            assert_eq!(got, set(want), "{what}");
        }
    }

    #[test]
    fn bad_selectors_are_errors() {
        for bad in [
            json!({"clusterSelector": {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}}),
            json!({"clusterSelector": {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}}),
            json!({"clusterSelector": {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}}),
        ] {
            let err = selected_clusters(Some(&bad), &fleet()).unwrap_err();
            assert!(
                matches!(err, PlacementError::InvalidSelector(_)),
                "{bad}: {err}"
            );
        }
        let err = selected_clusters(Some(&json!({"clusters": "cluster1"})), &fleet()).unwrap_err();
        assert!(matches!(err, PlacementError::Malformed(_)), "{err}");
    }

    #[test]
    fn selector_only_ignores_the_clusters_list() {
        let p = Placement::from_value(Some(&json!({
            "clusters": [{"name": "cluster2"}],
            "clusterSelector": {"matchLabels": {"region": "eu"}}
        })))
        .unwrap();
        assert_eq!(
            p.select(&fleet(), true).unwrap(),
            set(&["cluster1", "cluster3"])
        );
        let no_selector =
            Placement::from_value(Some(&json!({"clusters": [{"name": "cluster2"}]}))).unwrap();
        assert_eq!(no_selector.select(&fleet(), true).unwrap(), set(&[]));
    }

    #[test]
    fn namespaced_objects_intersect_with_their_federated_namespace() {
        let own = json!({"clusterSelector": {}});
        let ns = json!({"clusters": [{"name": "cluster1"}, {"name": "cluster3"}]});
        assert_eq!(
            namespaced_selected_clusters(Some(&own), Some(Some(&ns)), &fleet(), false).unwrap(),
            set(&["cluster1", "cluster3"])
        );
        assert_eq!(
            namespaced_selected_clusters(Some(&own), None, &fleet(), false).unwrap(),
            set(&[]),
            "no FederatedNamespace: nowhere"
        );
        assert_eq!(
            namespaced_selected_clusters(Some(&own), None, &fleet(), true).unwrap(),
            set(&["cluster1", "cluster2", "cluster3"]),
            "namespace-scoped control plane: own placement"
        );
        assert_eq!(
            namespaced_selected_clusters(Some(&own), Some(None), &fleet(), false).unwrap(),
            set(&[]),
            "FederatedNamespace without placement: nowhere"
        );
    }

    #[test]
    fn split_by_readiness() {
        let sel = set(&["cluster1", "cluster3"]);
        let r = PlacementResult::split(&sel, &fleet());
        assert_eq!(r.ready, set(&["cluster1"]));
        assert_eq!(r.not_ready, set(&["cluster3"]));
    }

    #[test]
    fn cluster_info_from_kubefedcluster() {
        let c: KubeFedCluster = serde_json::from_value(json!({
            "apiVersion": "core.kubefed.io/v1beta1", "kind": "KubeFedCluster",
            "metadata": {"name": "c1", "namespace": "kube-federation-system", "labels": {"a": "b"}},
            "spec": {"apiEndpoint": "https://x", "secretRef": {"name": "s"}},
            "status": {"conditions": [{"type": "Ready", "status": "True", "lastProbeTime": "2026-01-01T00:00:00Z"}]}
        }))
        .unwrap();
        assert_eq!(
            ClusterInfo::from_cluster(&c),
            ClusterInfo::new("c1", &[("a", "b")], true)
        );
    }
}
