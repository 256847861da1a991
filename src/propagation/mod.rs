//! Propagation: the FederatedTypeConfig controller starts one sync loop per enabled type;
//! each sync loop makes the member clusters' target objects match their `Federated<Kind>`
//! object, using the pure rules of `sync` (placement, overrides, retention, desired
//! object) and reporting seed 004's `Propagation` condition and per-cluster statuses.
//!
//! Inputs are watches only: the federated objects (host), the target objects in every
//! member (the registry's shared dynamic stores) and the KubeFedClusters. A reconcile
//! reads memory, writes a member object only when it differs from the desired one, and
//! writes the federated status only when it changes. Deleting a federated object removes
//! its managed targets first (finalizer `kubefed.io/sync-controller`) unless the
//! annotation `kubefed.io/orphan: "true"` asks to keep them.

mod scheduling;
mod status;

pub use scheduling::run as run_replica_scheduling;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use kube::ResourceExt;
use kube::api::{
    Api, ApiResource as KubeApiResource, DeleteParams, DynamicObject, Patch, PatchParams,
    PostParams,
};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::api::core::{
    ApiResource, ControllerStatus, FederatedTypeConfig, KubeFedCluster, KubeFedConfig,
    PropagationMode, ResourceAdoption, ResourceScope,
};
use crate::cluster::registry::{ClusterRegistry, RegistryEvent, watch_into};
use crate::sync::desired::{MANAGED_LABEL, desired_object, is_explicitly_unmanaged};
use crate::sync::overrides::overrides_by_cluster;
use crate::sync::placement::{ClusterInfo, namespaced_selected_clusters, selected_clusters};
use status::{ClusterStatus, PropagationStatus};

pub const FINALIZER: &str = "kubefed.io/sync-controller";
pub const ORPHAN_ANNOTATION: &str = "kubefed.io/orphan";

fn kube_ar(r: &ApiResource) -> KubeApiResource {
    r.to_dynamic()
}

/// Runs the FederatedTypeConfig controller until `cancel`.
pub async fn run(
    host: kube::Client,
    registry: Arc<ClusterRegistry>,
    namespace: String,
    cancel: CancellationToken,
) {
    let (ftcs, w) = reflector::store::<FederatedTypeConfig>();
    let notify = Arc::new(Notify::new());
    let n = notify.clone();
    tokio::spawn(watch_into(
        Api::<FederatedTypeConfig>::namespaced(host.clone(), &namespace),
        w,
        cancel.clone(),
        move |_| {
            n.notify_one();
        },
    ));
    let (clusters, cw) = reflector::store::<KubeFedCluster>();
    // Every change of a KubeFedCluster (readiness, labels) re-syncs every type.
    let (cluster_gen, _) = tokio::sync::watch::channel(0u64);
    let cg = cluster_gen.clone();
    tokio::spawn(watch_into(
        Api::<KubeFedCluster>::namespaced(host.clone(), &namespace),
        cw,
        cancel.clone(),
        move |_| {
            cg.send_modify(|g| *g += 1);
        },
    ));
    tokio::select! { _ = cancel.cancelled() => return, _ = ftcs.wait_until_ready() => {} }
    tokio::select! { _ = cancel.cancelled() => return, _ = clusters.wait_until_ready() => {} }
    let adopt = match Api::<KubeFedConfig>::namespaced(host.clone(), &namespace)
        .get_opt("kubefed")
        .await
    {
        Ok(Some(c)) => {
            c.spec.sync_controller.and_then(|s| s.adopt_resources)
                != Some(ResourceAdoption::Disabled)
        }
        _ => true,
    };

    // Running sync loops by FTC name, with the spec they run.
    let mut running: BTreeMap<String, (FederatedTypeConfig, CancellationToken)> = BTreeMap::new();
    loop {
        let mut wanted = BTreeMap::new();
        for f in ftcs.state() {
            if f.spec.propagation == PropagationMode::Enabled
                && f.metadata.deletion_timestamp.is_none()
            {
                wanted.insert(f.name_any(), (*f).clone());
            }
        }
        running.retain(|name, (spec, token)| {
            let keep = wanted.get(name).is_some_and(|w| w.spec == spec.spec);
            if !keep {
                token.cancel();
                info!(ftc = %name, "sync controller stopped");
            }
            keep
        });
        for (name, ftc) in wanted {
            if running.contains_key(&name) {
                continue;
            }
            let token = cancel.child_token();
            let ctx = Arc::new(SyncCtx {
                host: host.clone(),
                registry: registry.clone(),
                cluster_changes: cluster_gen.subscribe(),
                target: ftc.spec.target_type.clone(),
                federated: ftc.spec.federated_type.clone(),
                clusters: clusters.clone(),
                adopt,
                queue: Default::default(),
            });
            let span = info_span!("sync", kind = %ftc.spec.federated_type.kind);
            tokio::spawn(ctx.run(token.clone()).instrument(span));
            info!(ftc = %name, "sync controller started");
            running.insert(name, (ftc, token));
        }
        for f in ftcs.state() {
            let st = if running.contains_key(&f.name_any()) {
                ControllerStatus::Running
            } else {
                ControllerStatus::NotRunning
            };
            let current = f.status.as_ref();
            let generation = f.metadata.generation.unwrap_or(0);
            if current.map(|s| (s.propagation_controller, s.observed_generation))
                != Some((st, generation))
            {
                let patch = json!({"status": {"observedGeneration": generation, "propagationController": st}});
                let api: Api<FederatedTypeConfig> = Api::namespaced(host.clone(), &namespace);
                if let Err(e) = api
                    .patch_status(&f.name_any(), &PatchParams::default(), &Patch::Merge(patch))
                    .await
                {
                    warn!(error = %e, "writing FederatedTypeConfig status");
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = notify.notified() => {}
        }
    }
    for (_, (_, t)) in running {
        t.cancel();
    }
}

struct SyncCtx {
    host: kube::Client,
    registry: Arc<ClusterRegistry>,
    cluster_changes: tokio::sync::watch::Receiver<u64>,
    target: ApiResource,
    federated: ApiResource,
    clusters: Store<KubeFedCluster>,
    adopt: bool,
    queue: Queue,
}

#[derive(Default)]
struct Queue {
    pending: std::sync::Mutex<BTreeSet<(String, String)>>,
    notify: Notify,
}

impl Queue {
    fn add(&self, ns: String, name: String) {
        if self.pending.lock().unwrap().insert((ns, name)) {
            self.notify.notify_one();
        }
    }
}

enum Outcome {
    Done,
    Requeue(Duration),
}

impl SyncCtx {
    fn target_ar(&self) -> KubeApiResource {
        kube_ar(&self.target)
    }

    fn fed_api(&self, ns: &str) -> Api<DynamicObject> {
        let ar = kube_ar(&self.federated);
        match self.federated.scope {
            ResourceScope::Namespaced => Api::namespaced_with(self.host.clone(), ns, &ar),
            ResourceScope::Cluster => Api::all_with(self.host.clone(), &ar),
        }
    }

    fn member_api(&self, client: kube::Client, ns: &str) -> Api<DynamicObject> {
        let ar = self.target_ar();
        match self.target.scope {
            ResourceScope::Namespaced => Api::namespaced_with(client, ns, &ar),
            ResourceScope::Cluster => Api::all_with(client, &ar),
        }
    }

    fn is_namespace_type(&self) -> bool {
        self.target.group.is_empty() && self.target.kind == "Namespace"
    }

    /// The queue key of a member object: the federated object's namespace and name.
    fn key_of_target(&self, ns: Option<String>, name: String) -> (String, String) {
        if self.is_namespace_type() {
            (name.clone(), name)
        } else {
            (ns.unwrap_or_default(), name)
        }
    }

    async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let ar = kube_ar(&self.federated);
        let writer = reflector::store::Writer::<DynamicObject>::new(ar.clone());
        let feds = writer.as_reader();
        let this = self.clone();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            let api: Api<DynamicObject> = Api::all_with(this.host.clone(), &ar);
            let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
            let mut stream = std::pin::pin!(reflector::reflector(writer, stream));
            loop {
                let next = tokio::select! { _ = c2.cancelled() => return, n = stream.next() => n };
                match next {
                    Some(Ok(
                        watcher::Event::Apply(o)
                        | watcher::Event::Delete(o)
                        | watcher::Event::InitApply(o),
                    )) => {
                        this.queue
                            .add(o.namespace().unwrap_or_default(), o.name_any());
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => warn!(error = %e, "watching federated objects"),
                    None => return,
                }
            }
        });
        tokio::select! { _ = cancel.cancelled() => return, _ = feds.wait_until_ready() => {} }

        let mut events = self.registry.subscribe();
        for m in self.registry.members() {
            let _ = self.registry.dyn_store(&m.name, &self.target_ar());
        }
        let enqueue_all = |feds: &Store<DynamicObject>| {
            for f in feds.state() {
                self.queue
                    .add(f.namespace().unwrap_or_default(), f.name_any());
            }
        };
        enqueue_all(&feds);
        let mut cluster_changes = self.cluster_changes.clone();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.queue.notify.notified() => {}
                changed = cluster_changes.changed() => {
                    if changed.is_err() { return }
                    enqueue_all(&feds);
                }
                e = events.recv() => match e {
                    Ok(RegistryEvent::Object { kind, namespace, name, .. }) if kind == self.target.kind => {
                        let (ns, n) = self.key_of_target(namespace, name);
                        self.queue.add(ns, n);
                    }
                    Ok(RegistryEvent::Connected(name)) => {
                        let _ = self.registry.dyn_store(&name, &self.target_ar());
                        enqueue_all(&feds);
                    }
                    Ok(RegistryEvent::Removed(_)) | Ok(RegistryEvent::Readiness { .. }) => enqueue_all(&feds),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => enqueue_all(&feds),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    Ok(_) => {}
                },
            }
            let keys: Vec<(String, String)> =
                std::mem::take(&mut *self.queue.pending.lock().unwrap())
                    .into_iter()
                    .collect();
            for (ns, name) in keys {
                let Some(fed) =
                    feds.get(&ObjectRef::new_with(&name, kube_ar(&self.federated)).within(&ns))
                else {
                    continue;
                };
                match self.reconcile(&fed).await {
                    Ok(Outcome::Done) => {}
                    Ok(Outcome::Requeue(d)) => self.requeue(ns, name, d),
                    Err(e) => {
                        warn!(namespace = %ns, name = %name, error = %e, "sync failed; retrying");
                        self.requeue(ns, name, Duration::from_secs(2));
                    }
                }
            }
        }
    }

    fn requeue(self: &Arc<Self>, ns: String, name: String, d: Duration) {
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            this.queue.add(ns, name);
        });
    }

    fn cluster_infos(&self) -> Vec<ClusterInfo> {
        let mut v: Vec<ClusterInfo> = self
            .clusters
            .state()
            .iter()
            .map(|c| ClusterInfo::from_cluster(c))
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// The member's object, or `Err` while its store has not listed yet.
    fn member_object(
        &self,
        cluster: &str,
        ns: &str,
        name: &str,
    ) -> Result<Option<Arc<DynamicObject>>, ()> {
        let store = self
            .registry
            .dyn_store(cluster, &self.target_ar())
            .ok_or(())?;
        if store.wait_until_ready().now_or_never().is_none() {
            return Err(());
        }
        let r = ObjectRef::new_with(name, self.target_ar());
        let r = if self.target.scope == ResourceScope::Namespaced {
            r.within(ns)
        } else {
            r
        };
        Ok(store.get(&r))
    }

    async fn reconcile(&self, fed: &DynamicObject) -> anyhow::Result<Outcome> {
        let ns = fed.namespace().unwrap_or_default();
        let name = fed.name_any();
        let fed_value = serde_json::to_value(fed)?;
        let clusters = self.cluster_infos();
        let finalizers = fed.metadata.finalizers.clone().unwrap_or_default();

        if fed.metadata.deletion_timestamp.is_some() {
            if !finalizers.iter().any(|f| f == FINALIZER) {
                return Ok(Outcome::Done);
            }
            let orphan = fed
                .annotations()
                .get(ORPHAN_ANNOTATION)
                .is_some_and(|v| v == "true");
            let mut remaining = false;
            if !orphan {
                for c in &clusters {
                    remaining |= self.remove_from(&c.name, &ns, &name).await?;
                }
            }
            if remaining {
                return Ok(Outcome::Requeue(Duration::from_secs(1)));
            }
            let left: Vec<String> = finalizers.into_iter().filter(|f| f != FINALIZER).collect();
            let patch = json!({"metadata": {"finalizers": left, "resourceVersion": fed.resource_version()}});
            self.fed_api(&ns)
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await?;
            info!(namespace = %ns, name = %name, orphan, "federated object deleted");
            return Ok(Outcome::Done);
        }
        if !finalizers.iter().any(|f| f == FINALIZER) {
            let mut f = finalizers.clone();
            f.push(FINALIZER.into());
            let patch =
                json!({"metadata": {"finalizers": f, "resourceVersion": fed.resource_version()}});
            self.fed_api(&ns)
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await?;
            // The update comes back through the watch.
            return Ok(Outcome::Done);
        }

        let placement = fed_value["spec"].get("placement");
        let mut status = PropagationStatus::default();
        let selection =
            if self.target.scope == ResourceScope::Namespaced && !self.is_namespace_type() {
                match self.federated_namespace_placement(&ns).await {
                    None => {
                        status.reason = Some("NamespaceNotFederated".into());
                        Ok(BTreeSet::new())
                    }
                    Some(p) => {
                        namespaced_selected_clusters(placement, Some(p.as_ref()), &clusters, false)
                    }
                }
            } else {
                selected_clusters(placement, &clusters)
            };
        let selected = selection.unwrap_or_else(|e| {
            warn!(error = %e, "bad placement");
            status.reason = Some("ComputePlacementFailed".into());
            BTreeSet::new()
        });
        let overrides = match overrides_by_cluster(fed_value["spec"].get("overrides")) {
            Ok(o) => o,
            Err(e) => {
                status.reason = Some("ComputePlacementFailed".into());
                warn!(error = %e, "bad overrides");
                Default::default()
            }
        };

        let mut requeue = false;
        let mut unsynced = false;
        for c in &clusters {
            let wanted = selected.contains(&c.name);
            if !wanted {
                if self.remove_from(&c.name, &ns, &name).await? {
                    status
                        .clusters
                        .push(ClusterStatus::new(&c.name, "WaitingForRemoval"));
                    requeue = true;
                }
                continue;
            }
            if !c.ready {
                status
                    .clusters
                    .push(ClusterStatus::new(&c.name, "ClusterNotReady"));
                continue;
            }
            let Some(member) = self.registry.member(&c.name) else {
                status
                    .clusters
                    .push(ClusterStatus::new(&c.name, "ClientRetrievalFailed"));
                continue;
            };
            let existing = match self.member_object(&c.name, &ns, &name) {
                Ok(e) => e,
                Err(()) => {
                    // Not listed yet (e.g. just after a restart): come back rather than
                    // report a transient state.
                    unsynced = true;
                    continue;
                }
            };
            let existing_value = existing
                .as_ref()
                .map(|e| serde_json::to_value(&**e))
                .transpose()?;
            if let Some(ev) = &existing_value {
                if is_explicitly_unmanaged(ev) {
                    status
                        .clusters
                        .push(ClusterStatus::new(&c.name, "ManagedLabelFalse"));
                    continue;
                }
                let managed = ev["metadata"]["labels"][MANAGED_LABEL].as_str() == Some("true");
                if !managed && !self.adopt {
                    status
                        .clusters
                        .push(ClusterStatus::new(&c.name, "AlreadyExists"));
                    continue;
                }
            }
            let cluster_overrides = overrides.get(&c.name).cloned().unwrap_or_default();
            let desired = match desired_object(
                &fed_value,
                &self.target,
                &cluster_overrides,
                existing_value.as_ref(),
            ) {
                Ok(d) => d.object,
                Err(e) => {
                    status
                        .clusters
                        .push(ClusterStatus::new(&c.name, e.reason()));
                    continue;
                }
            };
            let api = self.member_api(member.client.clone(), &ns);
            match &existing_value {
                None => {
                    let obj: DynamicObject = serde_json::from_value(desired)?;
                    if let Err(e) = api.create(&PostParams::default(), &obj).await {
                        warn!(cluster = %c.name, error = %e, "creating the target");
                        status
                            .clusters
                            .push(ClusterStatus::new(&c.name, "CreationFailed"));
                        requeue = true;
                        continue;
                    }
                    info!(cluster = %c.name, namespace = %ns, name = %name, "target created");
                }
                Some(ev) if !status::is_subset(&desired, ev) => {
                    let obj: DynamicObject = serde_json::from_value(desired)?;
                    if let Err(e) = api.replace(&name, &PostParams::default(), &obj).await {
                        warn!(cluster = %c.name, error = %e, "updating the target");
                        status
                            .clusters
                            .push(ClusterStatus::new(&c.name, "UpdateFailed"));
                        requeue = true;
                        continue;
                    }
                    info!(cluster = %c.name, namespace = %ns, name = %name, "target updated");
                }
                Some(_) => {}
            }
            status.clusters.push(ClusterStatus::new(&c.name, "OK"));
        }
        if unsynced {
            return Ok(Outcome::Requeue(Duration::from_millis(500)));
        }
        let new_status = status.to_value(fed_value.get("status"), fed.metadata.generation);
        if fed_value.get("status") != Some(&new_status) {
            self.fed_api(&ns)
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": new_status})),
                )
                .await?;
        }
        Ok(if requeue {
            Outcome::Requeue(Duration::from_secs(1))
        } else {
            Outcome::Done
        })
    }

    /// The FederatedNamespace of `ns` (its placement), if it exists.
    async fn federated_namespace_placement(&self, ns: &str) -> Option<Option<Value>> {
        let ar = KubeApiResource {
            group: self.federated.group.clone(),
            version: self.federated.version.clone(),
            api_version: format!("{}/{}", self.federated.group, self.federated.version),
            kind: "FederatedNamespace".into(),
            plural: "federatednamespaces".into(),
        };
        let api: Api<DynamicObject> = Api::namespaced_with(self.host.clone(), ns, &ar);
        match api.get_opt(ns).await {
            Ok(Some(o)) => Some(o.data.get("spec").and_then(|s| s.get("placement")).cloned()),
            _ => None,
        }
    }

    /// Deletes the managed target in `cluster`; true while it still exists.
    async fn remove_from(&self, cluster: &str, ns: &str, name: &str) -> anyhow::Result<bool> {
        let Some(member) = self.registry.member(cluster) else {
            return Ok(false);
        };
        let Ok(Some(existing)) = self.member_object(cluster, ns, name) else {
            return Ok(false);
        };
        let managed = existing
            .labels()
            .get(MANAGED_LABEL)
            .is_some_and(|v| v == "true");
        if !managed {
            return Ok(false);
        }
        if existing.metadata.deletion_timestamp.is_none() {
            let api = self.member_api(member.client.clone(), ns);
            match api.delete(name, &DeleteParams::background()).await {
                Ok(_) => info!(cluster, namespace = ns, name, "target deleted"),
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }
}
