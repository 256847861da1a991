//! The member-cluster registry: one set of clients per joined cluster, built from its
//! KubeFedCluster and Secret (read from the host index) and rebuilt when either changes,
//! plus the shared watches and stores per (cluster, resource) that every controller reads.
//!
//! It is not a `kube::runtime::Controller`: it writes nothing to any API, and what it
//! keeps (a client per cluster) is a function of the whole set of clusters and secrets,
//! so each change re-derives that set; removal of a cluster is noticed by its absence,
//! which a per-object reconcile would never be called for.
//!
//! Events ([`RegistryEvent`]) tell controllers when a cluster connects, goes away, is
//! identified, or when an object in a member store changes or its store re-lists, so
//! they react by watch rather than by polling. Each member's watches run under the
//! member's cancellation token: an unjoin or a changed Secret stops them; an unreachable
//! member only backs off its own watches and never blocks the others or the host.
//!
//! Which stores exist is declared once ([`ClusterRegistry::watch_kind`],
//! [`ClusterRegistry::watch_dyn`]): every member, connected now or later, gets them.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, reflector::store::Writer};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use super::client::{ClientKind, member_client, secret_token};
use crate::api::core::KubeFedCluster;
use crate::host::HostIndex;
use crate::kube::BriefWatch;
use crate::kube::controller::Trigger;
use crate::kube::watch::backoff;

/// A joined cluster as the controllers use it.
pub struct Member {
    pub name: String,
    /// For watches (long polls: only a generous read timeout).
    pub client: kube::Client,
    /// For reads and writes: every request is bounded by `client::REQUEST_TIMEOUT`, so a
    /// hung member fails its operations instead of holding a reconcile.
    pub request_client: kube::Client,
    /// For health probes: every request bounded by the probe timeout.
    pub probe_client: kube::Client,
    /// Cancelled when the cluster is unjoined or its connection details change.
    pub cancel: CancellationToken,
    /// Whether this member is the host cluster itself (joined as a member), known once
    /// both `kube-system` namespace UIDs have been read.
    host: OnceLock<bool>,
}

impl Member {
    /// `Some(true)` when the member is the host, `None` until that is known. Code that
    /// must never delete the host's own objects treats `None` like `Some(true)`.
    pub fn is_host(&self) -> Option<bool> {
        self.host.get().copied()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistryEvent {
    /// A cluster was added or its connection changed (new clients, watches restarted).
    Connected(String),
    /// A cluster was unjoined.
    Removed(String),
    /// Whether the cluster is the host became known.
    Identified(String),
    /// An object in a shared member store was applied or deleted.
    Object {
        cluster: String,
        kind: String,
        namespace: Option<String>,
        name: String,
    },
    /// A member store (re-)listed: objects may have vanished without a delete event.
    Relisted { cluster: String, kind: String },
}

struct StoreEntry {
    store: Box<dyn Any + Send + Sync>,
    cancel: CancellationToken,
}

struct Entry {
    member: Arc<Member>,
    key: u64,
    stores: HashMap<String, StoreEntry>,
}

type Starter = Arc<dyn Fn(&Arc<ClusterRegistry>, &str) + Send + Sync>;

#[derive(Default)]
struct Inner {
    members: BTreeMap<String, Entry>,
    typed: Vec<(String, Starter)>,
    dynamic: BTreeMap<String, ApiResource>,
}

pub struct ClusterRegistry {
    namespace: String,
    probe_timeout: Mutex<Duration>,
    inner: Mutex<Inner>,
    events: broadcast::Sender<RegistryEvent>,
    /// The host's `kube-system` UID, read once.
    host_uid: tokio::sync::OnceCell<String>,
    /// Every member's EndpointSlices by Service, kept by the slice watch itself, so that
    /// a Service's endpoints are found without scanning every slice of the member.
    slices: Mutex<SliceIndex>,
}

/// cluster -> (namespace, Service) -> slice names; and each slice's Service.
#[derive(Default)]
struct SliceIndex {
    by_service: HashMap<String, HashMap<(String, String), std::collections::BTreeSet<String>>>,
    service_of: HashMap<(String, String, String), String>,
}

fn dyn_key(ar: &ApiResource) -> String {
    format!("dyn:{}/{}/{}", ar.group, ar.version, ar.kind)
}

impl ClusterRegistry {
    pub fn new(namespace: &str, probe_timeout: Duration) -> Arc<Self> {
        let (events, _) = broadcast::channel(4096);
        Arc::new(ClusterRegistry {
            namespace: namespace.to_string(),
            probe_timeout: Mutex::new(probe_timeout),
            inner: Mutex::new(Inner::default()),
            events,
            host_uid: tokio::sync::OnceCell::new(),
            slices: Mutex::new(SliceIndex::default()),
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<RegistryEvent> {
        self.events.subscribe()
    }

    /// Registry events mapped to a controller's triggers; falling behind re-reads all.
    pub fn triggers<K, F>(&self, map: F) -> BoxStream<'static, Trigger<K>>
    where
        K: Resource + 'static,
        K::DynamicType: Send,
        F: Fn(&RegistryEvent) -> Vec<Trigger<K>> + Send + 'static,
    {
        events(self.subscribe())
            .flat_map(move |e| {
                futures::stream::iter(match e {
                    Some(e) => map(&e),
                    None => vec![Trigger::All],
                })
            })
            .boxed()
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

    /// The names of the EndpointSlices of Service `ns/service` in `cluster` (look them up
    /// in its EndpointSlice store; a name may be of a slice deleted during a re-list).
    pub fn slices_of(&self, cluster: &str, ns: &str, service: &str) -> Vec<String> {
        self.slices
            .lock()
            .unwrap()
            .by_service
            .get(cluster)
            .and_then(|m| m.get(&(ns.to_string(), service.to_string())))
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Records what an EndpointSlice event says (`None`: deleted) before it is announced.
    fn index_slice(&self, cluster: &str, slice: &EndpointSlice, deleted: bool) {
        let ns = slice.namespace().unwrap_or_default();
        let name = slice.name_any();
        let key = (cluster.to_string(), ns.clone(), name.clone());
        let svc = (!deleted)
            .then(|| slice.labels().get("kubernetes.io/service-name").cloned())
            .flatten();
        let mut idx = self.slices.lock().unwrap();
        if let Some(old) = idx.service_of.remove(&key)
            && let Some(set) = idx
                .by_service
                .get_mut(cluster)
                .and_then(|m| m.get_mut(&(ns.clone(), old)))
        {
            set.remove(&name);
        }
        if let Some(svc) = svc {
            idx.by_service
                .entry(cluster.to_string())
                .or_default()
                .entry((ns, svc.clone()))
                .or_default()
                .insert(name);
            idx.service_of.insert(key, svc);
        }
    }

    /// After a re-list: drops slices that vanished while the watch was down.
    fn prune_slices(&self, cluster: &str, store: &Store<EndpointSlice>) {
        let mut idx = self.slices.lock().unwrap();
        let gone: Vec<(String, String, String)> = idx
            .service_of
            .keys()
            .filter(|(c, ns, name)| {
                c == cluster && store.get(&ObjectRef::new(name).within(ns)).is_none()
            })
            .cloned()
            .collect();
        for key in gone {
            if let Some(svc) = idx.service_of.remove(&key)
                && let Some(set) = idx
                    .by_service
                    .get_mut(cluster)
                    .and_then(|m| m.get_mut(&(key.1.clone(), svc)))
            {
                set.remove(&key.2);
            }
        }
    }

    /// Every member, connected now or later, keeps a store of `K` (all namespaces).
    pub fn watch_kind<K>(self: &Arc<Self>)
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        self.watch_kind_with::<K>(None)
    }

    /// [`Self::watch_kind`] with a field selector (see [`Self::store_with`]).
    pub fn watch_kind_with<K>(self: &Arc<Self>, fields: Option<&'static str>)
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let kind = format!("{}?{}", K::kind(&()), fields.unwrap_or_default());
        let members: Vec<String> = {
            let mut inner = self.inner.lock().unwrap();
            if inner.typed.iter().any(|(k, _)| *k == kind) {
                return;
            }
            let start: Starter = Arc::new(move |r: &Arc<ClusterRegistry>, c: &str| {
                let _ = r.store_with::<K>(c, fields);
            });
            inner.typed.push((kind, start));
            inner.members.keys().cloned().collect()
        };
        for m in members {
            let _ = self.store_with::<K>(&m, fields);
        }
    }

    /// Every member keeps a store of the run-time type `ar` until [`Self::unwatch_dyn`].
    pub fn watch_dyn(self: &Arc<Self>, ar: &ApiResource) {
        let members: Vec<String> = {
            let mut inner = self.inner.lock().unwrap();
            inner.dynamic.insert(dyn_key(ar), ar.clone());
            inner.members.keys().cloned().collect()
        };
        for m in members {
            let _ = self.dyn_store(&m, ar);
        }
    }

    /// Stops the stores of `ar` in every member.
    pub fn unwatch_dyn(&self, ar: &ApiResource) {
        let key = dyn_key(ar);
        let mut inner = self.inner.lock().unwrap();
        inner.dynamic.remove(&key);
        for e in inner.members.values_mut() {
            if let Some(s) = e.stores.remove(&key) {
                s.cancel.cancel();
            }
        }
    }

    /// The shared store of `K` in `cluster`, started on first use. Objects are watched in
    /// every namespace; each change is announced as `RegistryEvent::Object`.
    pub fn store<K>(self: &Arc<Self>, cluster: &str) -> Option<Store<K>>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        self.store_with::<K>(cluster, None)
    }

    /// [`Self::store`] of only the objects that match a field selector (the Pending pods
    /// replica scheduling reads). Its events carry the kind `<Kind>?<fields>`.
    pub fn store_with<K>(self: &Arc<Self>, cluster: &str, fields: Option<&str>) -> Option<Store<K>>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let kind = match fields {
            None => K::kind(&()).to_string(),
            Some(f) => format!("{}?{f}", K::kind(&())),
        };
        let mut inner = self.inner.lock().unwrap();
        let entry = inner.members.get_mut(cluster)?;
        if let Some(s) = entry.stores.get(&kind) {
            return s.store.downcast_ref::<Store<K>>().cloned();
        }
        let (reader, writer) = reflector::store::<K>();
        let cancel = entry.member.cancel.child_token();
        entry.stores.insert(
            kind.clone(),
            StoreEntry {
                store: Box::new(reader.clone()),
                cancel: cancel.clone(),
            },
        );
        let member = entry.member.clone();
        let span = info_span!("member_watch", cluster = %cluster, kind = %kind);
        let api: Api<K> = Api::all(member.client.clone());
        let mut cfg = watcher::Config::default();
        if let Some(f) = fields {
            cfg = cfg.fields(f);
        }
        tokio::spawn(
            member_watch(
                Arc::downgrade(self),
                member.name.clone(),
                kind,
                api,
                cfg,
                writer,
                cancel,
            )
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
        let key = dyn_key(ar);
        let mut inner = self.inner.lock().unwrap();
        let entry = inner.members.get_mut(cluster)?;
        if let Some(s) = entry.stores.get(&key) {
            return s.store.downcast_ref::<Store<DynamicObject>>().cloned();
        }
        let writer = Writer::<DynamicObject>::new(ar.clone());
        let reader = writer.as_reader();
        let cancel = entry.member.cancel.child_token();
        entry.stores.insert(
            key,
            StoreEntry {
                store: Box::new(reader.clone()),
                cancel: cancel.clone(),
            },
        );
        let member = entry.member.clone();
        let span = info_span!("member_watch", cluster = %cluster, kind = %ar.kind);
        let api: Api<DynamicObject> = Api::all_with(member.client.clone(), ar);
        tokio::spawn(
            member_watch(
                Arc::downgrade(self),
                member.name.clone(),
                ar.kind.clone(),
                api,
                watcher::Config::default(),
                writer,
                cancel,
            )
            .instrument(span),
        );
        Some(reader)
    }

    /// Follows the KubeFedClusters and their Secrets of the host index until `cancel`,
    /// keeping one `Member` per cluster. `host` reads the host's identity.
    pub async fn run(
        self: Arc<Self>,
        index: Arc<HostIndex>,
        host: kube::Client,
        cancel: CancellationToken,
    ) {
        let mut changes = futures::stream::select(
            index.clusters.subscribe().map(|_| ()),
            index.secrets.subscribe().map(|_| ()),
        );
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = async { index.clusters.ready().await; index.secrets.ready().await } => {}
        }
        loop {
            self.sync(&index, &host).await;
            tokio::select! {
                _ = cancel.cancelled() => break,
                got = changes.next() => if got.is_none() { break },
            }
            // Let a burst (a join writes a Secret and a KubeFedCluster) settle.
            while let Some(Some(_)) = futures::FutureExt::now_or_never(changes.next()) {}
        }
        let members = std::mem::take(&mut self.inner.lock().unwrap().members);
        for e in members.into_values() {
            e.member.cancel.cancel();
        }
    }

    async fn sync(self: &Arc<Self>, index: &HostIndex, host: &kube::Client) {
        let timeout = *self.probe_timeout.lock().unwrap();
        let secrets = index.secrets.store();
        let mut wanted = BTreeMap::new();
        for c in index.clusters.store().state() {
            let name = c.name_any();
            let secret =
                secrets.get(&ObjectRef::new(&c.spec.secret_ref.name).within(&self.namespace));
            let Some(secret) = secret else {
                warn!(cluster = %name, secret = %c.spec.secret_ref.name, "KubeFedCluster names a Secret that does not exist");
                // Keep a connected member as it is: a Secret being replaced must not
                // disconnect the cluster in between.
                continue;
            };
            wanted.insert(name, (c, secret));
        }
        let gone: Vec<String> = {
            let inner = self.inner.lock().unwrap();
            let clusters = index.clusters.store();
            inner
                .members
                .keys()
                .filter(|n| {
                    !wanted.contains_key(*n)
                        && clusters
                            .get(&ObjectRef::new(n).within(&self.namespace))
                            .is_none()
                })
                .cloned()
                .collect()
        };
        for name in gone {
            let removed = self.inner.lock().unwrap().members.remove(&name);
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
                Ok::<_, super::client::ClientError>((
                    member_client(&cluster, &secret, ClientKind::Watch).await?,
                    member_client(&cluster, &secret, ClientKind::Request).await?,
                    member_client(&cluster, &secret, ClientKind::Probe(timeout)).await?,
                ))
            }
            .await;
            match built {
                Ok((client, request_client, probe_client)) => {
                    let member = Arc::new(Member {
                        name: name.clone(),
                        client,
                        request_client,
                        probe_client,
                        cancel: CancellationToken::new(),
                        host: OnceLock::new(),
                    });
                    let (old, typed, dynamic) = {
                        let mut inner = self.inner.lock().unwrap();
                        let old = inner.members.insert(
                            name.clone(),
                            Entry {
                                member: member.clone(),
                                key,
                                stores: HashMap::new(),
                            },
                        );
                        let typed: Vec<Starter> =
                            inner.typed.iter().map(|(_, s)| s.clone()).collect();
                        let dynamic: Vec<ApiResource> = inner.dynamic.values().cloned().collect();
                        (old, typed, dynamic)
                    };
                    if let Some(old) = old {
                        old.member.cancel.cancel();
                    }
                    for start in typed {
                        start(self, &name);
                    }
                    for ar in dynamic {
                        let _ = self.dyn_store(&name, &ar);
                    }
                    tokio::spawn(
                        self.clone()
                            .identify(host.clone(), member)
                            .instrument(info_span!("identify", cluster = %name)),
                    );
                    info!(cluster = %name, "cluster connected");
                    self.emit(RegistryEvent::Connected(name));
                }
                Err(e) => {
                    warn!(cluster = %name, error = %e, "cannot build a client for the cluster")
                }
            }
        }
    }

    /// Finds out whether `member` is the host by comparing `kube-system` UIDs, retrying
    /// with backoff until both are read (or the member goes away).
    async fn identify(self: Arc<Self>, host: kube::Client, member: Arc<Member>) {
        let mut delays = backoff();
        loop {
            let host_uid = self
                .host_uid
                .get_or_try_init(|| async { namespace_uid(&host, "kube-system").await })
                .await
                .cloned();
            let result = match host_uid {
                Ok(h) => namespace_uid(&member.request_client, "kube-system")
                    .await
                    .map(|m| m == h),
                Err(e) => Err(e),
            };
            match result {
                Ok(is_host) => {
                    let _ = member.host.set(is_host);
                    if is_host {
                        info!("this member is the host cluster itself");
                    }
                    self.emit(RegistryEvent::Identified(member.name.clone()));
                    return;
                }
                Err(e) => debug!(error = %e, "reading kube-system to identify the cluster"),
            }
            let wait = delays.next().unwrap_or(Duration::from_secs(5));
            tokio::select! {
                _ = member.cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

async fn namespace_uid(client: &kube::Client, name: &str) -> Result<String, kube::Error> {
    let ns = Api::<Namespace>::all(client.clone()).get(name).await?;
    Ok(ns.metadata.uid.unwrap_or_default())
}

/// A broadcast receiver as a stream of events, `None` where events were missed.
fn events(
    rx: broadcast::Receiver<RegistryEvent>,
) -> impl Stream<Item = Option<RegistryEvent>> + Send + 'static {
    futures::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Ok(e) => Some((Some(e), rx)),
            Err(broadcast::error::RecvError::Lagged(_)) => Some((None, rx)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    })
}

async fn member_watch<K>(
    registry: std::sync::Weak<ClusterRegistry>,
    cluster: String,
    kind: String,
    api: Api<K>,
    cfg: watcher::Config,
    writer: Writer<K>,
    cancel: CancellationToken,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Clone + Eq + Hash + Send + Sync,
{
    let reader = writer.as_reader();
    let stream = watcher::watcher(api, cfg).backoff(backoff());
    let mut stream = std::pin::pin!(reflector::reflector(writer, stream));
    let mut failing = false;
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => return,
            n = stream.next() => n,
        };
        let Some(registry) = registry.upgrade() else {
            return;
        };
        match next {
            Some(Ok(e)) => {
                failing = false;
                let deleted = matches!(e, Event::Delete(_));
                match e {
                    Event::Apply(o) | Event::Delete(o) | Event::InitApply(o) => {
                        if let Some(slice) = (&o as &dyn Any).downcast_ref::<EndpointSlice>() {
                            registry.index_slice(&cluster, slice, deleted);
                        }
                        registry.emit(RegistryEvent::Object {
                            cluster: cluster.clone(),
                            kind: kind.clone(),
                            namespace: o.namespace(),
                            name: o.name_any(),
                        })
                    }
                    Event::InitDone => {
                        if let Some(slices) =
                            (&reader as &dyn Any).downcast_ref::<Store<EndpointSlice>>()
                        {
                            registry.prune_slices(&cluster, slices);
                        }
                        registry.emit(RegistryEvent::Relisted {
                            cluster: cluster.clone(),
                            kind: kind.clone(),
                        })
                    }
                    Event::Init => {}
                }
            }
            Some(Err(e)) if failing => {
                debug!(error = %BriefWatch(&e), "watch failed; retrying with backoff")
            }
            Some(Err(e)) => {
                warn!(error = %BriefWatch(&e), "watch failed; retrying with backoff");
                failing = true;
            }
            None => return,
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
