//! The multi-cluster DNS controllers: ServiceDNSRecord and IngressDNSRecord status from
//! the member clusters, and their `service-<name>` / `ingress-<name>` DNSEndpoints.
//!
//! Three controllers on the shared runtime (`crate::kube::controller`):
//! - `service-dns` and `ingress-dns` reconcile one record each: they read only in-memory
//!   stores (the host index and the registry's member stores), compute the status and
//!   the endpoints with the pure functions of `dns::records`, and write the status, the
//!   DNSEndpoint and (where that CRD exists) its `externaldns.k8s.io` copy only when they
//!   differ from what is stored;
//! - `dns-endpoint-gc` deletes a DNSEndpoint (and its copy) whose owning record is known
//!   to be gone: the host's store has listed and has no such record. The endpoints are
//!   also owned by the record, so a real cluster's garbage collector does the same; this
//!   makes it immediate and works where no garbage collector runs.
//!
//! Triggers: a record's own changes, its DNSEndpoint's changes (someone changed or
//! deleted what we own: put it back), the member Services and Ingresses of the same name
//! and the EndpointSlices of that Service (by their `kubernetes.io/service-name`), and every record on a Domain, KubeFedCluster or ExternalDNS CRD
//! change, a member (re)connection or a re-list.
//!
//! Invariants that keep restarts quiet and one bad cluster harmless:
//! - readiness, region and zones come from the stored KubeFedCluster status, not from
//!   in-memory probe state, so a restarted controller sees what its predecessor saw;
//! - a Ready member whose stores have not listed yet holds the record back briefly
//!   (no half-made status), and after `MEMBER_SYNC_GRACE` counts as not ready instead,
//!   so a broken member never blocks the others;
//! - a record whose Domain is gone keeps its status and its DNSEndpoint as they were
//!   (only the `Ready` condition says `DomainNotFound`): deleting a Domain withdraws no
//!   name, on the etcd path or the embedded server (docs/dns-names.md).

pub(crate) mod resolve;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KEvent, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use prometheus::{IntCounterVec, Opts, Registry};
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::api::multiclusterdns::{
    DNSEndpoint, ENDPOINT_COUNT_ANNOTATION, IngressDNSRecord, IngressDNSRecordStatus,
    ServiceDNSRecord, ServiceDNSRecordStatus,
};
use crate::cluster::registry::{ClusterRegistry, RegistryEvent};
use crate::dns::records::status::{
    MemberIngress, MemberService, ServiceObservation, ingress_dns_status, service_dns_status,
};
use crate::dns::records::{
    self, Problem, Rendered, ingress_dns_endpoint_name, service_dns_endpoint_name,
};
use crate::host::HostIndex;
use crate::kube::FIELD_MANAGER;
use crate::kube::controller::{self, ControllerError, ControllerMetrics, Retry, Spec, Trigger};

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
    /// Records reconciled at once per controller (0 = unbounded).
    pub concurrency: u16,
}

#[derive(Clone)]
pub struct DnsControllerMetrics {
    writes: IntCounterVec,
}

impl DnsControllerMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let writes = IntCounterVec::new(
            Opts::new(
                "kubefed_dns_writes_total",
                "Objects written by the DNS controllers (only on change)",
            ),
            &["object"],
        )?;
        registry.register(Box::new(writes.clone()))?;
        Ok(DnsControllerMetrics { writes })
    }
}

#[derive(Debug, Error)]
pub enum DnsError {
    #[error("the health of cluster {0} is not known yet")]
    HealthUnknown(String),
    #[error("member {cluster} has not listed its {kind}s yet")]
    MemberNotSynced { cluster: String, kind: String },
    #[error("writing the status: {}", crate::kube::Brief(.0))]
    WriteStatus(#[source] kube::Error),
    #[error("publishing the DNSEndpoint: {}", crate::kube::Brief(.0))]
    Publish(#[source] kube::Error),
    #[error("deleting DNSEndpoint {name}: {}", crate::kube::Brief(source))]
    Delete {
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl ControllerError for DnsError {
    fn reason(&self) -> &'static str {
        match self {
            DnsError::HealthUnknown(_) => "HealthUnknown",
            DnsError::MemberNotSynced { .. } => "MemberNotSynced",
            DnsError::WriteStatus(_) => "WriteStatus",
            DnsError::Publish(_) => "Publish",
            DnsError::Delete { .. } => "Delete",
        }
    }
    fn retry(&self) -> Retry {
        match self {
            DnsError::MemberNotSynced { .. } | DnsError::HealthUnknown(_) => Retry::Soon,
            _ => Retry::Backoff,
        }
    }
}

struct Ctx {
    host: kube::Client,
    index: Arc<HostIndex>,
    registry: Arc<ClusterRegistry>,
    cfg: DnsControllerConfig,
    metrics: DnsControllerMetrics,
    recorder: Recorder,
    resolver: resolve::HostnameCache,
    externaldns_crd: AtomicBool,
    unsynced_since: std::sync::Mutex<HashMap<String, Instant>>,
}

/// Runs the three DNS controllers until `cancel`. `host` is a client whose every request
/// is bounded (see `controller_manager::host_clients`).
#[allow(clippy::too_many_arguments)]
pub async fn run(
    index: Arc<HostIndex>,
    registry: Arc<ClusterRegistry>,
    host: kube::Client,
    cfg: DnsControllerConfig,
    metrics: DnsControllerMetrics,
    controller_metrics: ControllerMetrics,
    identity: String,
    cancel: CancellationToken,
) {
    registry.watch_kind::<Service>();
    registry.watch_kind::<EndpointSlice>();
    registry.watch_kind::<Ingress>();
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(
            host.clone(),
            Reporter {
                controller: "kubefed-dns-controller".into(),
                instance: Some(identity),
            },
        ),
        host,
        index: index.clone(),
        registry: registry.clone(),
        cfg,
        metrics,
        resolver: resolve::HostnameCache::new(),
        externaldns_crd: Default::default(),
        unsynced_since: Default::default(),
    });
    // Every record waits for the stores it reads (the runtime holds reconciles until the
    // record store has listed).
    tokio::select! {
        _ = cancel.cancelled() => return,
        _ = async {
            index.domains.ready().await;
            index.clusters.ready().await;
            index.endpoints.ready().await;
            index.ingress_records.ready().await;
        } => {}
    }
    ctx.refresh_externaldns_crd().await;
    let crd_changes = externaldns_crd_changes(ctx.clone(), cancel.clone());
    let (svc_crd, ing_crd) = fan_out(crd_changes);

    let services = Spec {
        name: "service-dns",
        source: index.service_records.clone(),
        triggers: vec![
            controller::self_triggers(&index.service_records),
            controller::map_changes(&index.endpoints, |e: &DNSEndpoint| {
                owner_of(e, "service-").into_iter().collect()
            }),
            controller::all_on_change(&index.domains),
            controller::all_on_change(&index.clusters),
            controller::all_on(svc_crd),
            {
                let (registry2, index) = (registry.clone(), SliceIndex::default());
                registry.triggers(move |e| {
                    member_triggers::<ServiceDNSRecord>(e, "Service", Some((&registry2, &index)))
                })
            },
        ],
        concurrency: ctx.cfg.concurrency,
    };
    let ingresses = Spec {
        name: "ingress-dns",
        source: index.ingress_records.clone(),
        triggers: vec![
            controller::self_triggers(&index.ingress_records),
            controller::map_changes(&index.endpoints, |e: &DNSEndpoint| {
                owner_of(e, "ingress-").into_iter().collect()
            }),
            controller::all_on_change(&index.clusters),
            controller::all_on(ing_crd),
            registry.triggers(|e| member_triggers::<IngressDNSRecord>(e, "Ingress", None)),
        ],
        concurrency: ctx.cfg.concurrency,
    };
    let gc = Spec {
        name: "dns-endpoint-gc",
        source: index.endpoints.clone(),
        triggers: vec![
            controller::self_triggers(&index.endpoints),
            controller::map_changes(&index.service_records, |r: &ServiceDNSRecord| {
                vec![endpoint_ref(r, service_dns_endpoint_name)]
            }),
            controller::map_changes(&index.ingress_records, |r: &IngressDNSRecord| {
                vec![endpoint_ref(r, ingress_dns_endpoint_name)]
            }),
        ],
        concurrency: ctx.cfg.concurrency,
    };
    tokio::join!(
        controller::run(
            services,
            controller_metrics.clone(),
            ctx.clone(),
            |r, c| async move { c.reconcile_service(&r).await },
            |_, _| {},
            cancel.clone(),
        ),
        controller::run(
            ingresses,
            controller_metrics.clone(),
            ctx.clone(),
            |r, c| async move { c.reconcile_ingress(&r).await },
            |_, _| {},
            cancel.clone(),
        ),
        controller::run(
            gc,
            controller_metrics,
            ctx.clone(),
            |e, c| async move { c.collect_endpoint(&e).await },
            |_, _| {},
            cancel.clone(),
        ),
    );
}

/// The record a DNSEndpoint named `<prefix><record>` belongs to.
fn owner_of<K: Resource<DynamicType = ()>>(ep: &DNSEndpoint, prefix: &str) -> Option<ObjectRef<K>> {
    let name = ep.name_any();
    let record = name.strip_prefix(prefix)?;
    Some(ObjectRef::new(record).within(&ep.namespace().unwrap_or_default()))
}

fn endpoint_ref<K: Resource>(rec: &K, name: fn(&str) -> String) -> ObjectRef<DNSEndpoint> {
    ObjectRef::new(&name(&rec.meta().name.clone().unwrap_or_default()))
        .within(&rec.meta().namespace.clone().unwrap_or_default())
}

/// Which Service each member EndpointSlice belongs to, remembered from its label while
/// it exists, because a deleted slice's event no longer shows it.
#[derive(Default)]
struct SliceIndex(std::sync::Mutex<HashMap<(String, String, String), String>>);

impl SliceIndex {
    /// The Service of the slice an event is about, from the member store (or memory, for
    /// a slice that is gone).
    fn service_of(
        &self,
        registry: &Arc<ClusterRegistry>,
        cluster: &str,
        ns: &str,
        slice: &str,
    ) -> Option<String> {
        let key = (cluster.to_string(), ns.to_string(), slice.to_string());
        let label = registry
            .store::<EndpointSlice>(cluster)
            .and_then(|s| s.get(&ObjectRef::new(slice).within(ns)))
            .and_then(|s| s.labels().get("kubernetes.io/service-name").cloned());
        let mut known = self.0.lock().unwrap();
        match label {
            Some(svc) => {
                known.insert(key, svc.clone());
                Some(svc)
            }
            None => known.remove(&key),
        }
    }
}

/// Member events as triggers of the records of `kind` (same namespace and name). An
/// EndpointSlice triggers the record of its Service (`slices`: only ServiceDNSRecords
/// care about slices).
fn member_triggers<K: Resource<DynamicType = ()> + Clone>(
    e: &RegistryEvent,
    kind: &str,
    slices: Option<(&Arc<ClusterRegistry>, &SliceIndex)>,
) -> Vec<Trigger<K>> {
    match e {
        RegistryEvent::Object {
            kind: k,
            namespace,
            name,
            ..
        } if k == kind => vec![Trigger::One(
            ObjectRef::new(name).within(namespace.as_deref().unwrap_or_default()),
        )],
        RegistryEvent::Object {
            cluster,
            kind: k,
            namespace,
            name,
        } if k == "EndpointSlice" => {
            let Some((registry, index)) = slices else {
                return vec![];
            };
            let ns = namespace.as_deref().unwrap_or_default();
            match index.service_of(registry, cluster, ns, name) {
                Some(svc) => vec![Trigger::One(ObjectRef::new(&svc).within(ns))],
                // A slice with no Service label is not a Service's.
                None => vec![],
            }
        }
        RegistryEvent::Relisted { kind: k, .. }
            if k == kind || (k == "EndpointSlice" && slices.is_some()) =>
        {
            vec![Trigger::All]
        }
        RegistryEvent::Connected(_) | RegistryEvent::Removed(_) => vec![Trigger::All],
        _ => vec![],
    }
}

/// Follows the ExternalDNS CRD (auto mode): each change refreshes the switch first, then
/// yields once so that every record is re-published.
fn externaldns_crd_changes(
    ctx: Arc<Ctx>,
    cancel: CancellationToken,
) -> futures::stream::BoxStream<'static, ()> {
    let (tx, rx) = tokio::sync::mpsc::channel::<()>(1);
    if ctx.cfg.externaldns_copy == ExternalDnsCopy::Auto {
        let api: Api<CustomResourceDefinition> = Api::all(ctx.index.watch_client());
        let cfg = kube::runtime::watcher::Config::default()
            .fields(&format!("metadata.name={EXTERNALDNS_CRD}"));
        tokio::spawn(async move {
            use kube::runtime::WatchStreamExt;
            let mut events = std::pin::pin!(
                kube::runtime::watcher(api, cfg).backoff(crate::kube::watch::backoff())
            );
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    e = events.next() => match e {
                        Some(Ok(_)) => {
                            if ctx.refresh_externaldns_crd().await {
                                let _ = tx.try_send(());
                            }
                        }
                        Some(Err(e)) => debug!(error = %e, "watching the ExternalDNS CRD"),
                        None => return,
                    }
                }
            }
        });
    }
    futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|()| ((), rx)) },
    )
    .boxed()
}

/// One stream of `()` into two.
fn fan_out(
    s: futures::stream::BoxStream<'static, ()>,
) -> (
    futures::stream::BoxStream<'static, ()>,
    futures::stream::BoxStream<'static, ()>,
) {
    let (a_tx, a_rx) = tokio::sync::mpsc::channel::<()>(1);
    let (b_tx, b_rx) = tokio::sync::mpsc::channel::<()>(1);
    tokio::spawn(async move {
        let mut s = s;
        while s.next().await.is_some() {
            let _ = a_tx.try_send(());
            let _ = b_tx.try_send(());
        }
    });
    let rx = |rx: tokio::sync::mpsc::Receiver<()>| {
        futures::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|()| ((), rx)) },
        )
        .boxed()
    };
    (rx(a_rx), rx(b_rx))
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
    /// True when the answer changed. A failed read keeps the previous answer: the copy is
    /// neither switched on nor off on a guess.
    async fn refresh_externaldns_crd(&self) -> bool {
        let present = match self.cfg.externaldns_copy {
            ExternalDnsCopy::Always => true,
            ExternalDnsCopy::Never => false,
            ExternalDnsCopy::Auto => match Api::<CustomResourceDefinition>::all(self.host.clone())
                .get_opt(EXTERNALDNS_CRD)
                .await
            {
                Ok(c) => c.is_some(),
                Err(e) => {
                    debug!(error = %e, "reading the ExternalDNS CRD; keeping the previous answer");
                    return false;
                }
            },
        };
        self.externaldns_crd.swap(present, Ordering::AcqRel) != present
    }

    /// Waits (for at most `MEMBER_SYNC_GRACE` per cluster) until every joined cluster's
    /// health is known, so that a cold start publishes each record once.
    fn health_known(&self) -> Result<(), DnsError> {
        for c in self.index.clusters_of_unknown_health() {
            let mut since = self.unsynced_since.lock().unwrap();
            let first = *since
                .entry(format!("health/{c}"))
                .or_insert_with(Instant::now);
            if first.elapsed() < MEMBER_SYNC_GRACE {
                return Err(DnsError::HealthUnknown(c));
            }
        }
        Ok(())
    }

    /// Readiness, region and zones of every joined cluster, from the stored status.
    fn clusters(&self) -> Vec<(String, bool, Option<String>, Vec<String>)> {
        let mut out: Vec<_> = self
            .index
            .clusters
            .store()
            .state()
            .iter()
            .map(|c| {
                let st = c.status.clone().unwrap_or_default();
                (
                    c.name_any(),
                    c.is_ready(),
                    st.region.clone(),
                    st.zones.clone(),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// A Ready member's store, if it has listed. `Err` = wait a little for it.
    fn member_store<K>(&self, cluster: &str) -> Result<Option<Store<K>>, DnsError>
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
            Err(DnsError::MemberNotSynced {
                cluster: cluster.to_string(),
                kind: K::kind(&()).to_string(),
            })
        } else {
            Ok(None)
        }
    }

    async fn reconcile_service(&self, rec: &ServiceDNSRecord) -> Result<Action, DnsError> {
        if rec.metadata.deletion_timestamp.is_some() {
            return Ok(Action::await_change());
        }
        self.health_known()?;
        let ns = rec.namespace().unwrap_or_default();
        let name = rec.name_any();
        let domain = self
            .index
            .domains
            .store()
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
                let svcs = self.member_store::<Service>(&cluster)?;
                let slices = self.member_store::<EndpointSlice>(&cluster)?;
                match (svcs, slices) {
                    (Some(svcs), Some(slices)) => {
                        m.service = svcs.get(&ObjectRef::new(&name).within(&ns)).map(|s| {
                            ServiceObservation {
                                load_balancer: s
                                    .status
                                    .as_ref()
                                    .and_then(|s| s.load_balancer.clone())
                                    .unwrap_or_default(),
                                has_ready_endpoints: has_ready_endpoints(
                                    &self.registry,
                                    &cluster,
                                    &slices,
                                    &ns,
                                    &name,
                                ),
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
        let mut status = match &domain {
            // Without its Domain a record changes nothing but its condition.
            None => ServiceDNSRecordStatus {
                conditions: vec![],
                ..previous.clone()
            },
            Some(d) => ServiceDNSRecordStatus {
                domain: d.clone(),
                dns: service_dns_status(
                    &members,
                    &previous.dns,
                    rec.spec.allow_service_without_endpoints,
                ),
                conditions: vec![],
            },
        };

        let mut with_status = rec.clone();
        with_status.status = Some(status.clone());
        let hostnames = records::service_hostnames(&with_status);
        let resolved = self.resolver.resolve(&hostnames).await;
        let rendered = match &domain {
            None => Err(format!(
                "Domain {:?} not found in namespace {}; the names published before are kept",
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
            rec,
            &previous.conditions,
            &status.conditions,
            status != previous,
            &status,
        )
        .await?;
        outcome(published, &hostnames)
    }

    async fn reconcile_ingress(&self, rec: &IngressDNSRecord) -> Result<Action, DnsError> {
        if rec.metadata.deletion_timestamp.is_some() {
            return Ok(Action::await_change());
        }
        self.health_known()?;
        let ns = rec.namespace().unwrap_or_default();
        let name = rec.name_any();
        let mut members = Vec::new();
        for (cluster, ready, _, _) in self.clusters() {
            let mut m = MemberIngress {
                cluster: cluster.clone(),
                ready,
                ingress: None,
            };
            if ready {
                match self.member_store::<Ingress>(&cluster)? {
                    Some(store) => {
                        m.ingress = store
                            .get(&ObjectRef::new(&name).within(&ns))
                            .map(|i| lb_of_ingress(&i));
                    }
                    None => m.ready = false,
                }
            }
            members.push(m);
        }
        let previous = rec.status.clone().unwrap_or_default();
        let mut status = IngressDNSRecordStatus {
            dns: ingress_dns_status(&members),
            conditions: vec![],
        };
        let mut with_status = rec.clone();
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
            rec,
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
    ) -> (Vec<Condition>, Result<(), kube::Error>) {
        let (ready_reason, problems, published) = match rendered {
            Ok(r) => match self.write_endpoints(r.clone()).await {
                Ok(()) => (None, r.problems.clone(), Ok(())),
                Err(e) => (
                    Some((
                        "PublishFailed",
                        format!("writing the DNSEndpoint: {}", crate::kube::Brief(&e)),
                    )),
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
    async fn write_status<K, S>(
        &self,
        rec: &K,
        before: &[Condition],
        after: &[Condition],
        changed: bool,
        status: &S,
    ) -> Result<(), DnsError>
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
        let ns = rec.meta().namespace.clone().unwrap_or_default();
        let name = rec.meta().name.clone().unwrap_or_default();
        let api: Api<K> = Api::namespaced(self.host.clone(), &ns);
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"status": status})),
        )
        .await
        .map_err(DnsError::WriteStatus)?;
        let kind = K::kind(&());
        self.metrics
            .writes
            .with_label_values(&[&format!("{kind}/status")])
            .inc();
        self.announce(rec, before, after).await;
        Ok(())
    }

    /// Writes the DNSEndpoint (and its ExternalDNS copy) when it differs from the stored one.
    async fn write_endpoints(&self, r: Rendered) -> Result<(), kube::Error> {
        let desired = r.object;
        let ns = desired.namespace().unwrap_or_default();
        let name = desired.name_any();
        let current = self
            .index
            .endpoints
            .store()
            .get(&ObjectRef::new(&name).within(&ns));
        let count = |o: &DNSEndpoint| {
            o.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ENDPOINT_COUNT_ANNOTATION))
                .cloned()
        };
        let same = current.as_ref().is_some_and(|c| {
            c.spec == desired.spec
                && c.metadata.owner_references == desired.metadata.owner_references
                && count(c) == count(&desired)
        });
        if !same {
            let api: Api<DNSEndpoint> = Api::namespaced(self.host.clone(), &ns);
            let mut doc = serde_json::to_value(&desired).expect("a DNSEndpoint serialises");
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
        if self.externaldns_crd.load(Ordering::Acquire) {
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

    /// Deletes a DNSEndpoint (and its ExternalDNS copy) whose owning record is known to
    /// be gone: the record store has listed and holds no record of that name.
    async fn collect_endpoint(&self, ep: &DNSEndpoint) -> Result<Action, DnsError> {
        let ns = ep.namespace().unwrap_or_default();
        let name = ep.name_any();
        let Some(owner) = record_owner(ep.metadata.owner_references.as_deref()) else {
            return Ok(Action::await_change());
        };
        let (records_ready, exists) = match owner.kind.as_str() {
            "ServiceDNSRecord" => (
                self.index.service_records.is_ready(),
                self.index
                    .service_records
                    .store()
                    .get(&ObjectRef::new(&owner.name).within(&ns))
                    .is_some(),
            ),
            _ => (
                self.index.ingress_records.is_ready(),
                self.index
                    .ingress_records
                    .store()
                    .get(&ObjectRef::new(&owner.name).within(&ns))
                    .is_some(),
            ),
        };
        if !records_ready || exists {
            return Ok(Action::await_change());
        }
        let delete = |r: Result<(), kube::Error>| match r {
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(source) => Err(DnsError::Delete {
                name: name.clone(),
                source,
            }),
            Ok(()) => Ok(()),
        };
        let api: Api<DNSEndpoint> = Api::namespaced(self.host.clone(), &ns);
        delete(
            api.delete(&name, &DeleteParams::default())
                .await
                .map(|_| ()),
        )?;
        info!(namespace = %ns, name = %name, "DNSEndpoint deleted with its record");
        if self.externaldns_crd.load(Ordering::Acquire) {
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.host.clone(), &ns, &externaldns_resource());
            match api.get_opt(&name).await {
                Ok(Some(c))
                    if record_owner(c.metadata.owner_references.as_deref())
                        .is_some_and(|o| o.kind == owner.kind && o.name == owner.name) =>
                {
                    delete(
                        api.delete(&name, &DeleteParams::default())
                            .await
                            .map(|_| ()),
                    )?
                }
                Ok(_) => {}
                Err(source) => {
                    return Err(DnsError::Delete {
                        name: format!("{name} (externaldns.k8s.io)"),
                        source,
                    });
                }
            }
        }
        Ok(Action::await_change())
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

/// The ServiceDNSRecord or IngressDNSRecord among an object's owners.
fn record_owner(refs: Option<&[OwnerReference]>) -> Option<&OwnerReference> {
    refs?.iter().find(|o| {
        o.api_version == crate::api::multiclusterdns::API_VERSION
            && matches!(o.kind.as_str(), "ServiceDNSRecord" | "IngressDNSRecord")
    })
}

/// Retry a refused publish; re-resolve load balancer hostnames now and then.
fn outcome(
    published: Result<(), kube::Error>,
    hostnames: &BTreeSet<String>,
) -> Result<Action, DnsError> {
    published.map_err(DnsError::Publish)?;
    Ok(if hostnames.is_empty() {
        Action::await_change()
    } else {
        Action::requeue(HOSTNAME_REFRESH)
    })
}

/// Any endpoint of any EndpointSlice of the Service that is not explicitly not ready. The
/// registry's slice index names the Service's slices, so this costs their number, not
/// the member's.
fn has_ready_endpoints(
    registry: &ClusterRegistry,
    cluster: &str,
    slices: &Store<EndpointSlice>,
    ns: &str,
    service: &str,
) -> bool {
    registry
        .slices_of(cluster, ns, service)
        .iter()
        .filter_map(|name| slices.get(&ObjectRef::new(name).within(ns)))
        .any(|s| {
            s.endpoints
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
