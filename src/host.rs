//! The host index: one watch and one store per host resource, shared by every controller,
//! the member registry, the skydns writer and the embedded DNS feed. Nothing else in the
//! controller-manager watches the host.
//!
//! It runs on every replica from start-up, leader or not: the embedded DNS server answers
//! from it on a standby too, and a standby that takes over starts with warm stores.
//! Federated types are known only at run time, so their stores start on demand
//! ([`HostIndex::federated`]) and stop when their FederatedTypeConfig goes away; every
//! change of any of them is also announced on one channel ([`HostIndex::federated_changes`])
//! for controllers that follow several types (replica scheduling).
//!
//! Readers must check [`Shared::is_ready`] (or wait for it) before they take an absent
//! object as absent: a store that has not listed yet knows nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::api::core::{FederatedTypeConfig, KubeFedCluster, KubeFedConfig};
use crate::api::multiclusterdns::{DNSEndpoint, Domain, IngressDNSRecord, ServiceDNSRecord};
use crate::api::scheduling::ReplicaSchedulingPreference;
use crate::kube::watch::{Change, Shared};

/// Name of the KubeFedConfig the controller manager reads, as in KubeFed.
pub const KUBEFED_CONFIG_NAME: &str = "kubefed";

/// A change of a federated object of any type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FederatedChange {
    Object {
        kind: String,
        namespace: Option<String>,
        name: String,
    },
    /// One type's store re-listed (or a subscriber fell behind): anything may have changed.
    Relisted,
}

pub struct HostIndex {
    pub namespace: String,
    pub clusters: Shared<KubeFedCluster>,
    pub secrets: Shared<Secret>,
    pub configs: Shared<KubeFedConfig>,
    pub type_configs: Shared<FederatedTypeConfig>,
    pub domains: Shared<Domain>,
    pub service_records: Shared<ServiceDNSRecord>,
    pub ingress_records: Shared<IngressDNSRecord>,
    pub endpoints: Shared<DNSEndpoint>,
    pub rsps: Shared<ReplicaSchedulingPreference>,
    client: kube::Client,
    federated: Mutex<HashMap<String, Shared<DynamicObject>>>,
    federated_tx: broadcast::Sender<FederatedChange>,
    cancel: CancellationToken,
}

fn type_key(ar: &ApiResource) -> String {
    format!("{}/{}/{}", ar.group, ar.version, ar.plural)
}

impl HostIndex {
    /// Starts every host watch with `client` (a client without a short read timeout:
    /// watches are long polls) until `cancel`.
    pub fn start(client: kube::Client, namespace: &str, cancel: CancellationToken) -> Arc<Self> {
        let cfg = watcher::Config::default;
        Arc::new(HostIndex {
            namespace: namespace.to_string(),
            clusters: Shared::start(
                Api::namespaced(client.clone(), namespace),
                cfg(),
                cancel.clone(),
            ),
            secrets: Shared::start(
                Api::namespaced(client.clone(), namespace),
                cfg(),
                cancel.clone(),
            ),
            configs: Shared::start(
                Api::namespaced(client.clone(), namespace),
                cfg(),
                cancel.clone(),
            ),
            type_configs: Shared::start(
                Api::namespaced(client.clone(), namespace),
                cfg(),
                cancel.clone(),
            ),
            domains: Shared::start(
                Api::namespaced(client.clone(), namespace),
                cfg(),
                cancel.clone(),
            ),
            service_records: Shared::start(Api::all(client.clone()), cfg(), cancel.clone()),
            ingress_records: Shared::start(Api::all(client.clone()), cfg(), cancel.clone()),
            endpoints: Shared::start(Api::all(client.clone()), cfg(), cancel.clone()),
            rsps: Shared::start(Api::all(client.clone()), cfg(), cancel.clone()),
            federated: Mutex::new(HashMap::new()),
            federated_tx: broadcast::channel(1024).0,
            client,
            cancel,
        })
    }

    /// The client the index watches with (no short read timeout), for the few watches
    /// that are not shared (the ExternalDNS CRD, the Lease).
    pub fn watch_client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The KubeFedConfig named `kubefed`: `None` while its store has not listed,
    /// `Some(None)` when it is known not to exist.
    pub fn kubefed_config(&self) -> Option<Option<Arc<KubeFedConfig>>> {
        if !self.configs.is_ready() {
            return None;
        }
        Some(
            self.configs
                .store()
                .get(&ObjectRef::new(KUBEFED_CONFIG_NAME).within(&self.namespace)),
        )
    }

    /// Joined clusters whose health the prober has not reported yet (no `Ready`
    /// condition): just joined, or the first probe of a fresh control plane is under way.
    /// Controllers wait briefly for them rather than publish a state that the first
    /// probe is about to change (which would cost every record a second write).
    pub fn clusters_of_unknown_health(&self) -> Vec<String> {
        self.clusters
            .store()
            .state()
            .iter()
            .filter(|c| {
                c.status.as_ref().is_none_or(|s| {
                    !s.conditions
                        .iter()
                        .any(|c| c.type_ == crate::api::core::cluster_condition::READY)
                })
            })
            .map(|c| c.metadata.name.clone().unwrap_or_default())
            .collect()
    }

    /// The shared store of a federated type, started on first use.
    pub fn federated(&self, ar: &ApiResource) -> Shared<DynamicObject> {
        let key = type_key(ar);
        let mut all = self.federated.lock().unwrap();
        if let Some(s) = all.get(&key) {
            return s.clone();
        }
        let shared = Shared::start_with(
            Api::<DynamicObject>::all_with(self.client.clone(), ar),
            watcher::Config::default(),
            ar.clone(),
            self.cancel.child_token(),
        );
        let tx = self.federated_tx.clone();
        let kind = ar.kind.clone();
        let mut changes = Box::pin(shared.subscribe());
        tokio::spawn(async move {
            while let Some(c) = changes.next().await {
                let msg = match c {
                    Change::Applied(o) | Change::Deleted(o) => FederatedChange::Object {
                        kind: kind.clone(),
                        namespace: o.metadata.namespace.clone(),
                        name: o.metadata.name.clone().unwrap_or_default(),
                    },
                    Change::Relisted => FederatedChange::Relisted,
                };
                let _ = tx.send(msg);
            }
        });
        all.insert(key, shared.clone());
        shared
    }

    /// Stops the store of a federated type that is no longer enabled.
    pub fn stop_federated(&self, ar: &ApiResource) {
        if let Some(s) = self.federated.lock().unwrap().remove(&type_key(ar)) {
            s.stop();
        }
    }

    /// Changes of every federated type's objects; falling behind yields `Relisted`.
    pub fn federated_changes(&self) -> impl Stream<Item = FederatedChange> + Send + 'static {
        futures::stream::unfold(self.federated_tx.subscribe(), |mut rx| async move {
            match rx.recv().await {
                Ok(c) => Some((c, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    Some((FederatedChange::Relisted, rx))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        })
    }

    /// Resolves once every host store of a fixed kind has listed.
    pub async fn ready(&self) {
        self.clusters.ready().await;
        self.secrets.ready().await;
        self.configs.ready().await;
        self.type_configs.ready().await;
        self.domains.ready().await;
        self.service_records.ready().await;
        self.ingress_records.ready().await;
        self.endpoints.ready().await;
        self.rsps.ready().await;
    }
}
