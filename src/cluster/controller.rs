//! The cluster health controller: probes every member's `/healthz` on the configured
//! period, applies KubeFed's thresholds, reads region/zones from the member's shared Node
//! store (so a node label change is written at once, by watch), and writes the
//! KubeFedCluster status only when `health::desired_status` says it changed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use prometheus::{GaugeVec, HistogramOpts, HistogramVec, Opts, Registry};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use super::health::{self, Health, HealthConfig, Probe, Tracker};
use super::registry::{ClusterRegistry, Member, RegistryEvent};
use crate::api::core::KubeFedCluster;

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

/// Runs until `cancel`: one probe task per connected member.
pub async fn run(
    registry: Arc<ClusterRegistry>,
    host: kube::Client,
    namespace: String,
    config: watch::Receiver<HealthConfig>,
    metrics: ClusterMetrics,
    cancel: CancellationToken,
) {
    let mut events = registry.subscribe();
    let mut tasks: BTreeMap<String, CancellationToken> = BTreeMap::new();
    let start = |member: Arc<Member>, tasks: &mut BTreeMap<String, CancellationToken>| {
        let token = member.cancel.child_token();
        if let Some(old) = tasks.insert(member.name.clone(), token.clone()) {
            old.cancel();
        }
        let span = info_span!("cluster_health", cluster = %member.name);
        tokio::spawn(
            probe_loop(
                registry.clone(),
                host.clone(),
                namespace.clone(),
                member,
                config.clone(),
                metrics.clone(),
                token,
            )
            .instrument(span),
        );
    };
    for m in registry.members() {
        start(m, &mut tasks);
    }
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => break,
            e = events.recv() => e,
        };
        match event {
            Ok(RegistryEvent::Connected(name)) => {
                if let Some(m) = registry.member(&name) {
                    start(m, &mut tasks);
                }
            }
            Ok(RegistryEvent::Removed(name)) => {
                if let Some(t) = tasks.remove(&name) {
                    t.cancel();
                }
                metrics.forget(&name);
            }
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                // Missed connects are recovered from the registry itself.
                for m in registry.members() {
                    if !tasks.contains_key(&m.name) {
                        start(m, &mut tasks);
                    }
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
        }
    }
    for t in tasks.into_values() {
        t.cancel();
    }
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

async fn probe_loop(
    registry: Arc<ClusterRegistry>,
    host: kube::Client,
    namespace: String,
    member: Arc<Member>,
    mut config: watch::Receiver<HealthConfig>,
    metrics: ClusterMetrics,
    cancel: CancellationToken,
) {
    let api: Api<KubeFedCluster> = Api::namespaced(host, &namespace);
    let name = member.name.clone();
    let mut current = match api.get_opt(&name).await {
        Ok(Some(c)) => c.status,
        Ok(None) => return,
        Err(e) => {
            warn!(error = %e, "reading the cluster's status");
            None
        }
    };
    let mut tracker = Tracker::from_status(current.as_ref());
    let nodes = registry.store::<Node>(&name);
    let mut events = registry.subscribe();
    loop {
        let cfg = *config.borrow_and_update();
        let started = Instant::now();
        let result = tokio::select! {
            _ = cancel.cancelled() => return,
            r = tokio::time::timeout(cfg.timeout, probe(&member.probe_client)) => r,
        };
        let result = result.unwrap_or_else(|_| Probe::Unreachable("timed out".into()));
        metrics
            .probe_seconds
            .with_label_values(&[&name])
            .observe(started.elapsed().as_secs_f64());
        let health = tracker.observe(&result, &cfg);
        debug!(probe = ?result, health = ?health, "probed");
        metrics
            .ready
            .with_label_values(&[&name])
            .set(if health == Health::Ready { 1.0 } else { 0.0 });
        metrics
            .offline
            .with_label_values(&[&name])
            .set(if health == Health::Offline { 1.0 } else { 0.0 });
        registry.set_ready(&name, health == Health::Ready);

        // Until the node store has listed once, keep the stored topology.
        let topo = match &nodes {
            Some(store)
                if health == Health::Ready
                    && futures::FutureExt::now_or_never(store.wait_until_ready()).is_some() =>
            {
                health::topology(store.state().iter().map(|n| n.as_ref()))
            }
            _ => {
                let c = current.as_ref();
                (
                    c.and_then(|c| c.region.clone()),
                    c.map(|c| c.zones.clone()).unwrap_or_default(),
                )
            }
        };
        let now = k8s_openapi::jiff::Timestamp::now();
        if let Some(desired) = health::desired_status(
            current.as_ref(),
            health,
            tracker.last_message(),
            topo,
            now,
            PROBE_TIME_REFRESH,
        ) {
            let patch = serde_json::json!({"status": desired});
            match api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(c) => {
                    if current.as_ref().and_then(health::health_of) != Some(health) {
                        info!(health = ?health, "cluster health changed");
                    }
                    current = c.status;
                }
                Err(e) => warn!(error = %e, "writing the cluster's status"),
            }
        }

        // Next probe after the period, or at once when a node of this cluster changes.
        let deadline = tokio::time::sleep(cfg.period);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = &mut deadline => break,
                _ = config.changed() => break,
                e = events.recv() => match e {
                    Ok(RegistryEvent::Object { cluster, kind, .. }) if cluster == name && kind == "Node" => {
                        // Let a burst of node events settle into one evaluation.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        break;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    _ => {}
                }
            }
        }
    }
}
