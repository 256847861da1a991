//! The cluster health prober: a controller over the KubeFedClusters that probes each
//! member's `/healthz` every `clusterHealthCheck.period`, applies KubeFed's thresholds,
//! reads region and zones from the member's shared Node store (so a node label change is
//! written at once, by watch), and writes the KubeFedCluster status only when
//! `health::desired_status` says it changed, with an Event when the health changes.
//!
//! One reconcile is one probe, and the reconcile requeues itself for the next one:
//! clusters are probed concurrently, and a hung member costs its own probe timeout and
//! nothing else. A reconcile triggered between probes (its own status write, a node
//! change, a settings change) re-evaluates the status without probing, so the failure
//! and success thresholds count probes, not events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KEvent, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use prometheus::{GaugeVec, HistogramOpts, HistogramVec, Opts, Registry};
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::health::{self, Health, HealthConfig, Probe, Tracker};
use super::registry::{ClusterRegistry, RegistryEvent};
use crate::api::core::KubeFedCluster;
use crate::host::HostIndex;
use crate::kube::controller::{self, ControllerError, ControllerMetrics, Retry, Spec, Trigger};

/// How often an unchanged status gets its `lastProbeTime` refreshed.
pub const PROBE_TIME_REFRESH: Duration = Duration::from_secs(300);

#[derive(Clone)]
pub struct ClusterMetrics {
    ready: GaugeVec,
    offline: GaugeVec,
    probe_seconds: HistogramVec,
}

impl ClusterMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let ready = GaugeVec::new(
            Opts::new("kubefed_cluster_ready", "1 if the member cluster is Ready"),
            &["cluster"],
        )?;
        let offline = GaugeVec::new(
            Opts::new(
                "kubefed_cluster_offline",
                "1 if the member cluster is unreachable",
            ),
            &["cluster"],
        )?;
        let probe_seconds = HistogramVec::new(
            HistogramOpts::new(
                "kubefed_cluster_probe_duration_seconds",
                "Duration of /healthz probes",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["cluster"],
        )?;
        registry.register(Box::new(ready.clone()))?;
        registry.register(Box::new(offline.clone()))?;
        registry.register(Box::new(probe_seconds.clone()))?;
        Ok(ClusterMetrics {
            ready,
            offline,
            probe_seconds,
        })
    }

    fn forget(&self, cluster: &str) {
        let _ = self.ready.remove_label_values(&[cluster]);
        let _ = self.offline.remove_label_values(&[cluster]);
        let _ = self.probe_seconds.remove_label_values(&[cluster]);
    }
}

#[derive(Debug, Error)]
pub enum ProberError {
    #[error("the cluster has no client yet (its Secret is missing or invalid)")]
    NotConnected,
    #[error("writing the status: {}", crate::kube::Brief(.0))]
    WriteStatus(#[source] kube::Error),
}

impl ControllerError for ProberError {
    fn reason(&self) -> &'static str {
        match self {
            ProberError::NotConnected => "NotConnected",
            ProberError::WriteStatus(_) => "WriteStatus",
        }
    }
    fn retry(&self) -> Retry {
        match self {
            ProberError::NotConnected => Retry::Soon,
            ProberError::WriteStatus(_) => Retry::Backoff,
        }
    }
}

/// What the prober remembers of one cluster between reconciles.
struct ClusterState {
    tracker: Tracker,
    /// When the last probe finished, and what it made of the cluster.
    probed: Option<(Instant, Health)>,
}

struct Ctx {
    host: kube::Client,
    index: Arc<HostIndex>,
    registry: Arc<ClusterRegistry>,
    metrics: ClusterMetrics,
    recorder: Recorder,
    states: Mutex<HashMap<String, ClusterState>>,
}

/// Runs until `cancel`.
pub async fn run(
    index: Arc<HostIndex>,
    registry: Arc<ClusterRegistry>,
    host: kube::Client,
    identity: String,
    metrics: ClusterMetrics,
    controller_metrics: ControllerMetrics,
    cancel: CancellationToken,
) {
    registry.watch_kind::<Node>();
    let ns = index.namespace.clone();
    let cluster_ref = move |name: &str| ObjectRef::<KubeFedCluster>::new(name).within(&ns);
    let registry_triggers = registry.triggers(move |e| match e {
        RegistryEvent::Connected(c) => vec![Trigger::One(cluster_ref(c))],
        RegistryEvent::Object { cluster, kind, .. } | RegistryEvent::Relisted { cluster, kind }
            if kind == "Node" =>
        {
            vec![Trigger::One(cluster_ref(cluster))]
        }
        _ => vec![],
    });
    let spec = Spec {
        name: "cluster-health",
        source: index.clusters.clone(),
        triggers: vec![
            controller::self_triggers(&index.clusters),
            controller::all_on_change(&index.configs),
            registry_triggers,
        ],
        concurrency: 0,
    };
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(
            host.clone(),
            Reporter {
                controller: "kubefed-cluster-controller".into(),
                instance: Some(identity),
            },
        ),
        host,
        index,
        registry,
        metrics,
        states: Mutex::new(HashMap::new()),
    });
    let c = ctx.clone();
    controller::run(
        spec,
        controller_metrics,
        ctx,
        reconcile,
        move |_, name| {
            c.states.lock().unwrap().remove(name);
            c.metrics.forget(name);
        },
        cancel,
    )
    .await;
}

fn health_config(index: &HostIndex) -> HealthConfig {
    let cfg = index.kubefed_config().flatten();
    HealthConfig::from_spec(cfg.as_ref().map(|c| &c.spec))
}

async fn probe(client: &kube::Client) -> Probe {
    let req = match http::Request::get("/healthz").body(Vec::new()) {
        Ok(r) => r,
        Err(e) => return Probe::Unreachable(e.to_string()),
    };
    match client.request_text(req).await {
        Ok(body) if body.trim() == "ok" => Probe::Ok,
        Ok(body) => Probe::NotOk(body.chars().take(200).collect()),
        // An HTTP error status means the server answered: reachable but not healthy.
        Err(kube::Error::Api(s)) => Probe::NotOk(format!("{} {}", s.code, s.message)),
        Err(e) => Probe::Unreachable(short_error(&e)),
    }
}

/// The first line of an error chain without addresses that change between attempts,
/// so that a condition message does not flap.
fn short_error(e: &kube::Error) -> String {
    let s = e.to_string();
    if s.contains("Connection refused") || s.contains("connection refused") {
        "connection refused".into()
    } else if s.to_lowercase().contains("timed out") || s.to_lowercase().contains("timeout") {
        "timed out".into()
    } else {
        s.lines()
            .next()
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect()
    }
}

async fn reconcile(cluster: Arc<KubeFedCluster>, ctx: Arc<Ctx>) -> Result<Action, ProberError> {
    let name = cluster.name_any();
    let cfg = health_config(&ctx.index);
    let Some(member) = ctx.registry.member(&name) else {
        return Err(ProberError::NotConnected);
    };

    let due = {
        let mut states = ctx.states.lock().unwrap();
        let st = states.entry(name.clone()).or_insert_with(|| ClusterState {
            // From what the stored status says, so a restart changes nothing.
            tracker: Tracker::from_status(cluster.status.as_ref()),
            probed: None,
        });
        st.probed.is_none_or(|(at, _)| at.elapsed() >= cfg.period)
    };
    if due {
        let started = Instant::now();
        let result = tokio::time::timeout(cfg.timeout, probe(&member.probe_client))
            .await
            .unwrap_or_else(|_| Probe::Unreachable("timed out".into()));
        ctx.metrics
            .probe_seconds
            .with_label_values(&[&name])
            .observe(started.elapsed().as_secs_f64());
        let mut states = ctx.states.lock().unwrap();
        let st = states.get_mut(&name).expect("inserted above");
        let health = st.tracker.observe(&result, &cfg);
        debug!(cluster = %name, probe = ?result, health = ?health, "probed");
        st.probed = Some((Instant::now(), health));
    }
    let (health, message, next) = {
        let states = ctx.states.lock().unwrap();
        let st = states.get(&name).expect("inserted above");
        let (at, health) = st.probed.expect("probed above");
        (
            health,
            st.tracker.last_message().to_string(),
            cfg.period.saturating_sub(at.elapsed()),
        )
    };
    ctx.metrics
        .ready
        .with_label_values(&[&name])
        .set(if health == Health::Ready { 1.0 } else { 0.0 });
    ctx.metrics
        .offline
        .with_label_values(&[&name])
        .set(if health == Health::Offline { 1.0 } else { 0.0 });

    // Until the node store has listed once, keep the stored topology.
    let current = cluster.status.as_ref();
    let topo = match ctx.registry.store::<Node>(&name) {
        Some(store)
            if health == Health::Ready
                && futures::FutureExt::now_or_never(store.wait_until_ready()).is_some() =>
        {
            health::topology(store.state().iter().map(|n| n.as_ref()))
        }
        _ => (
            current.and_then(|c| c.region.clone()),
            current.map(|c| c.zones.clone()).unwrap_or_default(),
        ),
    };
    let now = k8s_openapi::jiff::Timestamp::now();
    if let Some(desired) =
        health::desired_status(current, health, &message, topo, now, PROBE_TIME_REFRESH)
    {
        let api: Api<KubeFedCluster> = Api::namespaced(ctx.host.clone(), &ctx.index.namespace);
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"status": desired})),
        )
        .await
        .map_err(ProberError::WriteStatus)?;
        let before = current.and_then(health::health_of);
        if before != Some(health) {
            info!(cluster = %name, health = ?health, "cluster health changed");
            announce(&ctx, &cluster, before, health, &message).await;
        }
    }
    Ok(Action::requeue(next.max(Duration::from_millis(100))))
}

/// An Event on the KubeFedCluster for a health transition.
async fn announce(
    ctx: &Ctx,
    cluster: &KubeFedCluster,
    before: Option<Health>,
    now: Health,
    detail: &str,
) {
    let (type_, reason, note) = match now {
        Health::Ready => (
            EventType::Normal,
            "ClusterReady",
            "the cluster's /healthz responded with ok".to_string(),
        ),
        Health::NotReady => (
            EventType::Warning,
            "ClusterNotReady",
            format!("the cluster's /healthz did not respond with ok: {detail}"),
        ),
        Health::Offline => (
            EventType::Warning,
            "ClusterOffline",
            format!("the cluster is not reachable: {detail}"),
        ),
    };
    // A new cluster becoming Ready is not news.
    if before.is_none() && now == Health::Ready {
        return;
    }
    let ev = KEvent {
        type_,
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: "Probe".into(),
        secondary: None,
    };
    if let Err(e) = ctx
        .recorder
        .publish(&ev, &kube::Resource::object_ref(cluster, &()))
        .await
    {
        debug!(error = %e, "publishing an event");
    }
}
