//! Replica scheduling: how a ReplicaSchedulingPreference spreads `totalReplicas` of a
//! FederatedDeployment / FederatedReplicaSet over the Ready clusters, and how the result
//! is written back into the federated object.
//!
//! The planner is KubeFed's:
//! 1. each available cluster takes its own preferences, else those of `"*"`; a cluster
//!    with neither gets 0 replicas (an unlisted cluster's weight is 0). An RSP without
//!    any `clusters` means `{"*": {weight: 1}}` (an even spread);
//! 2. clusters are ordered by decreasing weight, then by an FNV-1 hash of cluster name +
//!    `namespace/name`, so that ties do not always favour the same cluster;
//! 3. every cluster first gets `minReplicas` (capped by what is left and by its estimated
//!    capacity), in that order;
//! 4. without `rebalance`, replicas already running in a cluster are kept there (up to
//!    its `maxReplicas` and capacity) before anything else is spread;
//! 5. the rest is spread by weight, fractions rounded up, in rounds: a cluster that hits
//!    `maxReplicas` or its capacity leaves the spread and the next round shares what is
//!    left among the others, until nothing is left or nothing moves.
//!
//! Rebalancing when a cluster goes away falls out of the inputs: the caller passes only
//! the Ready clusters, so an offline cluster's share is spread over the others.
//!
//! The result is written as `/spec/replicas` overrides (replacing a user's override of
//! that path: the scheduler wins) and as `spec.placement.clusters`
//! ([`apply_schedule`]).

use std::cmp::Reverse;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};

use super::overrides::{ClusterOverride, OverrideError, overrides_by_cluster, overrides_to_value};
use crate::api::scheduling::{ClusterPreferences, ReplicaSchedulingPreferenceSpec};

/// The override path the scheduler owns.
pub const REPLICAS_PATH: &str = "/spec/replicas";

/// The federated kinds an RSP may target.
pub const TARGET_KINDS: [&str; 2] = ["FederatedDeployment", "FederatedReplicaSet"];

/// The planner's answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Replicas per available cluster.
    pub replicas: BTreeMap<String, i64>,
    /// Replicas that did not fit a cluster's estimated capacity and would be worth
    /// scheduling there anyway (with `rebalance: false`, trimmed to what found no home).
    pub overflow: BTreeMap<String, i64>,
}

struct Named<'a> {
    cluster: &'a str,
    hash: u32,
    pref: &'a ClusterPreferences,
}

/// FNV-1 (not 1a), 32 bit, as Go's `hash/fnv.New32`.
fn fnv1_32(parts: &[&[u8]]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for part in parts {
        for b in *part {
            h = h.wrapping_mul(0x0100_0193);
            h ^= u32::from(*b);
        }
    }
    h
}

/// KubeFed's planner. `clusters`: the available (Ready, and if asked placement-selected)
/// clusters; `current`: replicas now running and ready per cluster; `capacity`: estimated
/// capacity of clusters with unschedulable pods; `key`: `namespace/name` of the object.
/// `spec.clusters` is used as given (see [`schedule`] for the empty-preferences default).
pub fn plan(
    spec: &ReplicaSchedulingPreferenceSpec,
    clusters: &[String],
    current: &BTreeMap<String, i64>,
    capacity: &BTreeMap<String, i64>,
    key: &str,
) -> Plan {
    let mut out = Plan::default();
    let mut prefs: Vec<Named> = Vec::new();
    for cluster in clusters {
        match spec
            .clusters
            .get(cluster)
            .or_else(|| spec.clusters.get("*"))
        {
            Some(pref) => prefs.push(Named {
                cluster,
                hash: fnv1_32(&[cluster.as_bytes(), key.as_bytes()]),
                pref,
            }),
            None => {
                out.replicas.insert(cluster.clone(), 0);
            }
        }
    }
    prefs.sort_by_key(|p| (Reverse(p.pref.weight), p.hash, p.cluster));

    let plan = &mut out.replicas;
    let mut remaining = i64::from(spec.total_replicas.max(0));

    for p in &prefs {
        let mut min = p.pref.min_replicas.min(remaining);
        if let Some(cap) = capacity.get(p.cluster) {
            min = min.min(*cap);
        }
        remaining -= min;
        plan.insert(p.cluster.to_string(), min);
    }

    // Replicas kept where they already run (rebalance: false), still to be accounted
    // against the weighted share of the cluster.
    let mut preallocated: BTreeMap<&str, i64> = BTreeMap::new();
    if !spec.rebalance {
        for p in &prefs {
            let planned = plan[p.cluster];
            let Some(&count) = current.get(p.cluster) else {
                continue;
            };
            if count <= planned {
                continue;
            }
            let mut target = count;
            if let Some(max) = p.pref.max_replicas {
                target = target.min(max);
            }
            if let Some(cap) = capacity.get(p.cluster) {
                target = target.min(*cap);
            }
            let extra = (target - planned).min(remaining).max(0);
            remaining -= extra;
            preallocated.insert(p.cluster, extra);
            plan.insert(p.cluster.to_string(), planned + extra);
        }
    }

    // Every round either places everything, fills at least one cluster, or consumes at
    // least half of the pending preallocations, so this ends.
    let mut modified = true;
    while modified && remaining > 0 {
        modified = false;
        let weight_sum: i64 = prefs.iter().map(|p| p.pref.weight).sum();
        if weight_sum <= 0 {
            break;
        }
        let to_distribute = remaining;
        let mut still_open = Vec::with_capacity(prefs.len());
        for p in prefs {
            let start = plan[p.cluster];
            let mut extra =
                ((to_distribute * p.pref.weight + weight_sum - 1) / weight_sum).min(remaining);
            let prealloc = preallocated.get(p.cluster).copied().unwrap_or(0);
            let used = extra.min(prealloc);
            preallocated.insert(p.cluster, prealloc - used);
            extra -= used;
            if used > 0 {
                modified = true;
            }
            let mut total = start + extra;
            let mut full = false;
            if let Some(max) = p.pref.max_replicas
                && total > max
            {
                total = max;
                full = true;
            }
            if let Some(&cap) = capacity.get(p.cluster)
                && total > cap
            {
                out.overflow.insert(p.cluster.to_string(), total - cap);
                total = cap;
                full = true;
            }
            remaining -= total - start;
            plan.insert(p.cluster.to_string(), total);
            if total > start {
                modified = true;
            }
            if !full {
                still_open.push(p);
            }
        }
        prefs = still_open;
    }

    if !spec.rebalance {
        out.overflow = out
            .overflow
            .into_iter()
            .map(|(c, v)| (c, v.min(remaining)))
            .filter(|(_, v)| *v > 0)
            .collect();
    }
    out
}

/// The replicas each cluster should run: the [`plan`] with KubeFed's defaulting (no
/// preferences = `"*"` with weight 1), zero for clusters that run some now but were not
/// available, and overflow added on top.
pub fn schedule(
    spec: &ReplicaSchedulingPreferenceSpec,
    clusters: &[String],
    current: &BTreeMap<String, i64>,
    capacity: &BTreeMap<String, i64>,
    key: &str,
) -> BTreeMap<String, i64> {
    let defaulted;
    let spec = if spec.clusters.is_empty() {
        let mut s = spec.clone();
        s.clusters.insert(
            "*".into(),
            ClusterPreferences {
                weight: 1,
                ..Default::default()
            },
        );
        defaulted = s;
        &defaulted
    } else {
        spec
    };
    let p = plan(spec, clusters, current, capacity, key);
    let mut result: BTreeMap<String, i64> = current.keys().map(|c| (c.clone(), 0)).collect();
    result.extend(p.replicas);
    for (c, over) in p.overflow {
        *result.entry(c).or_insert(0) += over;
    }
    result
}

/// What a member's Deployment/ReplicaSet tells the scheduler.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaState {
    /// Replicas running and ready.
    pub current: i64,
    /// Estimated capacity, when some pods have been unschedulable for over a minute.
    pub capacity: Option<i64>,
    /// Some pods are unschedulable but not yet for a minute: look again later.
    pub recheck: bool,
}

/// How long a pod must be unschedulable before the cluster's capacity counts as reached.
pub const UNSCHEDULABLE_THRESHOLD_SECS: i64 = 60;

/// The state of a member object (`spec.replicas`, `status.readyReplicas`); `pods` (its
/// pods that are not running: the member's Pending pods matching its selector) are only
/// consulted when the two differ, to tell whether the cluster has run out of room.
pub fn replica_state(obj: &Value, pods: &[Pod], now: &Time) -> ReplicaState {
    let replicas = obj["spec"]["replicas"].as_i64().unwrap_or(0);
    let ready = obj["status"]["readyReplicas"].as_i64().unwrap_or(0);
    if replicas == ready {
        return ReplicaState {
            current: ready,
            ..Default::default()
        };
    }
    let mut unschedulable_now = 0;
    let mut unschedulable = 0;
    for pod in pods {
        let Some(status) = &pod.status else { continue };
        if status.phase.as_deref() == Some("Running") {
            continue;
        }
        for c in status.conditions.iter().flatten() {
            if c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
            {
                unschedulable_now += 1;
                let since = c.last_transition_time.as_ref().map(|t| t.0.as_second());
                if since.is_some_and(|s| now.0.as_second() - s > UNSCHEDULABLE_THRESHOLD_SECS) {
                    unschedulable += 1;
                }
            }
        }
    }
    ReplicaState {
        current: ready,
        capacity: (unschedulable > 0).then_some(replicas - unschedulable),
        recheck: unschedulable_now != unschedulable,
    }
}

/// Writes a schedule into a federated object: `spec.placement.clusters` becomes the
/// scheduled clusters and every scheduled cluster gets a `/spec/replicas` override with
/// its count (an existing override of that path is replaced in place); clusters no longer
/// scheduled lose theirs. Returns whether anything changed, so the caller writes only
/// then.
pub fn apply_schedule(
    federated: &mut Value,
    result: &BTreeMap<String, i64>,
) -> Result<bool, OverrideError> {
    let mut changed = false;
    let names: Vec<&str> = result.keys().map(String::as_str).collect();
    let mut current: Vec<&str> = federated["spec"]["placement"]["clusters"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    current.sort_unstable();
    let placement_missing = federated["spec"]["placement"]["clusters"].is_null();
    let new_clusters = (current != names || placement_missing)
        .then(|| json!(names.iter().map(|n| json!({"name": n})).collect::<Vec<_>>()));

    let mut map = overrides_by_cluster(federated["spec"].get("overrides"))?;
    if overrides_need_update(&map, result) {
        for (cluster, overrides) in map.iter_mut() {
            if !result.contains_key(cluster) {
                overrides.retain(|o| o.path != REPLICAS_PATH);
            }
        }
        for (cluster, replicas) in result {
            let overrides = map.entry(cluster.clone()).or_default();
            match overrides.iter_mut().find(|o| o.path == REPLICAS_PATH) {
                Some(o) => {
                    o.op.clear();
                    o.value = Some(json!(replicas));
                }
                None => overrides.push(ClusterOverride::replace(REPLICAS_PATH, json!(replicas))),
            }
        }
        set_spec_field(federated, "overrides", overrides_to_value(&map));
        changed = true;
    }
    if let Some(clusters) = new_clusters {
        let spec = spec_mut(federated);
        let placement = spec.entry("placement").or_insert_with(|| json!({}));
        if !placement.is_object() {
            *placement = json!({});
        }
        placement["clusters"] = clusters;
        changed = true;
    }
    Ok(changed)
}

fn overrides_need_update(
    map: &super::overrides::OverridesMap,
    result: &BTreeMap<String, i64>,
) -> bool {
    let mut seen = 0;
    for (cluster, overrides) in map {
        for o in overrides.iter().filter(|o| o.path == REPLICAS_PATH) {
            let value = o.value.as_ref().and_then(Value::as_i64);
            let plain_op = o.op.is_empty() || o.op == "replace";
            if value.is_none() || result.get(cluster).copied() != value || !plain_op {
                return true;
            }
            seen += 1;
        }
    }
    seen != result.len()
}

fn spec_mut(federated: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !federated["spec"].is_object() {
        federated["spec"] = json!({});
    }
    federated["spec"]
        .as_object_mut()
        .expect("spec is an object")
}

fn set_spec_field(federated: &mut Value, field: &str, value: Value) {
    spec_mut(federated).insert(field.to_string(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefs(v: Value) -> BTreeMap<String, ClusterPreferences> {
        serde_json::from_value(v).unwrap()
    }

    fn spec(total: i32, clusters: Value) -> ReplicaSchedulingPreferenceSpec {
        ReplicaSchedulingPreferenceSpec {
            target_kind: "FederatedDeployment".into(),
            total_replicas: total,
            clusters: prefs(clusters),
            ..Default::default()
        }
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn counts(v: Value) -> BTreeMap<String, i64> {
        serde_json::from_value(v).unwrap()
    }

    fn none() -> BTreeMap<String, i64> {
        BTreeMap::new()
    }

    /// Seed 004 §1.7.1, clusters A, B, C, object test-ns/test-deployment.
    #[test]
    fn seed_examples_give_the_seed_counts() {
        let key = "test-ns/test-deployment";
        let abc = names(&["A", "B", "C"]);
        let cases: Vec<(&str, ReplicaSchedulingPreferenceSpec, Vec<String>, Value)> = vec![
            (
                "no preferences: even",
                spec(9, json!({})),
                abc.clone(),
                json!({"A": 3, "B": 3, "C": 3}),
            ),
            (
                "\"*\" weight 1: even",
                spec(9, json!({"*": {"weight": 1}})),
                abc.clone(),
                json!({"A": 3, "B": 3, "C": 3}),
            ),
            (
                "weights A1:B2, C unlisted gets none",
                spec(9, json!({"A": {"weight": 1}, "B": {"weight": 2}})),
                abc.clone(),
                json!({"A": 3, "B": 6, "C": 0}),
            ),
            (
                "weights with min/max",
                spec(
                    9,
                    json!({"A": {"minReplicas": 4, "maxReplicas": 6, "weight": 1},
                               "B": {"minReplicas": 4, "maxReplicas": 8, "weight": 2}}),
                ),
                names(&["A", "B"]),
                json!({"A": 4, "B": 5}),
            ),
            (
                "same with C joined: C unlisted gets none",
                spec(
                    9,
                    json!({"A": {"minReplicas": 4, "maxReplicas": 6, "weight": 1},
                               "B": {"minReplicas": 4, "maxReplicas": 8, "weight": 2}}),
                ),
                abc.clone(),
                json!({"A": 4, "B": 5, "C": 0}),
            ),
        ];
        for (what, s, clusters, want) in cases {
            assert_eq!(
                schedule(&s, &clusters, &none(), &none(), key),
                counts(want),
                "{what}"
            );
        }

        let star_c = spec(
            50,
            json!({"*": {"weight": 1}, "C": {"maxReplicas": 20, "weight": 1}}),
        );
        let all = schedule(&star_c, &abc, &none(), &none(), key);
        let mut got: Vec<i64> = all.values().copied().collect();
        got.sort_unstable();
        assert_eq!(got, [16, 17, 17], "two clusters 17, one 16: {all:?}");
        assert_eq!(all.values().sum::<i64>(), 50);
        assert!(all["C"] <= 20);

        let b_offline = schedule(&star_c, &names(&["A", "C"]), &none(), &none(), key);
        assert_eq!(b_offline, counts(json!({"A": 30, "C": 20})), "B offline");
        let a_b_offline = schedule(&star_c, &names(&["C"]), &none(), &none(), key);
        assert_eq!(a_b_offline, counts(json!({"C": 20})), "A and B offline");
    }

    #[test]
    fn b_going_offline_moves_its_replicas_even_without_rebalance() {
        // The running state before: A17 B17 C16 (or any spread); B is gone.
        let star_c = spec(
            50,
            json!({"*": {"weight": 1}, "C": {"maxReplicas": 20, "weight": 1}}),
        );
        let current = counts(json!({"A": 17, "C": 16}));
        let got = schedule(
            &star_c,
            &names(&["A", "C"]),
            &current,
            &none(),
            "test-ns/test-deployment",
        );
        assert_eq!(got, counts(json!({"A": 30, "C": 20})));
    }

    /// The hash order for the empty key is KubeFed's (its planner tests).
    #[test]
    fn ties_follow_kubefeds_hash_order() {
        let even = spec(50, json!({"*": {"weight": 1}}));
        let p = |total: i32, cl: &[&str]| {
            plan(
                &ReplicaSchedulingPreferenceSpec {
                    total_replicas: total,
                    ..even.clone()
                },
                &names(cl),
                &none(),
                &none(),
                "",
            )
            .replicas
        };
        assert_eq!(
            p(50, &["A", "B", "C"]),
            counts(json!({"A": 16, "B": 17, "C": 17}))
        );
        assert_eq!(p(50, &["A", "B"]), counts(json!({"A": 25, "B": 25})));
        assert_eq!(p(1, &["A", "B"]), counts(json!({"A": 0, "B": 1})));
        assert_eq!(
            p(1, &["A", "B", "C", "D"]),
            counts(json!({"A": 0, "B": 0, "C": 0, "D": 1}))
        );
        assert_eq!(p(1, &["A"]), counts(json!({"A": 1})));
        assert_eq!(p(1, &[]), none());
    }

    #[test]
    fn weights_mins_and_maxes() {
        let cases: Vec<(Value, i32, &[&str], Value)> = vec![
            (
                json!({"*": {"minReplicas": 2}}),
                50,
                &["A", "B", "C"],
                json!({"A": 2, "B": 2, "C": 2}),
            ),
            (
                json!({"*": {"minReplicas": 20}}),
                50,
                &["A", "B", "C"],
                json!({"A": 10, "B": 20, "C": 20}),
            ),
            (
                json!({"*": {"minReplicas": 20}, "A": {"minReplicas": 100, "weight": 1}}),
                50,
                &["A", "B", "C"],
                json!({"A": 50, "B": 0, "C": 0}),
            ),
            (
                json!({"*": {"minReplicas": 10, "weight": 1, "maxReplicas": 12}}),
                50,
                &["A", "B", "C"],
                json!({"A": 12, "B": 12, "C": 12}),
            ),
            (
                json!({"*": {"weight": 1, "maxReplicas": 2}}),
                50,
                &["A", "B", "C"],
                json!({"A": 2, "B": 2, "C": 2}),
            ),
            (
                json!({"*": {"weight": 0, "maxReplicas": 2}}),
                50,
                &["A", "B", "C"],
                json!({"A": 0, "B": 0, "C": 0}),
            ),
            (
                json!({"A": {"weight": 1}, "B": {"weight": 2}}),
                60,
                &["A", "B", "C"],
                json!({"A": 20, "B": 40, "C": 0}),
            ),
            (
                json!({"A": {"weight": 10000}, "B": {"weight": 1}}),
                50,
                &["A", "B", "C"],
                json!({"A": 50, "B": 0, "C": 0}),
            ),
            (
                json!({"A": {"weight": 10000}, "B": {"weight": 1}}),
                50,
                &["B", "C"],
                json!({"B": 50, "C": 0}),
            ),
            (
                json!({"A": {"weight": 10000, "maxReplicas": 10}, "B": {"weight": 1}, "C": {"weight": 1}}),
                50,
                &["A", "B", "C"],
                json!({"A": 10, "B": 20, "C": 20}),
            ),
            (
                json!({"A": {"weight": 10000, "maxReplicas": 10}, "B": {"weight": 1},
                       "C": {"weight": 1, "maxReplicas": 21}, "D": {"weight": 1, "maxReplicas": 10}}),
                71,
                &["A", "B", "C", "D"],
                json!({"A": 10, "B": 30, "C": 21, "D": 10}),
            ),
        ];
        for (p, total, cl, want) in cases {
            let got = plan(&spec(total, p.clone()), &names(cl), &none(), &none(), "");
            assert_eq!(got.replicas, counts(want), "{p} total {total} over {cl:?}");
            assert!(got.overflow.is_empty());
        }
    }

    #[test]
    fn star_weight_zero_and_unlisted_clusters_get_nothing() {
        let s = spec(10, json!({"*": {"weight": 0}, "A": {"weight": 1}}));
        assert_eq!(
            schedule(&s, &names(&["A", "B", "C"]), &none(), &none(), "ns/x"),
            counts(json!({"A": 10, "B": 0, "C": 0}))
        );
        let s = spec(10, json!({"B": {"weight": 1}}));
        assert_eq!(
            schedule(&s, &names(&["A", "B"]), &none(), &none(), "ns/x"),
            counts(json!({"A": 0, "B": 10}))
        );
    }

    #[test]
    fn existing_replicas_stay_without_rebalance() {
        let even = json!({"*": {"weight": 1}});
        let cases: Vec<(i32, &[&str], Value, Value)> = vec![
            (
                50,
                &["A", "B", "C"],
                json!({"C": 30}),
                json!({"A": 10, "B": 10, "C": 30}),
            ),
            (50, &["A", "B"], json!({"A": 30}), json!({"A": 30, "B": 20})),
            (
                15,
                &["A", "B"],
                json!({"A": 0, "B": 8}),
                json!({"A": 7, "B": 8}),
            ),
            (
                15,
                &["A", "B"],
                json!({"A": 6, "B": 8}),
                json!({"A": 7, "B": 8}),
            ),
            (50, &["A", "B"], json!({"A": 10}), json!({"A": 25, "B": 25})),
            (
                50,
                &["A", "B"],
                json!({"A": 10, "B": 70}),
                json!({"A": 0, "B": 50}),
            ),
            (1, &["A", "B"], json!({"A": 30}), json!({"A": 1, "B": 0})),
            (
                500000,
                &["A", "B"],
                json!({"A": 300000}),
                json!({"A": 300000, "B": 200000}),
            ),
        ];
        for (total, cl, existing, want) in cases {
            let got = plan(
                &spec(total, even.clone()),
                &names(cl),
                &counts(existing.clone()),
                &none(),
                "",
            );
            assert_eq!(
                got.replicas,
                counts(want),
                "{total} over {cl:?} with {existing}"
            );
        }
    }

    #[test]
    fn capacity_and_overflow() {
        let mut s = spec(50, json!({"*": {"weight": 1}}));
        s.rebalance = true;
        let got = plan(
            &s,
            &names(&["A", "B", "C"]),
            &none(),
            &counts(json!({"C": 10})),
            "",
        );
        assert_eq!(got.replicas, counts(json!({"A": 20, "B": 20, "C": 10})));
        assert_eq!(got.overflow, counts(json!({"C": 7})));
        assert_eq!(
            schedule(
                &s,
                &names(&["A", "B", "C"]),
                &none(),
                &counts(json!({"C": 10})),
                ""
            ),
            counts(json!({"A": 20, "B": 20, "C": 17})),
            "overflow is scheduled on top"
        );

        let mut s = spec(60, json!({"A": {"weight": 1}, "B": {"weight": 1}}));
        s.rebalance = false;
        let got = plan(
            &s,
            &names(&["A", "B", "C"]),
            &none(),
            &counts(json!({"A": 10, "B": 10})),
            "",
        );
        assert_eq!(got.replicas, counts(json!({"A": 10, "B": 10, "C": 0})));
        assert_eq!(got.overflow, counts(json!({"A": 20, "B": 20})));

        let s = spec(60, json!({"A": {"weight": 1}, "B": {"weight": 5}}));
        let got = plan(
            &s,
            &names(&["A", "B", "C"]),
            &none(),
            &counts(json!({"B": 10})),
            "",
        );
        assert_eq!(got.replicas, counts(json!({"A": 50, "B": 10, "C": 0})));
        assert!(got.overflow.is_empty(), "everything found a home");
    }

    #[test]
    fn fnv1_matches_go() {
        // Go: fnv.New32() of "" and of "a".
        assert_eq!(fnv1_32(&[b""]), 0x811c9dc5);
        assert_eq!(fnv1_32(&[b"a"]), 0x050c5d7e);
        assert_eq!(fnv1_32(&[b"a", b"b"]), fnv1_32(&[b"ab"]));
    }

    fn pod(phase: &str, conds: Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p"}, "status": {"phase": phase, "conditions": conds}}),
        )
        .unwrap()
    }

    #[test]
    fn replica_state_from_member_objects() {
        let now: Time = serde_json::from_value(json!("2026-01-01T00:10:00Z")).unwrap();
        let settled = json!({"spec": {"replicas": 3}, "status": {"readyReplicas": 3}});
        assert_eq!(
            replica_state(&settled, &[], &now),
            ReplicaState {
                current: 3,
                ..Default::default()
            }
        );

        let pending = json!({"spec": {"replicas": 4}, "status": {"readyReplicas": 1}});
        let pods = vec![
            pod("Running", json!([{"type": "Ready", "status": "True"}])),
            pod("Running", json!([{"type": "Ready", "status": "False"}])),
            pod(
                "Pending",
                json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                   "lastTransitionTime": "2026-01-01T00:00:00Z"}]),
            ),
            pod(
                "Pending",
                json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                   "lastTransitionTime": "2026-01-01T00:09:30Z"}]),
            ),
        ];
        assert_eq!(
            replica_state(&pending, &pods, &now),
            ReplicaState {
                current: 1,
                capacity: Some(3),
                recheck: true
            }
        );
        assert_eq!(
            replica_state(&json!({"spec": {"replicas": 2}}), &[], &now),
            ReplicaState {
                current: 0,
                capacity: None,
                recheck: false
            }
        );
    }

    #[test]
    fn schedule_is_written_as_replica_overrides_that_win() {
        let mut fed = json!({
            "spec": {
                "template": {"spec": {"replicas": 1}},
                "placement": {"clusterSelector": {}},
                "overrides": [
                    {"clusterName": "A", "clusterOverrides": [
                        {"path": "/spec/replicas", "value": 99},
                        {"path": "/metadata/labels/x", "value": "y"}]},
                    {"clusterName": "Z", "clusterOverrides": [{"path": "/spec/replicas", "value": 5}]}
                ]
            }
        });
        let result = counts(json!({"A": 3, "B": 6, "C": 0}));
        assert!(apply_schedule(&mut fed, &result).unwrap());
        assert_eq!(
            fed["spec"]["placement"],
            json!({"clusterSelector": {}, "clusters": [{"name": "A"}, {"name": "B"}, {"name": "C"}]})
        );
        assert_eq!(
            fed["spec"]["overrides"],
            json!([
                {"clusterName": "A", "clusterOverrides": [
                    {"path": "/spec/replicas", "value": 3},
                    {"path": "/metadata/labels/x", "value": "y"}]},
                {"clusterName": "B", "clusterOverrides": [{"path": "/spec/replicas", "value": 6}]},
                {"clusterName": "C", "clusterOverrides": [{"path": "/spec/replicas", "value": 0}]},
                {"clusterName": "Z", "clusterOverrides": []}
            ])
        );
        assert!(
            !apply_schedule(&mut fed, &result).unwrap(),
            "second write is a no-op"
        );

        let mut bare = json!({"spec": {"template": {}}});
        assert!(apply_schedule(&mut bare, &counts(json!({"A": 2}))).unwrap());
        assert_eq!(
            bare["spec"]["placement"]["clusters"],
            json!([{"name": "A"}])
        );
        assert_eq!(
            bare["spec"]["overrides"],
            json!([{"clusterName": "A", "clusterOverrides": [{"path": "/spec/replicas", "value": 2}]}])
        );
    }
}
