//! The ReplicaSchedulingPreference controller: spreads a FederatedDeployment's or
//! FederatedReplicaSet's replicas over the Ready clusters with the pure
//! `federation::scheduling`, and writes the result into the federated object as placement
//! and `/spec/replicas` overrides (which replace any user override of that path), only
//! when it changes. It is the only writer of those fields while a preference exists; the
//! sync controller writes the federated object's status and finalizer.
//!
//! It reads the federated object from the host index (never by GET) and reacts to the
//! preference, the federated object and every KubeFedCluster change, so replicas move
//! off a cluster that goes offline and back when it returns.
//!
//! Capacity: each member's Pending pods are watched (one field-selected store per member);
//! a member whose pods of the target have been unschedulable for over a minute counts as
//! full at what it runs, so with `rebalance: true` the rest moves to the others, as in
//! KubeFed. Pods still pending for less than that bring a re-check when the minute is up.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use futures::StreamExt;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::overrides::OverrideError;
use super::placement::LabelSelector;
use super::placement::{ClusterInfo, Placement, PlacementError};
use super::scheduling::{UNSCHEDULABLE_THRESHOLD_SECS, apply_schedule, replica_state, schedule};
use crate::api::scheduling::ReplicaSchedulingPreference;
use crate::cluster::registry::{ClusterRegistry, RegistryEvent};
use crate::host::{FederatedChange, HostIndex};
use crate::kube::controller::{self, ControllerError, ControllerMetrics, Retry, Spec, Trigger};

#[derive(Debug, Error)]
pub enum RspError {
    #[error("{0} has not listed yet")]
    NotSynced(String),
    #[error("the federated object's placement: {0}")]
    Placement(#[from] PlacementError),
    #[error("the federated object's overrides: {0}")]
    Overrides(#[from] OverrideError),
    #[error("the scheduled federated object is not valid: {0}")]
    Invalid(#[source] serde_json::Error),
    #[error("writing the federated object: {}", crate::kube::Brief(.0))]
    Write(#[source] kube::Error),
}

impl ControllerError for RspError {
    fn reason(&self) -> &'static str {
        match self {
            RspError::NotSynced(_) => "NotSynced",
            RspError::Placement(_) => "Placement",
            RspError::Overrides(_) => "Overrides",
            RspError::Invalid(_) => "Invalid",
            RspError::Write(_) => "Write",
        }
    }
    fn retry(&self) -> Retry {
        match self {
            RspError::NotSynced(_) => Retry::Soon,
            // The user's input: retried when it changes.
            RspError::Placement(_) | RspError::Overrides(_) | RspError::Invalid(_) => Retry::Never,
            RspError::Write(_) => Retry::Backoff,
        }
    }
}

struct Ctx {
    host: kube::Client,
    index: Arc<HostIndex>,
    registry: Arc<ClusterRegistry>,
}

/// Runs until `cancel`.
pub async fn run(
    index: Arc<HostIndex>,
    registry: Arc<ClusterRegistry>,
    host: kube::Client,
    controller_metrics: ControllerMetrics,
    cancel: CancellationToken,
) {
    registry.watch_kind_with::<Pod>(Some(PENDING_PODS));
    // A member's pending pods concern every preference of their namespace.
    let rsps = index.rsps.store();
    let pod_kind = format!("Pod?{PENDING_PODS}");
    let pods = registry.triggers(move |e| match e {
        RegistryEvent::Object {
            kind, namespace, ..
        } if *kind == pod_kind => rsps
            .state()
            .iter()
            .filter(|r| r.namespace() == *namespace)
            .map(|r| Trigger::One(ObjectRef::from_obj(&**r)))
            .collect(),
        RegistryEvent::Relisted { kind, .. } if *kind == pod_kind => vec![Trigger::All],
        RegistryEvent::Connected(_) | RegistryEvent::Removed(_) => vec![Trigger::All],
        _ => vec![],
    });
    // A preference has the name of its federated object.
    let federated = index
        .federated_changes()
        .map(|c| match c {
            FederatedChange::Object {
                namespace, name, ..
            } => Trigger::One(
                ObjectRef::<ReplicaSchedulingPreference>::new(&name)
                    .within(namespace.as_deref().unwrap_or_default()),
            ),
            FederatedChange::Relisted => Trigger::All,
        })
        .boxed();
    let spec = Spec {
        name: "replica-scheduling",
        source: index.rsps.clone(),
        triggers: vec![
            controller::self_triggers(&index.rsps),
            controller::all_on_change(&index.clusters),
            controller::all_on_change(&index.type_configs),
            federated,
            pods,
        ],
        concurrency: 0,
    };
    let ctx = Arc::new(Ctx {
        host,
        index,
        registry,
    });
    controller::run(
        spec,
        controller_metrics,
        ctx,
        |rsp, ctx| async move { reconcile(&rsp, &ctx).await },
        |_, _| {},
        cancel,
    )
    .await;
}

async fn reconcile(rsp: &ReplicaSchedulingPreference, ctx: &Ctx) -> Result<Action, RspError> {
    let ns = rsp.namespace().unwrap_or_default();
    let name = rsp.name_any();
    if !ctx.index.type_configs.is_ready() || !ctx.index.clusters.is_ready() {
        return Err(RspError::NotSynced("the host index".into()));
    }
    let Some(ftc) = ctx
        .index
        .type_configs
        .store()
        .state()
        .into_iter()
        .find(|f| f.spec.federated_type.kind == rsp.spec.target_kind)
    else {
        // The type is not enabled; enabling it triggers every preference.
        return Ok(Action::await_change());
    };
    let fed_ar = ftc.spec.federated_type.to_dynamic();
    let feds = ctx.index.federated(&fed_ar);
    if !feds.is_ready() {
        return Err(RspError::NotSynced(format!("the {}s", fed_ar.kind)));
    }
    let Some(fed) = feds
        .store()
        .get(&ObjectRef::new_with(&name, fed_ar.clone()).within(&ns))
    else {
        return Ok(Action::await_change());
    };
    let mut fed_value = serde_json::to_value(&*fed).map_err(RspError::Invalid)?;

    let mut infos: Vec<ClusterInfo> = ctx
        .index
        .clusters
        .store()
        .state()
        .iter()
        .map(|c| ClusterInfo::from_cluster(c))
        .collect();
    infos.sort_by(|a, b| a.name.cmp(&b.name));
    let mut ready: Vec<String> = infos
        .iter()
        .filter(|c| c.ready)
        .map(|c| c.name.clone())
        .collect();
    if rsp.spec.intersect_with_cluster_selector {
        let selected =
            Placement::from_value(fed_value["spec"].get("placement"))?.select(&infos, true)?;
        ready.retain(|c| selected.contains(c));
    }
    // What the members run now, so that rebalancing moves as little as possible, and
    // where pods do not fit. A member store that has not listed yet contributes nothing
    // rather than "no replicas".
    let target_ar = ftc.spec.target_type.to_dynamic();
    let now =
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now());
    let mut current = BTreeMap::new();
    let mut capacity = BTreeMap::new();
    let mut recheck = false;
    for c in &ready {
        let Some(store) = ctx.registry.dyn_store(c, &target_ar).filter(listed) else {
            continue;
        };
        let Some(obj) = store.get(&ObjectRef::new_with(&name, target_ar.clone()).within(&ns))
        else {
            continue;
        };
        let v = serde_json::to_value(&*obj).map_err(RspError::Invalid)?;
        let pods = match ctx
            .registry
            .store_with::<Pod>(c, Some(PENDING_PODS))
            .filter(listed)
        {
            Some(pending) => pods_of(&v, &pending.state(), &ns),
            None => vec![],
        };
        let state = replica_state(&v, &pods, &now);
        current.insert(c.clone(), state.current);
        if let Some(cap) = state.capacity {
            capacity.insert(c.clone(), cap);
        }
        recheck |= state.recheck;
    }
    let result = schedule(
        &rsp.spec,
        &ready,
        &current,
        &capacity,
        &format!("{ns}/{name}"),
    );
    if apply_schedule(&mut fed_value, &result)? {
        let obj: DynamicObject = serde_json::from_value(fed_value).map_err(RspError::Invalid)?;
        // The stored resourceVersion makes a concurrent change a conflict, retried with
        // the newer object.
        Api::<DynamicObject>::namespaced_with(ctx.host.clone(), &ns, &fed_ar)
            .replace(&name, &PostParams::default(), &obj)
            .await
            .map_err(RspError::Write)?;
        info!(namespace = %ns, name = %name, schedule = ?result, "replicas scheduled");
    }
    Ok(if recheck {
        // Some pods are unschedulable, not yet for a minute: look again when it is up.
        Action::requeue(Duration::from_secs(UNSCHEDULABLE_THRESHOLD_SECS as u64 + 1))
    } else {
        Action::await_change()
    })
}

/// A member store that has listed once.
fn listed<K: Clone + kube::Resource + 'static>(s: &kube::runtime::reflector::Store<K>) -> bool
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    futures::FutureExt::now_or_never(s.wait_until_ready()).is_some()
}

/// The field selector of the member pod stores: only pending pods can be unschedulable.
const PENDING_PODS: &str = "status.phase=Pending";

/// The pods of `ns` that the member object's `spec.selector` selects (none when it has no
/// valid selector: a broken selector must not make a cluster look full).
fn pods_of(obj: &serde_json::Value, pods: &[Arc<Pod>], ns: &str) -> Vec<Pod> {
    let Ok(selector) = serde_json::from_value::<LabelSelector>(obj["spec"]["selector"].clone())
    else {
        return vec![];
    };
    if selector.match_labels.is_empty() && selector.match_expressions.is_empty() {
        return vec![];
    }
    pods.iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
        .filter(|p| {
            let labels = p.metadata.labels.clone().unwrap_or_default();
            selector.matches(&labels).unwrap_or(false)
        })
        .map(|p| (**p).clone())
        .collect()
}
