//! `scheduling.kubefed.io/v1alpha1`: ReplicaSchedulingPreference, which spreads a
//! FederatedDeployment's or FederatedReplicaSet's replicas over clusters by weight.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// Named after the federated object it schedules (same namespace and name).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "scheduling.kubefed.io",
    version = "v1alpha1",
    kind = "ReplicaSchedulingPreference",
    namespaced,
    doc = "Spreads the replicas of the FederatedDeployment or FederatedReplicaSet of the same name and namespace over the member clusters by weight, within per-cluster minimum and maximum, as replica overrides; clusters that go offline lose their share.",
    status = "ReplicaSchedulingPreferenceStatus",
    shortname = "rsp",
    printcolumn(name = "Target", type_ = "string", json_path = ".spec.targetKind"),
    printcolumn(name = "Total", type_ = "integer", json_path = ".spec.totalReplicas"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSchedulingPreferenceSpec {
    /// `FederatedDeployment` or `FederatedReplicaSet`.
    #[schemars(extend("enum" = ["FederatedDeployment", "FederatedReplicaSet"]))]
    pub target_kind: String,
    /// Replicas to spread over the clusters.
    #[schemars(range(min = 0))]
    pub total_replicas: i32,
    /// Move replicas already running when a better spread is possible.
    #[serde(default, skip_serializing_if = "is_false")]
    pub rebalance: bool,
    /// Only consider clusters that the federated object's placement selects.
    #[serde(default)]
    pub intersect_with_cluster_selector: bool,
    /// Preferences per cluster name; `"*"` applies to clusters not listed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub clusters: BTreeMap<String, ClusterPreferences>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPreferences {
    /// Replicas the cluster gets before any weighting.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0))]
    pub min_replicas: i64,
    /// Replicas the cluster gets at most; absent means no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_replicas: Option<i64>,
    /// The cluster's share of the remaining replicas, relative to the other weights.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0))]
    pub weight: i64,
}

/// Empty: the outcome shows in the federated object's overrides and status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ReplicaSchedulingPreferenceStatus {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seed_example_with_star_and_max() {
        let spec: ReplicaSchedulingPreferenceSpec = serde_json::from_value(json!({
            "targetKind": "FederatedDeployment", "totalReplicas": 50,
            "clusters": {"*": {"weight": 1}, "C": {"maxReplicas": 20, "weight": 1}}
        }))
        .unwrap();
        assert_eq!(spec.clusters["C"].max_replicas, Some(20));
        assert_eq!(spec.clusters["*"].weight, 1);
        assert!(!spec.intersect_with_cluster_selector);
    }
}
