//! The multi-cluster DNS controllers: ServiceDNSRecord and IngressDNSRecord status from
//! the member clusters, and their `service-<name>` / `ingress-<name>` DNSEndpoints.
//!
//! Data flow: host watches (records, Domains, KubeFedClusters, DNSEndpoints) and the
//! registry's shared member stores (Services, EndpointSlices, Ingresses) feed one work
//! queue of record keys; a reconcile reads only those in-memory stores, computes the
//! status and the endpoints with the pure functions of `dns::records`, and writes the
//! status, the DNSEndpoint and (where that CRD exists) its `externaldns.k8s.io` copy only
//! when they differ from what is stored.
//!
//! Invariants that keep restarts quiet and one bad cluster harmless:
//! - readiness, region and zones come from the stored KubeFedCluster status, not from
//!   in-memory probe state, so a restarted controller sees what its predecessor saw;
//! - a Ready member whose stores have not listed yet holds the record back briefly
//!   (no half-made status), and after `MEMBER_SYNC_GRACE` counts as not ready instead,
//!   so a broken member never blocks the others;
//! - the controller deletes a record's DNSEndpoints itself when the record goes (they
//!   are also owned by it, for the garbage collector).

mod resolve;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::runtime::events::{Event as KEvent, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::{Resource, ResourceExt};
use prometheus::{IntCounterVec, Opts, Registry};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::api::core::{ConditionStatus, KubeFedCluster, cluster_condition};
use crate::api::multiclusterdns::{
    DNSEndpoint, Domain, IngressDNSRecord, IngressDNSRecordStatus, ServiceDNSRecord,
    ServiceDNSRecordStatus,
};
use crate::cluster::registry::{ClusterRegistry, RegistryEvent, watch_into};
use crate::dns::records::status::{
    MemberIngress, MemberService, ServiceObservation, ingress_dns_status, service_dns_status,
};
use crate::dns::records::{
    self, Problem, Rendered, ingress_dns_endpoint_name, service_dns_endpoint_name,
};
use crate::kubeutil::FIELD_MANAGER;

/// How long a Ready member may take to list its Services/Ingresses before records stop
/// waiting for it and treat it as not ready.
pub const MEMBER_SYNC_GRACE: Duration = Duration::from_secs(30);

/// How often records with load balancer hostnames are re-resolved.
pub const HOSTNAME_REFRESH: Duration = Duration::from_secs(60);

/// The CRD whose presence switches the ExternalDNS copy on in `auto` mode.
const EXTERNALDNS_CRD: &str = "dnsendpoints.externaldns.k8s.io";

/// Whether to write the `externaldns.k8s.io/v1alpha1` copy of each DNSEndpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExternalDnsCopy {
    /// Where the `dnsendpoints.externaldns.k8s.io` CRD is installed.
    Auto,
    Always,
    Never,
}

#[derive(Clone, Debug)]
pub struct DnsControllerConfig {
    /// The KubeFed namespace, where Domains and KubeFedClusters live.
    pub namespace: String,
    pub externaldns_copy: ExternalDnsCopy,
}

#[derive(Clone)]
pub struct DnsControllerMetrics {
    reconciles: IntCounterVec,
    writes: IntCounterVec,
}

impl DnsControllerMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let reconciles = IntCounterVec::new(
            Opts::new(
                "kubefed_dns_reconciles_total",
                "DNS record reconciles by kind and result",
            ),
            &["kind", "result"],
        )?;
        let writes = IntCounterVec::new(
            Opts::new(
                "kubefed_dns_writes_total",
                "Objects written by the DNS controllers (only on change)",
            ),
            &["object"],
        )?;
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(writes.clone()))?;
        Ok(DnsControllerMetrics { reconciles, writes })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Key {
    Service(String, String),
    Ingress(String, String),
}

/// A de-duplicating work queue: a key queued twice before it is taken runs once.
#[derive(Default)]
struct Queue {
    pending: std::sync::Mutex<BTreeSet<Key>>,
    notify: Notify,
}

impl Queue {
    fn add(&self, k: Key) {
        if self.pending.lock().unwrap().insert(k) {
            self.notify.notify_one();
        }
    }
    fn take(&self) -> Vec<Key> {
        std::mem::take(&mut *self.pending.lock().unwrap())
            .into_iter()
            .collect()
    }
}

struct Stores {
    services: Store<ServiceDNSRecord>,
    ingresses: Store<IngressDNSRecord>,
    domains: Store<Domain>,
    clusters: Store<KubeFedCluster>,
    endpoints: Store<DNSEndpoint>,
}

struct Ctx {
    host: kube::Client,
    registry: Arc<ClusterRegistry>,
    cfg: DnsControllerConfig,
    stores: Stores,
    queue: Arc<Queue>,
    metrics: DnsControllerMetrics,
    recorder: Recorder,
    resolver: resolve::HostnameCache,
    externaldns_crd: std::sync::atomic::AtomicBool,
    unsynced_since: std::sync::Mutex<HashMap<String, Instant>>,
}

enum Outcome {
    Done,
    RequeueAfter(Duration),
}

/// Runs until `cancel`.
pub async fn run(
    host: kube::Client,
    registry: Arc<ClusterRegistry>,
    cfg: DnsControllerConfig,
    metrics: DnsControllerMetrics,
    identity: String,
    cancel: CancellationToken,
) {
    let queue = Arc::new(Queue::default());
    let (svc_r, svc_w) = reflector::store::<ServiceDNSRecord>();
    let (ing_r, ing_w) = reflector::store::<IngressDNSRecord>();
    let (dom_r, dom_w) = reflector::store::<Domain>();
    let (cl_r, cl_w) = reflector::store::<KubeFedCluster>();
    let (ep_r, ep_w) = reflector::store::<DNSEndpoint>();
    let (all_tx, mut all_rx) = mpsc::channel::<()>(1);

    let q = queue.clone();
    tokio::spawn(watch_into(
        Api::<ServiceDNSRecord>::all(host.clone()),
        svc_w,
        cancel.clone(),
        move |e| {
            for o in touched(e) {
                q.add(Key::Service(
                    o.namespace().unwrap_or_default(),
                    o.name_any(),
                ));
            }
        },
    ));
    let q = queue.clone();
    tokio::spawn(watch_into(
        Api::<IngressDNSRecord>::all(host.clone()),
        ing_w,
        cancel.clone(),
        move |e| {
            for o in touched(e) {
                q.add(Key::Ingress(
                    o.namespace().unwrap_or_default(),
                    o.name_any(),
                ));
            }
        },
    ));
    let tx = all_tx.clone();
    tokio::spawn(watch_into(
        Api::<Domain>::namespaced(host.clone(), &cfg.namespace),
        dom_w,
        cancel.clone(),
        move |_| {
            let _ = tx.try_send(());
        },
    ));
    let tx = all_tx.clone();
    tokio::spawn(watch_into(
        Api::<KubeFedCluster>::namespaced(host.clone(), &cfg.namespace),
        cl_w,
        cancel.clone(),
        move |_| {
            let _ = tx.try_send(());
        },
    ));
    let q = queue.clone();
    tokio::spawn(watch_into(
        Api::<DNSEndpoint>::all(host.clone()),
        ep_w,
        cancel.clone(),
        move |e| {
            // Someone changed or deleted a DNSEndpoint we own: put it back.
            for o in touched(e) {
                let ns = o.namespace().unwrap_or_default();
                let name = o.name_any();
                if let Some(n) = name.strip_prefix("service-") {
                    q.add(Key::Service(ns, n.to_string()));
                } else if let Some(n) = name.strip_prefix("ingress-") {
                    q.add(Key::Ingress(ns, n.to_string()));
                }
            }
        },
    ));
    for s in [
        svc_r.wait_until_ready().boxed(),
        ing_r.wait_until_ready().boxed(),
        dom_r.wait_until_ready().boxed(),
    ] {
        tokio::select! { _ = cancel.cancelled() => return, _ = s => {} }
    }
    tokio::select! { _ = cancel.cancelled() => return, _ = cl_r.wait_until_ready() => {} }
    tokio::select! { _ = cancel.cancelled() => return, _ = ep_r.wait_until_ready() => {} }

    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(
            host.clone(),
            Reporter {
                controller: "kubefed-dns-controller".into(),
                instance: Some(identity),
            },
        ),
        host,
        registry: registry.clone(),
        cfg,
        stores: Stores {
            services: svc_r,
            ingresses: ing_r,
            domains: dom_r,
            clusters: cl_r,
            endpoints: ep_r,
        },
        queue: queue.clone(),
        metrics,
        resolver: resolve::HostnameCache::new(),
        externaldns_crd: Default::default(),
        unsynced_since: Default::default(),
    });
    ctx.refresh_externaldns_crd().await;
    for m in registry.members() {
        ctx.start_member_stores(&m.name);
    }
    ctx.enqueue_all();

    // Member events -> record keys.
    let mut events = registry.subscribe();
    let c = ctx.clone();
    let cancel2 = cancel.clone();
    tokio::spawn(async move {
        loop {
            let e = tokio::select! { _ = cancel2.cancelled() => return, e = events.recv() => e };
            match e {
                Ok(RegistryEvent::Object {
                    kind,
                    namespace,
                    name,
                    ..
                }) => match kind.as_str() {
                    "Service" => c
                        .queue
                        .add(Key::Service(namespace.unwrap_or_default(), name)),
                    "Ingress" => c
                        .queue
                        .add(Key::Ingress(namespace.unwrap_or_default(), name)),
                    // A slice's Service name is a label, gone with a deleted slice: take
                    // every record of the namespace.
                    "EndpointSlice" => {
                        let ns = namespace.unwrap_or_default();
                        for r in c.stores.services.state() {
                            if r.namespace().as_deref() == Some(ns.as_str()) {
                                c.queue.add(Key::Service(ns.clone(), r.name_any()));
                            }
                        }
                    }
                    _ => {}
                },
                Ok(RegistryEvent::Connected(name)) => {
                    c.start_member_stores(&name);
                    c.enqueue_all();
                }
                Ok(RegistryEvent::Removed(_)) | Ok(RegistryEvent::Readiness { .. }) => {
                    c.enqueue_all()
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => c.enqueue_all(),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });

    // The ExternalDNS CRD coming or going (auto mode) is followed by watch.
    let (crd_tx, mut crd_rx) = mpsc::channel::<()>(1);
    if ctx.cfg.externaldns_copy == ExternalDnsCopy::Auto {
        let api: Api<CustomResourceDefinition> = Api::all(ctx.host.clone());
        let cfg = kube::runtime::watcher::Config::default()
            .fields(&format!("metadata.name={EXTERNALDNS_CRD}"));
        let cancel = cancel.clone();
        tokio::spawn(async move {
            use futures::StreamExt;
            use kube::runtime::WatchStreamExt;
            let mut events = std::pin::pin!(kube::runtime::watcher(api, cfg).default_backoff());
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    e = events.next() => match e {
                        Some(Ok(_)) => { let _ = crd_tx.try_send(()); }
                        Some(Err(e)) => debug!(error = %e, "watching the ExternalDNS CRD"),
                        None => return,
                    }
                }
            }
        });
    }
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = queue.notify.notified() => {}
            Some(()) = all_rx.recv() => ctx.enqueue_all(),
            Some(()) = crd_rx.recv() => {
                if ctx.refresh_externaldns_crd().await { ctx.enqueue_all(); }
            }
        }
        for key in queue.take() {
            let started = Instant::now();
            let (kind, result) = match &key {
                Key::Service(ns, n) => ("ServiceDNSRecord", ctx.reconcile_service(ns, n).await),
                Key::Ingress(ns, n) => ("IngressDNSRecord", ctx.reconcile_ingress(ns, n).await),
            };
            debug!(?key, took = ?started.elapsed(), "reconciled");
            let label = match &result {
                Ok(Outcome::Done) => "ok",
                Ok(Outcome::RequeueAfter(_)) => "requeue",
                Err(_) => "error",
            };
            ctx.metrics
                .reconciles
                .with_label_values(&[kind, label])
                .inc();
            let delay = match result {
                Ok(Outcome::Done) => None,
                Ok(Outcome::RequeueAfter(d)) => Some(d),
                Err(e) => {
                    warn!(?key, error = %e, "reconcile failed; retrying");
                    Some(Duration::from_secs(2))
                }
            };
            if let Some(d) = delay {
                let q = queue.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    q.add(key);
                });
            }
        }
    }
}

fn touched<K: Clone>(e: &kube::runtime::watcher::Event<K>) -> Vec<K> {
    use kube::runtime::watcher::Event;
    match e {
        Event::Apply(o) | Event::Delete(o) | Event::InitApply(o) => vec![o.clone()],
        _ => vec![],
    }
}

fn externaldns_resource() -> ApiResource {
    ApiResource {
        group: "externaldns.k8s.io".into(),
        version: "v1alpha1".into(),
        api_version: "externaldns.k8s.io/v1alpha1".into(),
        kind: "DNSEndpoint".into(),
        plural: "dnsendpoints".into(),
    }
}

impl Ctx {
    fn enqueue_all(&self) {
        for r in self.stores.services.state() {
            self.queue.add(Key::Service(
                r.namespace().unwrap_or_default(),
                r.name_any(),
            ));
        }
        for r in self.stores.ingresses.state() {
            self.queue.add(Key::Ingress(
                r.namespace().unwrap_or_default(),
                r.name_any(),
            ));
        }
    }

    fn start_member_stores(&self, cluster: &str) {
        let _ = self.registry.store::<Service>(cluster);
        let _ = self.registry.store::<EndpointSlice>(cluster);
        let _ = self.registry.store::<Ingress>(cluster);
    }

    /// True when the answer changed.
    async fn refresh_externaldns_crd(&self) -> bool {
        let present = match self.cfg.externaldns_copy {
            ExternalDnsCopy::Always => true,
            ExternalDnsCopy::Never => false,
            ExternalDnsCopy::Auto => Api::<CustomResourceDefinition>::all(self.host.clone())
                .get_opt(EXTERNALDNS_CRD)
                .await
                .map(|c| c.is_some())
                .unwrap_or(false),
        };
        self.externaldns_crd
            .swap(present, std::sync::atomic::Ordering::AcqRel)
            != present
    }

    /// Readiness, region and zones of every joined cluster, from the stored status.
    fn clusters(&self) -> Vec<(String, bool, Option<String>, Vec<String>)> {
        let mut out: Vec<_> = self
            .stores
            .clusters
            .state()
            .iter()
            .map(|c| {
                let st = c.status.clone().unwrap_or_default();
                let ready = st.conditions.iter().any(|c| {
                    c.type_ == cluster_condition::READY && c.status == ConditionStatus::True
                });
                (c.name_any(), ready, st.region.clone(), st.zones.clone())
            })
            .collect();
        out.sort();
        out
    }

    /// A Ready member's store, if it has listed. `Err(())` = wait a little for it.
    fn member_store<K>(&self, cluster: &str) -> Result<Option<Store<K>>, ()>
    where
        K: Resource<DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
    {
        // A cluster the registry has not connected yet (e.g. just after a restart) is
        // waited for like one whose store has not listed: never read as "no Service".
        let store = self.registry.store::<K>(cluster);
        if let Some(store) = store.filter(|s| s.wait_until_ready().now_or_never().is_some()) {
            self.unsynced_since.lock().unwrap().remove(cluster);
            return Ok(Some(store));
        }
        let mut since = self.unsynced_since.lock().unwrap();
        let first = *since
            .entry(cluster.to_string())
            .or_insert_with(Instant::now);
        if first.elapsed() < MEMBER_SYNC_GRACE {
            Err(())
        } else {
            Ok(None)
        }
    }

    async fn reconcile_service(&self, ns: &str, name: &str) -> anyhow::Result<Outcome> {
        let Some(rec) = self.stores.services.get(&ObjectRef::new(name).within(ns)) else {
            self.delete_endpoints(
                ns,
                &service_dns_endpoint_name(name),
                "ServiceDNSRecord",
                name,
            )
            .await?;
            return Ok(Outcome::Done);
        };
        if rec.metadata.deletion_timestamp.is_some() {
            return Ok(Outcome::Done);
        }
        let domain = self
            .stores
            .domains
            .get(&ObjectRef::new(&rec.spec.domain_ref).within(&self.cfg.namespace))
            .map(|d| d.domain.trim_end_matches('.').to_string());

        let mut members = Vec::new();
        for (cluster, ready, region, zones) in self.clusters() {
            let mut m = MemberService {
                cluster: cluster.clone(),
                ready,
                region,
                zones,
                service: None,
            };
            if ready {
                let (svcs, slices) = match (
                    self.member_store::<Service>(&cluster),
                    self.member_store::<EndpointSlice>(&cluster),
                ) {
                    (Ok(a), Ok(b)) => (a, b),
                    _ => return Ok(Outcome::RequeueAfter(Duration::from_millis(500))),
                };
                match (svcs, slices) {
                    (Some(svcs), Some(slices)) => {
                        m.service = svcs.get(&ObjectRef::new(name).within(ns)).map(|s| {
                            ServiceObservation {
                                load_balancer: s
                                    .status
                                    .as_ref()
                                    .and_then(|s| s.load_balancer.clone())
                                    .unwrap_or_default(),
                                has_ready_endpoints: has_ready_endpoints(&slices, ns, name),
                            }
                        });
                    }
                    // Never listed within the grace period: treat like an offline cluster.
                    _ => m.ready = false,
                }
            }
            members.push(m);
        }
        let previous = rec.status.clone().unwrap_or_default();
        let dns = service_dns_status(
            &members,
            &previous.dns,
            rec.spec.allow_service_without_endpoints,
        );
        let mut status = ServiceDNSRecordStatus {
            domain: domain.clone().unwrap_or_default(),
            dns,
            conditions: vec![],
        };

        let mut with_status = (*rec).clone();
        with_status.status = Some(status.clone());
        let hostnames = records::service_hostnames(&with_status);
        let resolved = self.resolver.resolve(&hostnames).await;
        let rendered = match &domain {
            None => Err(format!(
                "Domain {:?} not found in namespace {}",
                rec.spec.domain_ref, self.cfg.namespace
            )),
            Some(_) => records::render_service(&with_status, &resolved).map_err(|e| e.to_string()),
        };
        let not_ready = if domain.is_none() {
            "DomainNotFound"
        } else {
            "InvalidRecord"
        };
        let published;
        (status.conditions, published) = self
            .publish(
                &rendered,
                not_ready,
                &previous.conditions,
                rec.metadata.generation,
            )
            .await;
        self.write_status(
            &*rec,
            ns,
            name,
            &previous.conditions,
            &status.conditions,
            status != previous,
            &status,
        )
        .await?;
        outcome(published, &hostnames)
    }

    async fn reconcile_ingress(&self, ns: &str, name: &str) -> anyhow::Result<Outcome> {
        let Some(rec) = self.stores.ingresses.get(&ObjectRef::new(name).within(ns)) else {
            self.delete_endpoints(
                ns,
                &ingress_dns_endpoint_name(name),
                "IngressDNSRecord",
                name,
            )
            .await?;
            return Ok(Outcome::Done);
        };
        if rec.metadata.deletion_timestamp.is_some() {
            return Ok(Outcome::Done);
        }
        let mut members = Vec::new();
        for (cluster, ready, _, _) in self.clusters() {
            let mut m = MemberIngress {
                cluster: cluster.clone(),
                ready,
                ingress: None,
            };
            if ready {
                match self.member_store::<Ingress>(&cluster) {
                    Err(()) => return Ok(Outcome::RequeueAfter(Duration::from_millis(500))),
                    Ok(Some(store)) => {
                        m.ingress = store
                            .get(&ObjectRef::new(name).within(ns))
                            .map(|i| lb_of_ingress(&i));
                    }
                    Ok(None) => m.ready = false,
                }
            }
            members.push(m);
        }
        let previous = rec.status.clone().unwrap_or_default();
        let mut status = IngressDNSRecordStatus {
            dns: ingress_dns_status(&members),
            conditions: vec![],
        };
        let mut with_status = (*rec).clone();
        with_status.status = Some(status.clone());
        let hostnames = records::ingress_hostnames(&with_status);
        let resolved = self.resolver.resolve(&hostnames).await;
        let rendered = records::render_ingress(&with_status, &resolved).map_err(|e| e.to_string());
        let published;
        (status.conditions, published) = self
            .publish(
                &rendered,
                "InvalidRecord",
                &previous.conditions,
                rec.metadata.generation,
            )
            .await;
        self.write_status(
            &*rec,
            ns,
            name,
            &previous.conditions,
            &status.conditions,
            status != previous,
            &status,
        )
        .await?;
        outcome(published, &hostnames)
    }

    /// Publishes the rendered DNSEndpoint first, so that the conditions computed from
    /// the result say what really happened (`PublishFailed` when the write is refused,
    /// returned as well so the record is retried).
    async fn publish(
        &self,
        rendered: &Result<Rendered, String>,
        not_ready: &'static str,
        previous: &[Condition],
        generation: Option<i64>,
    ) -> (Vec<Condition>, anyhow::Result<()>) {
        let (ready_reason, problems, published) = match rendered {
            Ok(r) => match self.write_endpoints(r.clone()).await {
                Ok(()) => (None, r.problems.clone(), Ok(())),
                Err(e) => (
                    Some(("PublishFailed", format!("writing the DNSEndpoint: {e}"))),
                    vec![],
                    Err(e),
                ),
            },
            Err(msg) => (Some((not_ready, msg.clone())), vec![], Ok(())),
        };
        (
            conditions(previous, ready_reason.as_ref(), &problems, generation),
            published,
        )
    }

    /// Writes a record's status when it changed, with an Event per changed condition.
    #[allow(clippy::too_many_arguments)]
    async fn write_status<K, S>(
        &self,
        rec: &K,
        ns: &str,
        name: &str,
        before: &[Condition],
        after: &[Condition],
        changed: bool,
        status: &S,
    ) -> anyhow::Result<()>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        S: serde::Serialize,
    {
        if !changed {
            return Ok(());
        }
        let api: Api<K> = Api::namespaced(self.host.clone(), ns);
        api.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"status": status})),
        )
        .await?;
        let kind = K::kind(&());
        self.metrics
            .writes
            .with_label_values(&[&format!("{kind}/status")])
            .inc();
        self.announce(rec, before, after).await;
        Ok(())
    }

    /// Writes the DNSEndpoint (and its ExternalDNS copy) when it differs from the stored one.
    async fn write_endpoints(&self, r: Rendered) -> anyhow::Result<()> {
        let desired = r.object;
        let ns = desired.namespace().unwrap_or_default();
        let name = desired.name_any();
        let current = self
            .stores
            .endpoints
            .get(&ObjectRef::new(&name).within(&ns));
        let same = current.as_ref().is_some_and(|c| {
            c.spec == desired.spec
                && c.metadata.owner_references == desired.metadata.owner_references
        });
        if !same {
            let api: Api<DNSEndpoint> = Api::namespaced(self.host.clone(), &ns);
            let mut doc = serde_json::to_value(&desired)?;
            doc["apiVersion"] = crate::api::multiclusterdns::API_VERSION.into();
            doc["kind"] = "DNSEndpoint".into();
            api.patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(doc),
            )
            .await?;
            self.metrics
                .writes
                .with_label_values(&["DNSEndpoint"])
                .inc();
            info!(namespace = %ns, name = %name, endpoints = desired.spec.endpoints.len(), "DNSEndpoint written");
        }
        if self
            .externaldns_crd
            .load(std::sync::atomic::Ordering::Acquire)
        {
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.host.clone(), &ns, &externaldns_resource());
            let copy = records::externaldns_copy(&desired);
            let current = api.get_opt(&name).await?;
            let same = current.as_ref().is_some_and(|c| {
                c.data.get("spec") == copy.get("spec")
                    && serde_json::to_value(&c.metadata.owner_references)
                        .ok()
                        .as_ref()
                        == copy
                            .get("metadata")
                            .and_then(|m| m.get("ownerReferences"))
                            .or(Some(&serde_json::Value::Null))
            });
            if !same {
                api.patch(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(copy),
                )
                .await?;
                self.metrics
                    .writes
                    .with_label_values(&["externaldns.k8s.io/DNSEndpoint"])
                    .inc();
            }
        }
        Ok(())
    }

    /// Removes a gone record's DNSEndpoint (and copy), only if that record owned it.
    async fn delete_endpoints(
        &self,
        ns: &str,
        ep_name: &str,
        owner_kind: &str,
        owner: &str,
    ) -> anyhow::Result<()> {
        let owned =
            |refs: Option<&Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>| {
                refs.is_some_and(|r| r.iter().any(|o| o.kind == owner_kind && o.name == owner))
            };
        if let Some(ep) = self
            .stores
            .endpoints
            .get(&ObjectRef::new(ep_name).within(ns))
            && owned(ep.metadata.owner_references.as_ref())
        {
            let api: Api<DNSEndpoint> = Api::namespaced(self.host.clone(), ns);
            ignore_not_found(
                api.delete(ep_name, &DeleteParams::default())
                    .await
                    .map(|_| ()),
            )?;
            info!(namespace = %ns, name = %ep_name, "DNSEndpoint deleted with its record");
        }
        if self
            .externaldns_crd
            .load(std::sync::atomic::Ordering::Acquire)
        {
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.host.clone(), ns, &externaldns_resource());
            if let Some(c) = api.get_opt(ep_name).await?
                && owned(c.metadata.owner_references.as_ref())
            {
                ignore_not_found(
                    api.delete(ep_name, &DeleteParams::default())
                        .await
                        .map(|_| ()),
                )?;
            }
        }
        Ok(())
    }

    /// An Event for each condition that changed to False (or back to True).
    async fn announce<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        before: &[Condition],
        after: &[Condition],
    ) {
        for c in after {
            let prev = before.iter().find(|p| p.type_ == c.type_);
            if prev.is_some_and(|p| p.status == c.status && p.reason == c.reason) {
                continue;
            }
            if prev.is_none() && c.status == "True" {
                continue;
            }
            let ev = KEvent {
                type_: if c.status == "True" {
                    EventType::Normal
                } else {
                    EventType::Warning
                },
                reason: c.reason.clone(),
                note: Some(c.message.chars().take(1000).collect()),
                action: "Reconcile".into(),
                secondary: None,
            };
            if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
                debug!(error = %e, "publishing an event");
            }
        }
    }
}

/// Retry a refused publish; re-resolve load balancer hostnames now and then.
fn outcome(published: anyhow::Result<()>, hostnames: &BTreeSet<String>) -> anyhow::Result<Outcome> {
    published?;
    Ok(if hostnames.is_empty() {
        Outcome::Done
    } else {
        Outcome::RequeueAfter(HOSTNAME_REFRESH)
    })
}

fn ignore_not_found(r: Result<(), kube::Error>) -> Result<(), kube::Error> {
    match r {
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        other => other,
    }
}

/// Any endpoint of any EndpointSlice of the Service that is not explicitly not ready.
fn has_ready_endpoints(slices: &Store<EndpointSlice>, ns: &str, service: &str) -> bool {
    slices.state().iter().any(|s| {
        s.metadata.namespace.as_deref() == Some(ns)
            && s.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("kubernetes.io/service-name"))
                .map(String::as_str)
                == Some(service)
            && s.endpoints
                .iter()
                .any(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
    })
}

fn lb_of_ingress(i: &Ingress) -> k8s_openapi::api::core::v1::LoadBalancerStatus {
    use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus};
    let ingress = i
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref());
    LoadBalancerStatus {
        ingress: ingress.map(|v| {
            v.iter()
                .map(|x| LoadBalancerIngress {
                    ip: x.ip.clone(),
                    hostname: x.hostname.clone(),
                    ..Default::default()
                })
                .collect()
        }),
    }
}

/// The record's conditions: `Ready` (a DNSEndpoint could be made) and `Complete` (every
/// cluster's share went in). Transition times move only when a status changes.
fn conditions(
    previous: &[Condition],
    not_ready: Option<&(&str, String)>,
    problems: &[Problem],
    generation: Option<i64>,
) -> Vec<Condition> {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let mk = |type_: &str, ok: bool, reason: &str, message: String| {
        let status = if ok { "True" } else { "False" }.to_string();
        let prev = previous.iter().find(|c| c.type_ == type_);
        let same =
            prev.is_some_and(|p| p.status == status && p.reason == reason && p.message == message);
        Condition {
            type_: type_.into(),
            last_transition_time: match prev {
                Some(p) if p.status == status => p.last_transition_time.clone(),
                _ => now.clone(),
            },
            status,
            reason: reason.into(),
            message,
            observed_generation: if same {
                prev.and_then(|p| p.observed_generation)
            } else {
                generation
            },
        }
    };
    let ready = match not_ready {
        None => mk(
            "Ready",
            true,
            "EndpointsPublished",
            "the DNSEndpoint holds the record's names".into(),
        ),
        Some((reason, msg)) => mk("Ready", false, reason, msg.clone()),
    };
    let complete = if problems.is_empty() {
        mk(
            "Complete",
            true,
            "AllClustersPublished",
            "every cluster's addresses are published".into(),
        )
    } else {
        let reasons: BTreeMap<&str, ()> = problems.iter().map(|p| (p.reason(), ())).collect();
        let reason = reasons.keys().next().copied().unwrap_or("Incomplete");
        let msg = problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("; ");
        mk("Complete", false, reason, msg)
    };
    vec![ready, complete]
}
