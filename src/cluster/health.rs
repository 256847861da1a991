//! Cluster health and topology as pure functions: probe results through KubeFed's
//! thresholds into `Ready`/`Offline` conditions, node labels into region and zones, and
//! the decision whether the stored status needs a write at all.
//!
//! Conditions follow KubeFed (`ClusterReady`, `ClusterNotReady`, `ClusterReachable`,
//! `ClusterNotReachable`), with one addition: an unreachable cluster also gets
//! `Ready=False` (reason `ClusterNotReachable`) so `kubectl get kubefedclusters` shows
//! READY False instead of an empty column.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::api::core::{
    ClusterCondition, ConditionStatus, KubeFedClusterStatus, KubeFedConfigSpec, cluster_condition,
};

pub const LABEL_REGION: &str = "topology.kubernetes.io/region";
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";
pub const LABEL_REGION_BETA: &str = "failure-domain.beta.kubernetes.io/region";
pub const LABEL_ZONE_BETA: &str = "failure-domain.beta.kubernetes.io/zone";

/// Probe settings (KubeFedConfig `spec.clusterHealthCheck`, KubeFed's defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthConfig {
    pub period: Duration,
    pub timeout: Duration,
    pub failure_threshold: u32,
    pub success_threshold: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(3),
            failure_threshold: 3,
            success_threshold: 1,
        }
    }
}

impl HealthConfig {
    pub fn from_spec(spec: Option<&KubeFedConfigSpec>) -> Self {
        let d = HealthConfig::default();
        let Some(c) = spec.and_then(|s| s.cluster_health_check.as_ref()) else {
            return d;
        };
        HealthConfig {
            period: c
                .period
                .as_deref()
                .and_then(parse_go_duration)
                .filter(|p| !p.is_zero())
                .unwrap_or(d.period),
            timeout: c
                .timeout
                .as_deref()
                .and_then(parse_go_duration)
                .filter(|p| !p.is_zero())
                .unwrap_or(d.timeout),
            failure_threshold: c
                .failure_threshold
                .and_then(|v| u32::try_from(v).ok())
                .filter(|v| *v > 0)
                .unwrap_or(d.failure_threshold),
            success_threshold: c
                .success_threshold
                .and_then(|v| u32::try_from(v).ok())
                .filter(|v| *v > 0)
                .unwrap_or(d.success_threshold),
        }
    }
}

/// Parses a Go `time.Duration` string (`10s`, `1m30s`, `500ms`, `1.5h`).
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_len..];
    }
    Some(Duration::from_secs_f64(total))
}

/// One `/healthz` probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// Answered `ok`.
    Ok,
    /// Answered, but not `ok` (the body or status).
    NotOk(String),
    /// No answer (connection refused, TLS, timeout, ...).
    Unreachable(String),
}

/// What the status says about a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Ready,
    NotReady,
    Offline,
}

impl Probe {
    fn health(&self) -> Health {
        match self {
            Probe::Ok => Health::Ready,
            Probe::NotOk(_) => Health::NotReady,
            Probe::Unreachable(_) => Health::Offline,
        }
    }
}

/// Consecutive probe results of one cluster; reports a new health only once the
/// thresholds are met (a healthy cluster turns unhealthy after `failure_threshold`
/// failures in a row, and back after `success_threshold` successes).
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    current: Option<Health>,
    streak: u32,
    last_message: String,
}

impl Tracker {
    /// Starts from what the stored status says, so a restart changes nothing.
    pub fn from_status(status: Option<&KubeFedClusterStatus>) -> Self {
        Tracker {
            current: status.and_then(health_of),
            streak: 0,
            last_message: String::new(),
        }
    }

    pub fn current(&self) -> Option<Health> {
        self.current
    }

    /// Records a probe and returns the health the status should show.
    pub fn observe(&mut self, probe: &Probe, cfg: &HealthConfig) -> Health {
        let seen = probe.health();
        self.last_message = match probe {
            Probe::Ok => String::new(),
            Probe::NotOk(m) | Probe::Unreachable(m) => m.clone(),
        };
        let Some(current) = self.current else {
            self.current = Some(seen);
            return seen;
        };
        if seen == current {
            self.streak = 0;
            return current;
        }
        self.streak += 1;
        let needed = if seen == Health::Ready {
            cfg.success_threshold
        } else {
            cfg.failure_threshold
        };
        if self.streak >= needed {
            self.current = Some(seen);
            self.streak = 0;
        }
        self.current.expect("set above")
    }

    /// Detail of the last failed probe, for the condition message.
    pub fn last_message(&self) -> &str {
        &self.last_message
    }
}

/// The health a stored status shows, if any.
pub fn health_of(status: &KubeFedClusterStatus) -> Option<Health> {
    let cond = |t: &str| {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == t)
            .map(|c| c.status)
    };
    match (
        cond(cluster_condition::READY),
        cond(cluster_condition::OFFLINE),
    ) {
        (_, Some(ConditionStatus::True)) => Some(Health::Offline),
        (Some(ConditionStatus::True), _) => Some(Health::Ready),
        (Some(ConditionStatus::False), _) => Some(Health::NotReady),
        _ => None,
    }
}

/// Region and zones of a cluster from its nodes' labels. Zones: every zone of any node,
/// sorted. Region: the most common one (ties: the first by name); nodes rarely disagree.
pub fn topology<'a>(nodes: impl IntoIterator<Item = &'a Node>) -> (Option<String>, Vec<String>) {
    let mut regions: BTreeMap<String, usize> = BTreeMap::new();
    let mut zones = std::collections::BTreeSet::new();
    for node in nodes {
        let Some(labels) = node.metadata.labels.as_ref() else {
            continue;
        };
        let get = |ga: &str, beta: &str| {
            labels
                .get(ga)
                .or_else(|| labels.get(beta))
                .filter(|v| !v.is_empty())
                .cloned()
        };
        if let Some(r) = get(LABEL_REGION, LABEL_REGION_BETA) {
            *regions.entry(r).or_default() += 1;
        }
        if let Some(z) = get(LABEL_ZONE, LABEL_ZONE_BETA) {
            zones.insert(z);
        }
    }
    let region = regions
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
        .map(|(r, _)| r.clone());
    (region, zones.into_iter().collect())
}

/// What a cluster's status should become, or `None` when the stored one already says it
/// and its `lastProbeTime` is younger than `probe_refresh` (no write storm: conditions
/// carry transition times, and the probe time is refreshed only now and then).
pub fn desired_status(
    current: Option<&KubeFedClusterStatus>,
    health: Health,
    detail: &str,
    topology: (Option<String>, Vec<String>),
    now: Timestamp,
    probe_refresh: Duration,
) -> Option<KubeFedClusterStatus> {
    let empty = KubeFedClusterStatus::default();
    let current = current.unwrap_or(&empty);
    let detail = |base: &str| {
        if detail.is_empty() {
            base.to_string()
        } else {
            format!("{base}: {detail}")
        }
    };
    let (ready, offline) = match health {
        Health::Ready => (
            (
                ConditionStatus::True,
                "ClusterReady",
                "/healthz responded with ok".to_string(),
            ),
            (
                ConditionStatus::False,
                "ClusterReachable",
                "cluster is reachable".to_string(),
            ),
        ),
        Health::NotReady => (
            (
                ConditionStatus::False,
                "ClusterNotReady",
                detail("/healthz responded without ok"),
            ),
            (
                ConditionStatus::False,
                "ClusterReachable",
                "cluster is reachable".to_string(),
            ),
        ),
        Health::Offline => (
            (
                ConditionStatus::False,
                "ClusterNotReachable",
                detail("cluster is not reachable"),
            ),
            (
                ConditionStatus::True,
                "ClusterNotReachable",
                detail("cluster is not reachable"),
            ),
        ),
    };
    let now_t = Time(now);
    let mk = |type_: &str, (status, reason, message): (ConditionStatus, &str, String)| {
        let prev = current.conditions.iter().find(|c| c.type_ == type_);
        let transition = match prev {
            Some(p) if p.status == status => p.last_transition_time.clone().or(Some(now_t.clone())),
            _ => Some(now_t.clone()),
        };
        ClusterCondition {
            type_: type_.to_string(),
            status,
            last_probe_time: now_t.clone(),
            last_transition_time: transition,
            reason: Some(reason.to_string()),
            message: Some(message),
        }
    };
    // An offline cluster keeps the topology it last reported: DNS keeps its entry.
    let (region, zones) = match health {
        Health::Offline => (current.region.clone(), current.zones.clone()),
        _ => topology,
    };
    let desired = KubeFedClusterStatus {
        conditions: vec![
            mk(cluster_condition::READY, ready),
            mk(cluster_condition::OFFLINE, offline),
        ],
        zones,
        region,
    };
    let same = |a: &ClusterCondition, b: &ClusterCondition| {
        a.type_ == b.type_ && a.status == b.status && a.reason == b.reason && a.message == b.message
    };
    let conditions_same = desired.conditions.len() == current.conditions.len()
        && desired
            .conditions
            .iter()
            .zip(&current.conditions)
            .all(|(a, b)| same(a, b));
    let fresh = current
        .conditions
        .iter()
        .all(|c| now.duration_since(c.last_probe_time.0).unsigned_abs() < probe_refresh);
    if conditions_same
        && desired.zones == current.zones
        && desired.region == current.region
        && fresh
    {
        return None;
    }
    if conditions_same {
        // Keep transition times exactly; only the probe time and topology move.
        let mut d = desired;
        for (c, old) in d.conditions.iter_mut().zip(&current.conditions) {
            c.last_transition_time = old.last_transition_time.clone();
        }
        return Some(d);
    }
    Some(desired)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn cfg() -> HealthConfig {
        HealthConfig::default()
    }

    fn node(labels: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_go_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration("s"), None);
    }

    #[test]
    fn first_probe_is_taken_at_once() {
        let mut t = Tracker::default();
        assert_eq!(
            t.observe(&Probe::Unreachable("refused".into()), &cfg()),
            Health::Offline
        );
    }

    #[test]
    fn ready_cluster_goes_offline_only_after_failure_threshold() {
        let mut t = Tracker::default();
        t.observe(&Probe::Ok, &cfg());
        let down = Probe::Unreachable("connection refused".into());
        assert_eq!(t.observe(&down, &cfg()), Health::Ready);
        assert_eq!(t.observe(&down, &cfg()), Health::Ready);
        assert_eq!(t.observe(&down, &cfg()), Health::Offline);
        assert_eq!(t.last_message(), "connection refused");
        assert_eq!(
            t.observe(&Probe::Ok, &cfg()),
            Health::Ready,
            "success threshold 1"
        );
    }

    #[test]
    fn a_success_resets_the_failure_streak() {
        let mut t = Tracker::default();
        t.observe(&Probe::Ok, &cfg());
        let down = Probe::Unreachable("x".into());
        t.observe(&down, &cfg());
        t.observe(&down, &cfg());
        t.observe(&Probe::Ok, &cfg());
        assert_eq!(t.observe(&down, &cfg()), Health::Ready);
    }

    #[test]
    fn tracker_resumes_from_stored_status() {
        let st = desired_status(
            None,
            Health::Offline,
            "",
            (None, vec![]),
            ts(0),
            Duration::from_secs(300),
        )
        .unwrap();
        let t = Tracker::from_status(Some(&st));
        assert_eq!(t.current(), Some(Health::Offline));
    }

    #[test]
    fn config_defaults_and_overrides() {
        assert_eq!(HealthConfig::from_spec(None), cfg());
        let spec: KubeFedConfigSpec = serde_json::from_value(serde_json::json!({
            "scope": "Namespaced",
            "clusterHealthCheck": {"period": "1s", "failureThreshold": 2, "timeout": "500ms"}
        }))
        .unwrap();
        let c = HealthConfig::from_spec(Some(&spec));
        assert_eq!(c.period, Duration::from_secs(1));
        assert_eq!(c.failure_threshold, 2);
        assert_eq!(c.success_threshold, 1);
        assert_eq!(c.timeout, Duration::from_millis(500));
    }

    #[test]
    fn topology_prefers_ga_labels_and_falls_back_to_beta() {
        let nodes = [
            node(&[(LABEL_REGION, "eu"), (LABEL_ZONE, "eu-b")]),
            node(&[(LABEL_REGION_BETA, "eu"), (LABEL_ZONE_BETA, "eu-a")]),
            node(&[]),
        ];
        assert_eq!(
            topology(&nodes),
            (Some("eu".into()), vec!["eu-a".into(), "eu-b".into()])
        );
        assert_eq!(topology(&[] as &[Node]), (None, vec![]));
    }

    #[test]
    fn ready_status_has_kubefed_conditions() {
        let st = desired_status(
            None,
            Health::Ready,
            "",
            (Some("r".into()), vec!["z".into()]),
            ts(0),
            Duration::from_secs(300),
        )
        .unwrap();
        let ready = &st.conditions[0];
        assert_eq!(
            (ready.type_.as_str(), ready.status),
            ("Ready", ConditionStatus::True)
        );
        assert_eq!(ready.reason.as_deref(), Some("ClusterReady"));
        assert_eq!(ready.message.as_deref(), Some("/healthz responded with ok"));
        assert_eq!(st.conditions[1].status, ConditionStatus::False);
        assert_eq!(st.region.as_deref(), Some("r"));
    }

    #[test]
    fn unchanged_status_is_not_rewritten_until_probe_refresh() {
        let refresh = Duration::from_secs(300);
        let topo = || (Some("r".to_string()), vec!["z".to_string()]);
        let st = desired_status(None, Health::Ready, "", topo(), ts(0), refresh).unwrap();
        assert_eq!(
            desired_status(Some(&st), Health::Ready, "", topo(), ts(10), refresh),
            None
        );
        let refreshed =
            desired_status(Some(&st), Health::Ready, "", topo(), ts(301), refresh).unwrap();
        assert_eq!(
            refreshed.conditions[0].last_transition_time,
            st.conditions[0].last_transition_time
        );
        assert_eq!(refreshed.conditions[0].last_probe_time, Time(ts(301)));
    }

    #[test]
    fn topology_change_is_written_with_transition_times_kept() {
        let refresh = Duration::from_secs(300);
        let st = desired_status(
            None,
            Health::Ready,
            "",
            (Some("r".into()), vec![]),
            ts(0),
            refresh,
        )
        .unwrap();
        let moved = desired_status(
            Some(&st),
            Health::Ready,
            "",
            (Some("r2".into()), vec!["z".into()]),
            ts(5),
            refresh,
        )
        .unwrap();
        assert_eq!(moved.region.as_deref(), Some("r2"));
        assert_eq!(moved.conditions[0].last_transition_time, Some(Time(ts(0))));
    }

    #[test]
    fn offline_keeps_topology_and_marks_transition() {
        let refresh = Duration::from_secs(300);
        let st = desired_status(
            None,
            Health::Ready,
            "",
            (Some("r".into()), vec!["z".into()]),
            ts(0),
            refresh,
        )
        .unwrap();
        let off = desired_status(
            Some(&st),
            Health::Offline,
            "connection refused",
            (None, vec![]),
            ts(30),
            refresh,
        )
        .unwrap();
        assert_eq!(off.region.as_deref(), Some("r"));
        assert_eq!(off.zones, vec!["z".to_string()]);
        let ready = &off.conditions[0];
        assert_eq!(
            (ready.status, ready.reason.as_deref()),
            (ConditionStatus::False, Some("ClusterNotReachable"))
        );
        assert_eq!(ready.last_transition_time, Some(Time(ts(30))));
        assert_eq!(
            off.conditions[1].message.as_deref(),
            Some("cluster is not reachable: connection refused")
        );
        assert_eq!(health_of(&off), Some(Health::Offline));
    }
}
