//! The sync controller of one federated type: makes the member clusters' target objects
//! match their `Federated<Kind>` object, with the pure rules beside it (placement,
//! overrides, retention, desired object, status), and reports seed 004's `Propagation`
//! condition and per-cluster statuses.
//!
//! Inputs are the host index (the federated objects, FederatedNamespaces, KubeFedClusters,
//! KubeFedConfig) and the registry's member stores of the target type; a reconcile reads
//! only memory. It writes a member object only when it differs from the desired one,
//! and the federated status only when it says something new.
//!
//! Fail closed: a store that has not listed, a member whose identity or store is not
//! known yet, or an invalid placement or override changes nothing in any member; the
//! object is retried (or waits for a change) and the status says why. A member object is
//! deleted only from positive knowledge: the placement was computed and excludes the
//! cluster (which includes "the FederatedNamespace is known not to exist", as in KubeFed),
//! or the federated object is being deleted. Members that are not Ready are left alone.
//!
//! Per-cluster operations of one object run concurrently, each bounded by the member
//! request timeout, so a hung member delays neither the other members' copies nor other
//! objects (reconciles of different objects run concurrently too).
//!
//! The host's own namespaces are never deleted: when the host is joined as a member, a
//! Namespace that leaves the placement or whose FederatedNamespace is deleted only loses
//! its managed label there, since it holds the federated objects themselves (KubeFed's
//! rule). Until the registry knows whether a member is the host, no Namespace is
//! deleted in it.
//!
//! Deleting a federated object removes its managed targets first (finalizer
//! `kubefed.io/sync-controller`), from every Ready member at once; the finalizer stays
//! until the members that were not Ready are back and their copies are gone too, unless
//! the annotation `kubefed.io/orphan: "true"` asks to keep the copies.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::ResourceExt;
use kube::api::{
    Api, ApiResource as KubeApiResource, DeleteParams, DynamicObject, Patch, PatchParams,
};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KEvent, EventType, Recorder};
use kube::runtime::reflector::ObjectRef;
use prometheus::{IntCounterVec, Opts, Registry};
use serde_json::{Value, json};
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::desired::{
    MANAGED_LABEL, SYNC_FIELD_MANAGER, applied_object, is_explicitly_unmanaged, needs_apply,
};
use super::overrides::overrides_by_cluster;
use super::placement::{ClusterInfo, namespaced_selected_clusters, selected_clusters};
use super::status::{self, ClusterStatus, PropagationStatus};
use crate::api::core::{
    ApiResource, FederatedTypeConfig, ResourceAdoption, ResourceScope, StatusCollectionMode,
};
use crate::cluster::registry::{ClusterRegistry, Member, RegistryEvent};
use crate::host::{FederatedChange, HostIndex};
use crate::kube::controller::{self, ControllerError, ControllerMetrics, Retry, Spec, Trigger};

pub const FINALIZER: &str = "kubefed.io/sync-controller";
pub const ORPHAN_ANNOTATION: &str = "kubefed.io/orphan";

/// How long a Ready member may take to list the target type before its objects are
/// reported `CachedRetrievalFailed` instead of holding the status back.
pub const MEMBER_SYNC_GRACE: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct SyncMetrics {
    operations: IntCounterVec,
}

impl SyncMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let operations = IntCounterVec::new(
            Opts::new(
                "kubefed_propagation_operations_total",
                "Operations on member objects by federated kind, cluster, operation and result",
            ),
            &["kind", "cluster", "op", "result"],
        )?;
        registry.register(Box::new(operations.clone()))?;
        Ok(SyncMetrics { operations })
    }
}

#[derive(Debug, Error)]
pub enum SyncError {
    #[error("{0} has not listed yet")]
    NotSynced(String),
    #[error(
        "writing the {what} of the federated object: {}",
        crate::kube::Brief(source)
    )]
    Host {
        what: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("propagation failed or is pending in {0}")]
    Propagation(String),
    #[error("waiting for the copies in {0} to be removed")]
    Removal(String),
}

impl ControllerError for SyncError {
    fn reason(&self) -> &'static str {
        match self {
            SyncError::NotSynced(_) => "NotSynced",
            SyncError::Host { .. } => "HostWrite",
            SyncError::Propagation(_) => "Propagation",
            SyncError::Removal(_) => "Removal",
        }
    }
    fn retry(&self) -> Retry {
        match self {
            SyncError::NotSynced(_) => Retry::Soon,
            _ => Retry::Backoff,
        }
    }
}

/// What to do next for one cluster, when the others are fine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Next {
    /// Nothing: a watch event brings the next change.
    Done,
    /// Waiting for something this process will learn soon.
    Soon,
    /// An operation failed.
    Backoff,
}

struct ClusterResult {
    status: Option<ClusterStatus>,
    next: Next,
}

impl ClusterResult {
    fn none() -> Self {
        ClusterResult {
            status: None,
            next: Next::Done,
        }
    }
    fn report(cluster: &str, status: &str, next: Next) -> Self {
        ClusterResult {
            status: Some(ClusterStatus::new(cluster, status)),
            next,
        }
    }
    fn failed(cluster: &str, status: &str, message: &str) -> Self {
        ClusterResult {
            status: Some(ClusterStatus::with_message(cluster, status, message)),
            next: Next::Backoff,
        }
    }
}

/// Where a federated object goes: `clusters` is `None` when nothing may be changed in
/// any member; `reason` is the aggregate status reason, if any.
struct Selection {
    clusters: Option<BTreeSet<String>>,
    reason: Option<&'static str>,
    message: Option<String>,
}

impl Selection {
    fn unknown(reason: &'static str, message: Option<String>) -> Self {
        Selection {
            clusters: None,
            reason: Some(reason),
            message,
        }
    }
}

/// The sync controller of one type.
pub struct TypeSync {
    host: kube::Client,
    index: Arc<HostIndex>,
    registry: Arc<ClusterRegistry>,
    target: ApiResource,
    federated: ApiResource,
    /// `statusCollection: Enabled`: member objects' status goes into `remoteStatus`.
    collect_status: bool,
    recorder: Recorder,
    metrics: SyncMetrics,
    unsynced_since: std::sync::Mutex<std::collections::HashMap<String, Instant>>,
}

/// The namespaces KubeFed never federates (its own namespace too).
fn is_system_namespace(name: &str, kubefed_namespace: &str) -> bool {
    matches!(name, "kube-system" | "kube-public" | "default") || name == kubefed_namespace
}

/// Runs the sync controller of `ftc` until `cancel`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    ftc: FederatedTypeConfig,
    index: Arc<HostIndex>,
    registry: Arc<ClusterRegistry>,
    host: kube::Client,
    recorder: Recorder,
    metrics: SyncMetrics,
    controller_metrics: ControllerMetrics,
    concurrency: u16,
    cancel: CancellationToken,
) {
    let federated = ftc.spec.federated_type.clone();
    let target = ftc.spec.target_type.clone();
    let fed_ar = federated.to_dynamic();
    let target_ar = target.to_dynamic();
    let feds = index.federated(&fed_ar);
    registry.watch_dyn(&target_ar);
    let ctx = Arc::new(TypeSync {
        host,
        index: index.clone(),
        registry: registry.clone(),
        target: target.clone(),
        federated: federated.clone(),
        collect_status: ftc.spec.status_collection == Some(StatusCollectionMode::Enabled),
        recorder,
        metrics,
        unsynced_since: Default::default(),
    });

    let c = ctx.clone();
    let member_triggers = registry.triggers(move |e| match e {
        RegistryEvent::Object {
            kind,
            namespace,
            name,
            ..
        } if *kind == c.target.kind => vec![Trigger::One(c.fed_ref_of_target(namespace, name))],
        RegistryEvent::Relisted { kind, .. } if *kind == c.target.kind => vec![Trigger::All],
        RegistryEvent::Connected(_) | RegistryEvent::Removed(_) | RegistryEvent::Identified(_) => {
            vec![Trigger::All]
        }
        _ => vec![],
    });
    // A FederatedNamespace decides where everything in its namespace goes.
    let c = ctx.clone();
    let store = feds.store();
    let namespace_triggers = index
        .federated_changes()
        .flat_map(move |ch| {
            futures::stream::iter(match ch {
                FederatedChange::Object {
                    kind,
                    namespace: Some(ns),
                    ..
                } if kind == "FederatedNamespace" && !c.is_namespace_type() => store
                    .state()
                    .iter()
                    .filter(|f| f.namespace().as_deref() == Some(ns.as_str()))
                    .map(|f| Trigger::One(ObjectRef::from_obj_with(&**f, fed_ar.clone())))
                    .collect(),
                FederatedChange::Relisted if !c.is_namespace_type() => vec![Trigger::All],
                _ => vec![],
            })
        })
        .boxed();
    let spec = Spec {
        name: "sync",
        source: feds.clone(),
        triggers: vec![
            controller::map_changes(&feds, {
                let ar = federated.to_dynamic();
                move |o: &DynamicObject| vec![ObjectRef::from_obj_with(o, ar.clone())]
            }),
            controller::all_on_change(&index.clusters),
            controller::all_on_change(&index.configs),
            controller::all_on_change(&index.type_configs),
            member_triggers,
            namespace_triggers,
        ],
        concurrency,
    };
    info!(kind = %federated.kind, "sync controller started");
    let sweeper = ctx.clone();
    controller::run(
        spec,
        controller_metrics,
        ctx,
        |fed, ctx| async move { ctx.reconcile(&fed).await },
        // A member object (or the federated object's own deletion) triggered a federated
        // object that does not exist: hand back any copy still labelled as managed.
        move |ns, name| {
            let (c, ns, name) = (sweeper.clone(), ns.map(str::to_string), name.to_string());
            tokio::spawn(async move { c.sweep_orphan(ns.as_deref(), &name).await });
        },
        cancel,
    )
    .await;
    registry.unwatch_dyn(&target_ar);
    info!(kind = %federated.kind, "sync controller stopped");
}

impl TypeSync {
    fn is_namespace_type(&self) -> bool {
        self.target.group.is_empty() && self.target.kind == "Namespace"
    }

    fn fed_ar(&self) -> KubeApiResource {
        self.federated.to_dynamic()
    }

    /// The federated object a member object belongs to: same namespace and name (a
    /// Namespace `n` belongs to the FederatedNamespace `n/n`).
    fn fed_ref_of_target(&self, ns: &Option<String>, name: &str) -> ObjectRef<DynamicObject> {
        let r = ObjectRef::new_with(name, self.fed_ar());
        if self.is_namespace_type() {
            r.within(name)
        } else if let Some(ns) = ns {
            r.within(ns)
        } else {
            r
        }
    }

    fn fed_api(&self, ns: &str) -> Api<DynamicObject> {
        let ar = self.fed_ar();
        match self.federated.scope {
            ResourceScope::Namespaced => Api::namespaced_with(self.host.clone(), ns, &ar),
            ResourceScope::Cluster => Api::all_with(self.host.clone(), &ar),
        }
    }

    fn member_api(&self, member: &Member, ns: &str) -> Api<DynamicObject> {
        let ar = self.target.to_dynamic();
        match self.target.scope {
            ResourceScope::Namespaced => {
                Api::namespaced_with(member.request_client.clone(), ns, &ar)
            }
            ResourceScope::Cluster => Api::all_with(member.request_client.clone(), &ar),
        }
    }

    fn cluster_infos(&self) -> Vec<ClusterInfo> {
        let mut v: Vec<ClusterInfo> = self
            .index
            .clusters
            .store()
            .state()
            .iter()
            .map(|c| ClusterInfo::from_cluster(c))
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    fn count(&self, cluster: &str, op: &str, ok: bool) {
        self.metrics
            .operations
            .with_label_values(&[
                self.federated.kind.as_str(),
                cluster,
                op,
                if ok { "success" } else { "error" },
            ])
            .inc();
    }

    async fn event(&self, fed: &DynamicObject, type_: EventType, reason: &str, note: String) {
        let ev = KEvent {
            type_,
            reason: reason.into(),
            note: Some(note.chars().take(1000).collect()),
            action: "Sync".into(),
            secondary: None,
        };
        let reference = kube::Resource::object_ref(fed, &self.fed_ar());
        if let Err(e) = self.recorder.publish(&ev, &reference).await {
            debug!(error = %e, "publishing an event");
        }
    }

    /// The member's object: `Err` while the member or its store cannot tell.
    fn member_object(
        &self,
        cluster: &str,
        ns: &str,
        name: &str,
    ) -> Result<(Arc<Member>, Option<Arc<DynamicObject>>), ClusterResult> {
        let Some(member) = self.registry.member(cluster) else {
            return Err(ClusterResult::report(
                cluster,
                "ClientRetrievalFailed",
                Next::Soon,
            ));
        };
        let ar = self.target.to_dynamic();
        let Some(store) = self.registry.dyn_store(cluster, &ar) else {
            return Err(ClusterResult::report(
                cluster,
                "ClientRetrievalFailed",
                Next::Soon,
            ));
        };
        if futures::FutureExt::now_or_never(store.wait_until_ready()).is_none() {
            let mut since = self.unsynced_since.lock().unwrap();
            let first = *since
                .entry(cluster.to_string())
                .or_insert_with(Instant::now);
            let status = if first.elapsed() < MEMBER_SYNC_GRACE {
                // Not listed yet (e.g. just after a restart): come back rather than
                // report a transient state.
                None
            } else {
                Some(ClusterStatus::with_message(
                    cluster,
                    "CachedRetrievalFailed",
                    "the member's objects have not been listed yet",
                ))
            };
            return Err(ClusterResult {
                status,
                next: Next::Soon,
            });
        }
        self.unsynced_since.lock().unwrap().remove(cluster);
        let r = ObjectRef::new_with(name, ar);
        let r = if self.target.scope == ResourceScope::Namespaced {
            r.within(ns)
        } else {
            r
        };
        Ok((member, store.get(&r)))
    }

    async fn reconcile(&self, fed: &DynamicObject) -> Result<Action, SyncError> {
        let ns = fed.namespace().unwrap_or_default();
        let name = fed.name_any();
        if self.is_namespace_type() {
            if is_system_namespace(&name, &self.index.namespace) {
                return Ok(Action::await_change());
            }
            if ns != name {
                self.event(
                    fed,
                    EventType::Warning,
                    "InvalidName",
                    "the name of a federated namespace must match the name of its containing namespace".into(),
                )
                .await;
                return Ok(Action::await_change());
            }
        }
        if !self.index.clusters.is_ready() {
            return Err(SyncError::NotSynced("the KubeFedClusters".into()));
        }
        let clusters = self.cluster_infos();
        let finalizers = fed.metadata.finalizers.clone().unwrap_or_default();
        if fed.metadata.deletion_timestamp.is_some() {
            return self.ensure_deletion(fed, &clusters, &finalizers).await;
        }
        if !finalizers.iter().any(|f| f == FINALIZER) {
            let mut f = finalizers.clone();
            f.push(FINALIZER.into());
            let patch =
                json!({"metadata": {"finalizers": f, "resourceVersion": fed.resource_version()}});
            self.fed_api(&ns)
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .map_err(|source| SyncError::Host {
                    what: "finalizers",
                    source,
                })?;
            // The update comes back through the watch.
            return Ok(Action::await_change());
        }
        // A cold start waits (briefly) for the first probe of every cluster, so that the
        // status is written once, not once for "not Ready yet" and again.
        for c in self.index.clusters_of_unknown_health() {
            let mut since = self.unsynced_since.lock().unwrap();
            let first = *since
                .entry(format!("health/{c}"))
                .or_insert_with(Instant::now);
            if first.elapsed() < MEMBER_SYNC_GRACE {
                return Err(SyncError::NotSynced(format!("the health of cluster {c}")));
            }
        }
        let adopt = match self.index.kubefed_config() {
            None => return Err(SyncError::NotSynced("the KubeFedConfig".into())),
            Some(c) => {
                c.and_then(|c| c.spec.sync_controller.clone())
                    .and_then(|s| s.adopt_resources)
                    != Some(ResourceAdoption::Disabled)
            }
        };
        let fed_value = serde_json::to_value(fed).expect("a federated object serialises");
        let mut status = PropagationStatus::default();

        // `None`: nothing may be changed in any member (the status says why).
        let sel = self.selection(&fed_value, &ns, &clusters)?;
        if let Some(reason) = sel.reason {
            status.reason = Some(reason.into());
            if let Some(m) = sel.message {
                warn!(namespace = %ns, name = %name, error = %m, "{reason}");
                self.event(fed, EventType::Warning, reason, m).await;
            }
        }
        let selected = sel.clusters;
        let overrides = match overrides_by_cluster(fed_value["spec"].get("overrides")) {
            Ok(o) => Some(o),
            Err(e) => {
                status.reason = Some("ComputePlacementFailed".into());
                let m = format!("invalid spec.overrides: {e}");
                self.event(fed, EventType::Warning, "ComputePlacementFailed", m)
                    .await;
                None
            }
        };
        let (Some(selected), Some(overrides)) = (selected, overrides) else {
            self.write_status(fed, &fed_value, &status).await?;
            return Ok(Action::await_change());
        };

        let results = futures::future::join_all(clusters.iter().map(|c| {
            let cluster_overrides = overrides.get(&c.name).cloned().unwrap_or_default();
            self.sync_cluster(
                fed,
                &fed_value,
                c,
                selected.contains(&c.name),
                adopt,
                cluster_overrides,
            )
        }))
        .await;
        let mut pending = Vec::new();
        let mut next = Next::Done;
        // A selected member that has not listed yet is waited for: no half-made status.
        let mut unsynced = false;
        for (c, r) in clusters.iter().zip(results) {
            if r.next != Next::Done {
                pending.push(c.name.clone());
            }
            unsynced |= selected.contains(&c.name) && r.status.is_none() && r.next == Next::Soon;
            next = next.max(r.next);
            status.clusters.extend(r.status);
        }
        if !unsynced {
            self.write_status(fed, &fed_value, &status).await?;
        }
        match next {
            Next::Done => Ok(Action::await_change()),
            Next::Soon => Err(SyncError::NotSynced(format!(
                "the state of {}",
                pending.join(", ")
            ))),
            Next::Backoff => Err(SyncError::Propagation(pending.join(", "))),
        }
    }

    /// Where the object goes, or why that cannot be said (`Err` while an input has not
    /// listed).
    fn selection(
        &self,
        fed_value: &Value,
        ns: &str,
        clusters: &[ClusterInfo],
    ) -> Result<Selection, SyncError> {
        let placement = fed_value["spec"].get("placement");
        let computed =
            if self.target.scope == ResourceScope::Namespaced && !self.is_namespace_type() {
                match self.federated_namespace_placement(ns)? {
                    // No namespace type is enabled: nothing can be said about members.
                    None => return Ok(Selection::unknown("NamespaceNotFederated", None)),
                    // Known not to exist: nothing of this namespace stays in the members
                    // (KubeFed's rule).
                    Some(None) => {
                        return Ok(Selection {
                            clusters: Some(BTreeSet::new()),
                            reason: Some("NamespaceNotFederated"),
                            message: None,
                        });
                    }
                    Some(Some(p)) => {
                        namespaced_selected_clusters(placement, Some(p.as_ref()), clusters, false)
                    }
                }
            } else {
                selected_clusters(placement, clusters)
            };
        Ok(match computed {
            Ok(s) => Selection {
                clusters: Some(s),
                reason: None,
                message: None,
            },
            Err(e) => Selection::unknown("ComputePlacementFailed", Some(e.to_string())),
        })
    }

    /// The placement of the FederatedNamespace of `ns`: `None` when no namespace type is
    /// enabled, `Some(None)` when the FederatedNamespace is known not to exist.
    #[allow(clippy::type_complexity)]
    fn federated_namespace_placement(
        &self,
        ns: &str,
    ) -> Result<Option<Option<Option<Value>>>, SyncError> {
        if !self.index.type_configs.is_ready() {
            return Err(SyncError::NotSynced("the FederatedTypeConfigs".into()));
        }
        let Some(ftc) = self
            .index
            .type_configs
            .store()
            .state()
            .into_iter()
            .find(|f| {
                f.spec.target_type.group.is_empty() && f.spec.target_type.kind == "Namespace"
            })
        else {
            return Ok(None);
        };
        let ar = ftc.spec.federated_type.to_dynamic();
        let store = self.index.federated(&ar);
        if !store.is_ready() {
            return Err(SyncError::NotSynced(format!("the {}s", ar.kind)));
        }
        let fns = store.store().get(&ObjectRef::new_with(ns, ar).within(ns));
        Ok(Some(fns.map(|o| {
            o.data.get("spec").and_then(|s| s.get("placement")).cloned()
        })))
    }

    async fn write_status(
        &self,
        fed: &DynamicObject,
        fed_value: &Value,
        status: &PropagationStatus,
    ) -> Result<(), SyncError> {
        let new_status = status.to_value(fed_value.get("status"), fed.metadata.generation);
        if status::same_status(fed_value.get("status"), Some(&new_status)) {
            return Ok(());
        }
        self.fed_api(&fed.namespace().unwrap_or_default())
            .patch_status(
                &fed.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({"status": new_status})),
            )
            .await
            .map_err(|source| SyncError::Host {
                what: "status",
                source,
            })?;
        Ok(())
    }

    async fn sync_cluster(
        &self,
        fed: &DynamicObject,
        fed_value: &Value,
        c: &ClusterInfo,
        wanted: bool,
        adopt: bool,
        overrides: Vec<super::overrides::ClusterOverride>,
    ) -> ClusterResult {
        let ns = fed.namespace().unwrap_or_default();
        let name = fed.name_any();
        if !c.ready {
            // Not Ready members are left alone: neither created in nor deleted from.
            return if wanted {
                ClusterResult::report(&c.name, "ClusterNotReady", Next::Done)
            } else {
                ClusterResult::none()
            };
        }
        let (member, existing) = match self.member_object(&c.name, &ns, &name) {
            Ok(m) => m,
            Err(r) if wanted => return r,
            Err(r) => {
                return ClusterResult {
                    status: None,
                    next: r.next,
                };
            }
        };
        let existing_value = existing.as_ref().map(|e| self.member_value(e));
        if !wanted {
            return self.remove_from(fed, &member, existing.as_deref()).await;
        }
        if let Some(ev) = &existing_value {
            if is_explicitly_unmanaged(ev) {
                return ClusterResult::report(&c.name, "ManagedLabelFalse", Next::Done);
            }
            let managed = ev["metadata"]["labels"][MANAGED_LABEL].as_str() == Some("true");
            if !managed && !adopt {
                return ClusterResult::report(&c.name, "AlreadyExists", Next::Done);
            }
        }
        let applied =
            match applied_object(fed_value, &self.target, &overrides, existing_value.as_ref()) {
                Ok(d) => d.object,
                Err(e) => {
                    return ClusterResult {
                        status: Some(ClusterStatus::with_message(
                            &c.name,
                            e.reason(),
                            &e.to_string(),
                        )),
                        next: Next::Done,
                    };
                }
            };
        let (op, event, failed) = match &existing_value {
            None => ("create", "CreateInClusterFailed", "CreationFailed"),
            Some(_) => ("update", "UpdateInClusterFailed", "UpdateFailed"),
        };
        if existing_value
            .as_ref()
            .is_none_or(|ev| needs_apply(&applied, ev))
        {
            // Server-side apply, forced: the fields the federated object sets are ours;
            // everything else in the member object is left to whoever set it.
            let pp = PatchParams::apply(SYNC_FIELD_MANAGER).force();
            match self
                .member_api(&member, &ns)
                .patch(&name, &pp, &Patch::Apply(&applied))
                .await
            {
                Ok(_) => {
                    self.count(&c.name, op, true);
                    info!(cluster = %c.name, namespace = %ns, name = %name, "target {op}d");
                }
                Err(e) => {
                    self.count(&c.name, op, false);
                    let msg = api_message(&e);
                    warn!(cluster = %c.name, namespace = %ns, name = %name, error = %msg, "applying the target ({op})");
                    let verb = if op == "create" {
                        "creating"
                    } else {
                        "updating"
                    };
                    self.event(
                        fed,
                        EventType::Warning,
                        event,
                        format!("{verb} in cluster {}: {msg}", c.name),
                    )
                    .await;
                    return ClusterResult::failed(&c.name, failed, &msg);
                }
            }
        }
        let mut ok = ClusterResult::report(&c.name, "OK", Next::Done);
        if self.collect_status
            && let (Some(ev), Some(st)) = (&existing_value, ok.status.as_mut())
        {
            // What the member last reported; its next change is a member event, which
            // brings the next reconcile.
            st.remote_status = ev.get("status").filter(|s| !s.is_null()).cloned();
        }
        ok
    }

    /// A member object as JSON, with the `apiVersion` and `kind` that objects from a list
    /// response lack (the items of a List carry neither), so that comparing it with the
    /// desired object does not see a difference that is not there.
    fn member_value(&self, obj: &DynamicObject) -> Value {
        let mut v = serde_json::to_value(obj).expect("a member object serialises");
        if v.get("apiVersion").is_none_or(Value::is_null) {
            v["apiVersion"] = json!(super::desired::api_version(&self.target));
        }
        if v.get("kind").is_none_or(Value::is_null) {
            v["kind"] = json!(self.target.kind);
        }
        v
    }

    /// Removes the managed label from every Ready member's copy of a federated object that
    /// is known not to exist (KubeFed's hand-off: the copy counts as unmanaged again). A
    /// member that is not Ready, or a failed patch, is handled on that object's next event
    /// (a member's re-list announces every object again).
    async fn sweep_orphan(&self, ns: Option<&str>, name: &str) {
        if !self.index.clusters.is_ready() {
            return;
        }
        // The federated object of a Namespace `n` is `n/n`; its target has no namespace.
        let target_ns = if self.is_namespace_type() {
            String::new()
        } else {
            ns.unwrap_or_default().to_string()
        };
        for c in self.cluster_infos().into_iter().filter(|c| c.ready) {
            let Ok((member, Some(existing))) = self.member_object(&c.name, &target_ns, name) else {
                continue;
            };
            let managed = existing
                .labels()
                .get(MANAGED_LABEL)
                .is_some_and(|v| v == "true");
            if !managed || existing.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let api = self.member_api(&member, &target_ns);
            let patch = json!({"metadata": {"labels": {MANAGED_LABEL: null}}});
            match api
                .patch(name, &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                Ok(_) => {
                    self.count(&c.name, "unlabel", true);
                    info!(cluster = %c.name, namespace = %target_ns, name, "managed label removed from an object no federated object owns");
                }
                Err(e) => {
                    self.count(&c.name, "unlabel", false);
                    warn!(cluster = %c.name, namespace = %target_ns, name, error = %api_message(&e), "removing the managed label of an unowned object");
                }
            }
        }
    }

    /// Whether `member` may have a Namespace deleted: never the host's own.
    fn may_delete_namespace(&self, member: &Member) -> Option<bool> {
        if !self.is_namespace_type() {
            return Some(true);
        }
        member.is_host().map(|host| !host)
    }

    /// Takes the federated object's copy out of a cluster the placement excludes.
    async fn remove_from(
        &self,
        fed: &DynamicObject,
        member: &Member,
        existing: Option<&DynamicObject>,
    ) -> ClusterResult {
        let cluster = member.name.as_str();
        let Some(existing) = existing else {
            return ClusterResult::none();
        };
        let managed = existing
            .labels()
            .get(MANAGED_LABEL)
            .is_some_and(|v| v == "true");
        if !managed {
            return ClusterResult::none();
        }
        if existing.metadata.deletion_timestamp.is_some() {
            return ClusterResult::report(cluster, "WaitingForRemoval", Next::Done);
        }
        // Orphaning keeps the copy and hands it back: it is no longer managed.
        if is_orphaning(fed) {
            return self.unlabel(fed, member, existing).await;
        }
        match self.may_delete_namespace(member) {
            None => ClusterResult {
                status: Some(ClusterStatus::with_message(
                    cluster,
                    "WaitingForRemoval",
                    "waiting to learn whether this member is the host cluster",
                )),
                next: Next::Soon,
            },
            Some(false) => self.unlabel(fed, member, existing).await,
            Some(true) => self.delete(fed, member, existing).await,
        }
    }

    async fn delete(
        &self,
        fed: &DynamicObject,
        member: &Member,
        existing: &DynamicObject,
    ) -> ClusterResult {
        let cluster = member.name.as_str();
        let ns = existing.namespace().unwrap_or_default();
        let name = existing.name_any();
        match self
            .member_api(member, &ns)
            .delete(&name, &DeleteParams::background())
            .await
        {
            Ok(_) => {
                self.count(cluster, "delete", true);
                info!(cluster, namespace = %ns, name = %name, "target deleted");
                ClusterResult::report(cluster, "WaitingForRemoval", Next::Done)
            }
            Err(kube::Error::Api(s)) if s.code == 404 => ClusterResult::none(),
            Err(e) => {
                self.count(cluster, "delete", false);
                let msg = api_message(&e);
                warn!(cluster, namespace = %ns, name = %name, error = %msg, "deleting the target");
                self.event(
                    fed,
                    EventType::Warning,
                    "DeleteInClusterFailed",
                    format!("deleting in cluster {cluster}: {msg}"),
                )
                .await;
                ClusterResult::failed(cluster, "DeletionFailed", &msg)
            }
        }
    }

    /// Removes the managed label: the object stays in the member, unmanaged (the host's own
    /// namespace, an orphaned copy).
    async fn unlabel(
        &self,
        fed: &DynamicObject,
        member: &Member,
        existing: &DynamicObject,
    ) -> ClusterResult {
        let cluster = member.name.as_str();
        let ns = existing.namespace().unwrap_or_default();
        let name = existing.name_any();
        let patch = json!({"metadata": {"labels": {MANAGED_LABEL: null}}});
        match self
            .member_api(member, &ns)
            .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => {
                self.count(cluster, "unlabel", true);
                info!(cluster, namespace = %ns, name = %name, "managed label removed");
                ClusterResult::none()
            }
            Err(kube::Error::Api(s)) if s.code == 404 => ClusterResult::none(),
            Err(e) => {
                self.count(cluster, "unlabel", false);
                let msg = api_message(&e);
                self.event(
                    fed,
                    EventType::Warning,
                    "LabelRemovalFailed",
                    format!("removing the managed label in cluster {cluster}: {msg}"),
                )
                .await;
                ClusterResult::failed(cluster, "LabelRemovalFailed", &msg)
            }
        }
    }

    /// Deletion of the federated object: its copies go first, or with orphaning lose their
    /// managed label, then the finalizer.
    async fn ensure_deletion(
        &self,
        fed: &DynamicObject,
        clusters: &[ClusterInfo],
        finalizers: &[String],
    ) -> Result<Action, SyncError> {
        if !finalizers.iter().any(|f| f == FINALIZER) {
            return Ok(Action::await_change());
        }
        let ns = fed.namespace().unwrap_or_default();
        let name = fed.name_any();
        let orphan = is_orphaning(fed);
        {
            let (ns, name) = (&ns, &name);
            let results = futures::future::join_all(clusters.iter().map(|c| async move {
                if !c.ready {
                    if orphan {
                        // Its copy keeps the label until the member is back (the orphan
                        // sweep hands it back then).
                        return ClusterResult::none();
                    }
                    // Its copy cannot be seen or removed now; the finalizer waits for it.
                    return ClusterResult::report(&c.name, "ClusterNotReady", Next::Backoff);
                }
                match self.member_object(&c.name, ns, name) {
                    Err(r) => ClusterResult {
                        status: r
                            .status
                            .or_else(|| Some(ClusterStatus::new(&c.name, "WaitingForRemoval"))),
                        next: Next::Soon,
                    },
                    Ok((member, existing)) => {
                        let host_ns = self.may_delete_namespace(&member) == Some(false);
                        // The host's namespace being deleted is not ours to wait for.
                        if host_ns
                            && existing
                                .as_ref()
                                .is_some_and(|e| e.metadata.deletion_timestamp.is_some())
                        {
                            return ClusterResult::none();
                        }
                        let r = self.remove_from(fed, &member, existing.as_deref()).await;
                        if r.status.is_some() && r.next == Next::Done {
                            // Deleted (or being deleted): wait for it to be gone.
                            ClusterResult {
                                status: r.status,
                                next: Next::Backoff,
                            }
                        } else {
                            r
                        }
                    }
                }
            }))
            .await;
            let remaining: Vec<ClusterStatus> =
                results.into_iter().filter_map(|r| r.status).collect();
            if !remaining.is_empty() {
                let status = PropagationStatus {
                    reason: None,
                    clusters: remaining.clone(),
                };
                let fed_value = serde_json::to_value(fed).expect("a federated object serialises");
                self.write_status(fed, &fed_value, &status).await?;
                let names: Vec<&str> = remaining.iter().map(|c| c.name.as_str()).collect();
                return Err(SyncError::Removal(names.join(", ")));
            }
        }
        let left: Vec<&String> = finalizers.iter().filter(|f| *f != FINALIZER).collect();
        let patch =
            json!({"metadata": {"finalizers": left, "resourceVersion": fed.resource_version()}});
        self.fed_api(&ns)
            .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map_err(|source| SyncError::Host {
                what: "finalizers",
                source,
            })?;
        info!(namespace = %ns, name = %name, orphan, "federated object deleted");
        Ok(Action::await_change())
    }
}

/// `kubefed.io/orphan: "true"`: the copies are kept (unmanaged) rather than deleted.
fn is_orphaning(fed: &DynamicObject) -> bool {
    fed.annotations()
        .get(ORPHAN_ANNOTATION)
        .is_some_and(|v| v == "true")
}

/// The member API's own words for a failed request.
fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({})", s.message, s.code),
        other => other.to_string(),
    }
}
