//! The member-cluster registry: one client per joined cluster, built from its
//! KubeFedCluster and Secret and rebuilt when either changes, plus shared watches and
//! stores per (cluster, resource) that every controller reads.
//!
//! Events (`RegistryEvent`) tell controllers when a cluster connects, goes away, changes
//! readiness or when an object in a member store changes, so they react by watch rather
//! than by polling. Each member's watches run under the member's cancellation token: an
//! unjoin or a changed Secret stops them; an unreachable member only backs off its own
//! watches and never blocks the others or the host.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, reflector::store::Writer};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use super::client::{member_client, secret_token};
use crate::api::core::KubeFedCluster;

/// A joined cluster as the controllers use it.
pub struct Member {
    pub name: String,
    /// For watches and writes (no read timeout: watches are long polls).
    pub client: kube::Client,
    /// For health probes: every request bounded by the probe timeout.
    pub probe_client: kube::Client,
    /// Cancelled when the cluster is unjoined or its connection details change.
    pub cancel: CancellationToken,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistryEvent {
    /// A cluster was added or its connection changed (new clients, watches restarted).
    Connected(String),
    /// A cluster was unjoined.
    Removed(String),
    /// The health controller changed its view of a cluster.
    Readiness { cluster: String, ready: bool },
    /// An object in a shared member store was applied or deleted.
    Object {
        cluster: String,
        kind: String,
        namespace: Option<String>,
        name: String,
    },
}

struct Entry {
    member: Arc<Member>,
    key: u64,
    stores: HashMap<String, Box<dyn Any + Send + Sync>>,
}

#[derive(Default)]
struct Inner {
    members: BTreeMap<String, Entry>,
    ready: BTreeMap<String, bool>,
}

pub struct ClusterRegistry {
    namespace: String,
    probe_timeout: Mutex<Duration>,
    inner: Mutex<Inner>,
    events: broadcast::Sender<RegistryEvent>,
}

impl ClusterRegistry {
    pub fn new(namespace: &str, probe_timeout: Duration) -> Arc<Self> {
        let (events, _) = broadcast::channel(4096);
        Arc::new(ClusterRegistry {
            namespace: namespace.to_string(),
            probe_timeout: Mutex::new(probe_timeout),
            inner: Mutex::new(Inner::default()),
            events,
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<RegistryEvent> {
        self.events.subscribe()
    }

    fn emit(&self, e: RegistryEvent) {
        // No receivers is fine: nobody is interested yet.
        let _ = self.events.send(e);
    }

    pub fn members(&self) -> Vec<Arc<Member>> {
        self.inner
            .lock()
            .unwrap()
            .members
            .values()
            .map(|e| e.member.clone())
            .collect()
    }

    pub fn member(&self, name: &str) -> Option<Arc<Member>> {
        self.inner
            .lock()
            .unwrap()
            .members
            .get(name)
            .map(|e| e.member.clone())
    }

    pub fn is_ready(&self, name: &str) -> bool {
        self.inner
            .lock()
            .unwrap()
            .ready
            .get(name)
            .copied()
            .unwrap_or(false)
    }

    /// Recorded by the health controller; emits `Readiness` when it changes.
    pub fn set_ready(&self, name: &str, ready: bool) {
        let changed = {
            let mut inner = self.inner.lock().unwrap();
            if !inner.members.contains_key(name) {
                return;
            }
            inner.ready.insert(name.to_string(), ready) != Some(ready)
        };
        if changed {
            self.emit(RegistryEvent::Readiness {
                cluster: name.to_string(),
                ready,
            });
        }
    }

    /// The shared store of `K` in `cluster`, started on first use. Objects are watched in
    /// every namespace; each change is announced as `RegistryEvent::Object`.
    pub fn store<K>(self: &Arc<Self>, cluster: &str) -> Option<Store<K>>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let kind = K::kind(&()).to_string();
        let mut inner = self.inner.lock().unwrap();
        let entry = inner.members.get_mut(cluster)?;
        if let Some(s) = entry.stores.get(&kind) {
            return s.downcast_ref::<Store<K>>().cloned();
        }
        let (reader, writer) = reflector::store::<K>();
        entry.stores.insert(kind.clone(), Box::new(reader.clone()));
        let member = entry.member.clone();
        let this = Arc::downgrade(self);
        let span = info_span!("member_watch", cluster = %cluster, kind = %kind);
        tokio::spawn(
            async move {
                let api: Api<K> = Api::all(member.client.clone());
                watch_into(api, writer, member.cancel.clone(), |e: &Event<K>| {
                    let Some(this) = this.upgrade() else { return };
                    let announce = |o: &K| {
                        this.emit(RegistryEvent::Object {
                            cluster: member.name.clone(),
                            kind: kind.clone(),
                            namespace: o.namespace(),
                            name: o.name_any(),
                        })
                    };
                    match e {
                        Event::Apply(o) | Event::Delete(o) | Event::InitApply(o) => announce(o),
                        Event::Init | Event::InitDone => {}
                    }
                })
                .await;
            }
            .instrument(span),
        );
        Some(reader)
    }

    /// The shared store of a type known only at run time (the sync engine's target
    /// types), started on first use; changes are announced like [`Self::store`]'s, with
    /// the kind of `ar`.
    pub fn dyn_store(
        self: &Arc<Self>,
        cluster: &str,
        ar: &ApiResource,
    ) -> Option<Store<DynamicObject>> {
        let key = format!("dyn:{}/{}/{}", ar.group, ar.version, ar.kind);
        let mut inner = self.inner.lock().unwrap();
        let entry = inner.members.get_mut(cluster)?;
        if let Some(s) = entry.stores.get(&key) {
            return s.downcast_ref::<Store<DynamicObject>>().cloned();
        }
        let writer = reflector::store::Writer::<DynamicObject>::new(ar.clone());
        let reader = writer.as_reader();
        entry.stores.insert(key, Box::new(reader.clone()));
        let member = entry.member.clone();
        let this = Arc::downgrade(self);
        let ar = ar.clone();
        let span = info_span!("member_watch", cluster = %cluster, kind = %ar.kind);
        tokio::spawn(
            async move {
                let api: Api<DynamicObject> = Api::all_with(member.client.clone(), &ar);
                let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
                let mut stream = std::pin::pin!(reflector::reflector(writer, stream));
                loop {
                    let next = tokio::select! {
                        _ = member.cancel.cancelled() => return,
                        n = stream.next() => n,
                    };
                    match next {
                        Some(Ok(Event::Apply(o) | Event::Delete(o) | Event::InitApply(o))) => {
                            let Some(this) = this.upgrade() else { return };
                            this.emit(RegistryEvent::Object {
                                cluster: member.name.clone(),
                                kind: ar.kind.clone(),
                                namespace: o.namespace(),
                                name: o.name_any(),
                            });
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => warn!(error = %e, "watch failed; retrying with backoff"),
                        None => return,
                    }
                }
            }
            .instrument(span),
        );
        Some(reader)
    }

    /// Follows the KubeFedClusters and their Secrets in the KubeFed namespace until
    /// `cancel`, keeping one `Member` per cluster.
    pub async fn run(self: Arc<Self>, host: kube::Client, cancel: CancellationToken) {
        let clusters_api: Api<KubeFedCluster> = Api::namespaced(host.clone(), &self.namespace);
        let secrets_api: Api<Secret> = Api::namespaced(host, &self.namespace);
        let (clusters, cw) = reflector::store::<KubeFedCluster>();
        let (secrets, sw) = reflector::store::<Secret>();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        let tx2 = tx.clone();
        tokio::spawn(watch_into(clusters_api, cw, cancel.clone(), move |_| {
            let _ = tx.try_send(());
        }));
        tokio::spawn(watch_into(secrets_api, sw, cancel.clone(), move |_| {
            let _ = tx2.try_send(());
        }));
        let _ = clusters.wait_until_ready().await;
        let _ = secrets.wait_until_ready().await;
        loop {
            self.sync(&clusters, &secrets).await;
            tokio::select! {
                _ = cancel.cancelled() => break,
                got = rx.recv() => if got.is_none() { break },
            }
        }
        let members = std::mem::take(&mut self.inner.lock().unwrap().members);
        for e in members.into_values() {
            e.member.cancel.cancel();
        }
    }

    async fn sync(&self, clusters: &Store<KubeFedCluster>, secrets: &Store<Secret>) {
        let timeout = *self.probe_timeout.lock().unwrap();
        let mut wanted = BTreeMap::new();
        for c in clusters.state() {
            let name = c.name_any();
            let secret =
                secrets.get(&ObjectRef::new(&c.spec.secret_ref.name).within(&self.namespace));
            let Some(secret) = secret else {
                warn!(cluster = %name, secret = %c.spec.secret_ref.name, "KubeFedCluster names a Secret that does not exist");
                continue;
            };
            wanted.insert(name, (c, secret));
        }
        let gone: Vec<String> = {
            let inner = self.inner.lock().unwrap();
            inner
                .members
                .keys()
                .filter(|n| !wanted.contains_key(*n))
                .cloned()
                .collect()
        };
        for name in gone {
            let removed = {
                let mut inner = self.inner.lock().unwrap();
                inner.ready.remove(&name);
                inner.members.remove(&name)
            };
            if let Some(e) = removed {
                e.member.cancel.cancel();
                info!(cluster = %name, "cluster removed");
                self.emit(RegistryEvent::Removed(name));
            }
        }
        for (name, (cluster, secret)) in wanted {
            let key = connection_key(&cluster, &secret);
            let current = self.inner.lock().unwrap().members.get(&name).map(|e| e.key);
            if current == Some(key) {
                continue;
            }
            let built = async {
                let client = member_client(&cluster, &secret, None).await?;
                let probe_client = member_client(&cluster, &secret, Some(timeout)).await?;
                Ok::<_, super::client::ClientError>((client, probe_client))
            }
            .await;
            match built {
                Ok((client, probe_client)) => {
                    let member = Arc::new(Member {
                        name: name.clone(),
                        client,
                        probe_client,
                        cancel: CancellationToken::new(),
                    });
                    let old = self.inner.lock().unwrap().members.insert(
                        name.clone(),
                        Entry {
                            member,
                            key,
                            stores: HashMap::new(),
                        },
                    );
                    if let Some(old) = old {
                        old.member.cancel.cancel();
                    }
                    info!(cluster = %name, "cluster connected");
                    self.emit(RegistryEvent::Connected(name));
                }
                Err(e) => {
                    warn!(cluster = %name, error = %e, "cannot build a client for the cluster")
                }
            }
        }
    }
}

/// Changes whenever anything that goes into the member's clients changes.
fn connection_key(cluster: &KubeFedCluster, secret: &Secret) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(&cluster.spec)
        .unwrap_or_default()
        .hash(&mut h);
    secret_token(secret).hash(&mut h);
    h.finish()
}

/// Runs a watcher into a reflector store until `cancel`, calling `on_event` for each
/// event. Errors back off (the watcher's default backoff) and are logged, never fatal.
pub async fn watch_into<K, F>(
    api: Api<K>,
    writer: Writer<K>,
    cancel: CancellationToken,
    mut on_event: F,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    F: FnMut(&Event<K>) + Send,
{
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(reflector::reflector(writer, stream));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            next = stream.next() => match next {
                Some(Ok(e)) => on_event(&e),
                Some(Err(e)) => warn!(error = %e, "watch failed; retrying with backoff"),
                None => return,
            }
        }
    }
}
