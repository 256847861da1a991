//! The ReplicaSchedulingPreference controller: spreads a FederatedDeployment's or
//! FederatedReplicaSet's replicas over the Ready clusters with `sync::scheduling`, and
//! writes the result into the federated object as placement and `/spec/replicas`
//! overrides (which replace any user override of that path), only when it changes.
//! Cluster readiness changes re-run every preference, so replicas move off a cluster
//! that goes offline and back when it returns.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::FutureExt;
use kube::ResourceExt;
use kube::api::{Api, ApiResource as KubeApiResource, DynamicObject, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use std::sync::Arc;

use super::kube_ar;
use crate::api::core::{FederatedTypeConfig, KubeFedCluster};
use crate::api::scheduling::ReplicaSchedulingPreference;
use crate::cluster::registry::{ClusterRegistry, watch_into};
use crate::sync::placement::{ClusterInfo, Placement};
use crate::sync::scheduling::{apply_schedule, replica_state, schedule};

pub async fn run(
    host: kube::Client,
    registry: Arc<ClusterRegistry>,
    namespace: String,
    cancel: CancellationToken,
) {
    let notify = Arc::new(Notify::new());
    let (rsps, w) = reflector::store::<ReplicaSchedulingPreference>();
    let n = notify.clone();
    tokio::spawn(watch_into(
        Api::<ReplicaSchedulingPreference>::all(host.clone()),
        w,
        cancel.clone(),
        move |_| n.notify_one(),
    ));
    let (clusters, w) = reflector::store::<KubeFedCluster>();
    let n = notify.clone();
    tokio::spawn(watch_into(
        Api::<KubeFedCluster>::namespaced(host.clone(), &namespace),
        w,
        cancel.clone(),
        move |_| n.notify_one(),
    ));
    let (ftcs, w) = reflector::store::<FederatedTypeConfig>();
    let n = notify.clone();
    tokio::spawn(watch_into(
        Api::<FederatedTypeConfig>::namespaced(host.clone(), &namespace),
        w,
        cancel.clone(),
        move |_| n.notify_one(),
    ));
    for ready in [
        rsps.wait_until_ready().boxed(),
        clusters.wait_until_ready().boxed(),
        ftcs.wait_until_ready().boxed(),
    ] {
        tokio::select! { _ = cancel.cancelled() => return, _ = ready => {} }
    }
    loop {
        let mut retry = false;
        for rsp in rsps.state() {
            if let Err(e) = reconcile(&host, &registry, &rsp, &clusters, &ftcs).await {
                warn!(namespace = ?rsp.namespace(), name = %rsp.name_any(), error = %e, "scheduling replicas; retrying");
                retry = true;
            }
        }
        let wait = if retry {
            Duration::from_secs(2)
        } else {
            Duration::from_secs(3600)
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = notify.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn reconcile(
    host: &kube::Client,
    registry: &Arc<ClusterRegistry>,
    rsp: &ReplicaSchedulingPreference,
    clusters: &Store<KubeFedCluster>,
    ftcs: &Store<FederatedTypeConfig>,
) -> anyhow::Result<()> {
    let ns = rsp.namespace().unwrap_or_default();
    let name = rsp.name_any();
    let Some(ftc) = ftcs
        .state()
        .into_iter()
        .find(|f| f.spec.federated_type.kind == rsp.spec.target_kind)
    else {
        return Ok(()); // the type is not enabled
    };
    let fed_ar: KubeApiResource = kube_ar(&ftc.spec.federated_type);
    let api: Api<DynamicObject> = Api::namespaced_with(host.clone(), &ns, &fed_ar);
    let Some(fed) = api.get_opt(&name).await? else {
        return Ok(());
    };
    let mut fed_value = serde_json::to_value(&fed)?;

    let mut infos: Vec<ClusterInfo> = clusters
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
    // What the members run now, so that rebalancing moves as little as possible.
    let target_ar = kube_ar(&ftc.spec.target_type);
    let now =
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now());
    let mut current = BTreeMap::new();
    for c in &ready {
        if let Some(store) = registry.dyn_store(c, &target_ar)
            && let Some(obj) = store.get(&ObjectRef::new_with(&name, target_ar.clone()).within(&ns))
        {
            current.insert(
                c.clone(),
                replica_state(&serde_json::to_value(&*obj)?, &[], &now).current,
            );
        }
    }
    let result = schedule(
        &rsp.spec,
        &ready,
        &current,
        &BTreeMap::new(),
        &format!("{ns}/{name}"),
    );
    if apply_schedule(&mut fed_value, &result)? {
        let obj: DynamicObject = serde_json::from_value(fed_value)?;
        api.replace(&name, &PostParams::default(), &obj).await?;
        info!(namespace = %ns, name = %name, schedule = ?result, "replicas scheduled");
    }
    Ok(())
}
