//! Leader election with a `coordination.k8s.io/v1` Lease, so that two controller-managers
//! never both write. Acquire and renew are optimistic-concurrency updates on the Lease's
//! resourceVersion.
//!
//! Expiry is judged as client-go judges it: by this process's own clock, from the moment
//! it last *saw the lease record change*, never by comparing its clock with the holder's
//! `renewTime`. A holder whose clock runs ahead (a `renewTime` in the future) therefore
//! keeps its lease as long as it renews, and a holder that stopped renewing loses it
//! `leaseDurationSeconds` after its last observed renewal, whatever its timestamps say.
//! A fresh process has observed nothing, so it waits a full lease duration before it
//! takes over a lease that someone else holds.
//!
//! A standby follows the Lease by watch, so a released lease (graceful shutdown) is taken
//! over at once rather than at the next retry. Every attempt is bounded: renewing gives
//! up at the renew deadline even when the host does not answer at all, and the caller
//! stops its writers then, as client-go's elector does.

use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use prometheus::{IntGauge, Registry};
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

#[derive(Clone, Debug)]
pub struct LeaderConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl LeaderConfig {
    /// KubeFed's defaults: 15 s lease, 10 s renew deadline, 5 s retry.
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        LeaderConfig {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(5),
        }
    }
}

/// What one attempt found.
enum Attempt {
    Held,
    Other(String),
}

/// The parts of a lease record whose change counts as a sign of life of its holder.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Record {
    holder: Option<String>,
    duration: Option<i32>,
    acquire: Option<String>,
    renew: Option<String>,
    transitions: Option<i32>,
}

impl Record {
    fn of(spec: &LeaseSpec) -> Self {
        let t = |t: &Option<MicroTime>| t.as_ref().map(|t| t.0.to_string());
        Record {
            holder: spec.holder_identity.clone().filter(|h| !h.is_empty()),
            duration: spec.lease_duration_seconds,
            acquire: t(&spec.acquire_time),
            renew: t(&spec.renew_time),
            transitions: spec.lease_transitions,
        }
    }
}

/// Whether another holder's lease is still live: it changed less than its duration ago,
/// by our clock. Pure, for the tests beside it.
fn held_by_other(
    record: &Record,
    me: &str,
    observed_at: Instant,
    now: Instant,
    default_duration: Duration,
) -> Option<String> {
    let holder = record.holder.as_ref()?;
    if holder == me {
        return None;
    }
    let duration = record
        .duration
        .filter(|d| *d > 0)
        .map(|d| Duration::from_secs(d as u64))
        .unwrap_or(default_duration);
    (now.saturating_duration_since(observed_at) < duration).then(|| holder.clone())
}

pub struct LeaderElector {
    api: Api<Lease>,
    /// For the watch of the Lease (`api` bounds every request).
    watch_api: Api<Lease>,
    cfg: LeaderConfig,
    /// The last record seen and when (by our clock) it was first seen.
    observed: Mutex<Option<(Record, Instant)>>,
    leader: IntGauge,
}

impl LeaderElector {
    /// `client` bounds every request; `watch_client` is for the watch of the Lease.
    pub fn new(
        client: kube::Client,
        watch_client: kube::Client,
        cfg: LeaderConfig,
        registry: &Registry,
    ) -> prometheus::Result<Self> {
        let leader = IntGauge::new(
            "kubefed_leader",
            "1 while this controller-manager holds the leader Lease",
        )?;
        registry.register(Box::new(leader.clone()))?;
        Ok(LeaderElector {
            api: Api::namespaced(client, &cfg.namespace),
            watch_api: Api::namespaced(watch_client, &cfg.namespace),
            cfg,
            observed: Mutex::new(None),
            leader,
        })
    }

    /// Blocks until this process holds the lease (`true`) or `cancel` (`false`).
    pub async fn acquire(&self, cancel: &CancellationToken) -> bool {
        let cfg = watcher::Config::default().fields(&format!("metadata.name={}", self.cfg.name));
        let mut changes = std::pin::pin!(
            watcher::watcher(self.watch_api.clone(), cfg).backoff(crate::kube::watch::backoff())
        );
        let mut announced = None;
        loop {
            let attempt =
                tokio::time::timeout(self.cfg.renew_deadline, self.try_acquire_or_renew());
            match attempt.await {
                Ok(Ok(Attempt::Held)) => {
                    info!(lease = %self.cfg.name, identity = %self.cfg.identity, "acquired leadership");
                    self.leader.set(1);
                    return true;
                }
                Ok(Ok(Attempt::Other(holder))) => {
                    if announced.as_ref() != Some(&holder) {
                        info!(lease = %self.cfg.name, holder = %holder, "waiting for leadership");
                        announced = Some(holder);
                    }
                }
                Ok(Err(e)) => {
                    warn!(error = %crate::kube::Brief(&e), "leader election attempt failed")
                }
                Err(_) => warn!("leader election attempt timed out"),
            }
            let wait = tokio::time::sleep(self.cfg.retry_period);
            tokio::pin!(wait);
            // A change of the lease (a release above all) is acted on at once.
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return false,
                    _ = &mut wait => break,
                    e = changes.next() => match e {
                        Some(Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_))) => break,
                        Some(Err(e)) => debug!(error = %e, "watching the lease"),
                        Some(Ok(_)) => {}
                        None => std::future::pending::<()>().await,
                    }
                }
            }
        }
    }

    /// Renews every retry period until `cancel` (returns `true`: stopped on purpose) or
    /// until no renewal has succeeded within the renew deadline (returns `false`).
    pub async fn hold(&self, cancel: &CancellationToken) -> bool {
        let mut last_renew = Instant::now();
        let held = loop {
            tokio::select! {
                _ = cancel.cancelled() => break true,
                _ = tokio::time::sleep(self.cfg.retry_period) => {}
            }
            let deadline = last_renew + self.cfg.renew_deadline;
            let attempt = tokio::select! {
                _ = cancel.cancelled() => break true,
                a = tokio::time::timeout_at(deadline, self.try_acquire_or_renew()) => a,
            };
            match attempt {
                Ok(Ok(Attempt::Held)) => last_renew = Instant::now(),
                Ok(Ok(Attempt::Other(holder))) => {
                    warn!(holder = %holder, "lost leadership to another holder");
                    break false;
                }
                Ok(Err(e)) => warn!(error = %crate::kube::Brief(&e), "renewing the lease failed"),
                Err(_) => {}
            }
            if Instant::now() >= deadline {
                warn!("could not renew the lease within the renew deadline");
                break false;
            }
        };
        self.leader.set(0);
        held
    }

    /// Gives the lease up so that a standby takes over at once (graceful shutdown).
    pub async fn release(&self) {
        let release = async {
            if let Ok(Some(mut lease)) = self.api.get_opt(&self.cfg.name).await {
                let spec = lease.spec.get_or_insert_with(Default::default);
                if spec.holder_identity.as_deref() == Some(&self.cfg.identity) {
                    spec.holder_identity = None;
                    spec.acquire_time = None;
                    spec.renew_time = None;
                    if let Err(e) = self
                        .api
                        .replace(&self.cfg.name, &PostParams::default(), &lease)
                        .await
                    {
                        warn!(error = %crate::kube::Brief(&e), "releasing the lease");
                    }
                }
            }
        };
        if tokio::time::timeout(self.cfg.renew_deadline, release)
            .await
            .is_err()
        {
            warn!("releasing the lease timed out");
        }
        self.leader.set(0);
    }

    /// Notes `record` as seen now unless it is the one already seen; returns when it was
    /// first seen.
    fn observe(&self, record: &Record) -> Instant {
        let mut observed = self.observed.lock().unwrap();
        match &*observed {
            Some((r, at)) if r == record => *at,
            _ => {
                let now = Instant::now();
                *observed = Some((record.clone(), now));
                now
            }
        }
    }

    async fn try_acquire_or_renew(&self) -> Result<Attempt, kube::Error> {
        let now = Timestamp::now();
        let secs = self.cfg.lease_duration.as_secs().max(1) as i32;
        let Some(mut lease) = self.api.get_opt(&self.cfg.name).await? else {
            let lease: Lease = serde_json::from_value(json!({
                "metadata": {"name": self.cfg.name, "namespace": self.cfg.namespace},
                "spec": {
                    "holderIdentity": self.cfg.identity,
                    "leaseDurationSeconds": secs,
                    "acquireTime": MicroTime(now),
                    "renewTime": MicroTime(now),
                    "leaseTransitions": 0
                }
            }))
            .expect("lease literal");
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(l) => {
                    self.observe(&Record::of(&l.spec.unwrap_or_default()));
                    Ok(Attempt::Held)
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    Ok(Attempt::Other("(just created by another)".into()))
                }
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let record = Record::of(spec);
        let observed_at = self.observe(&record);
        if let Some(holder) = held_by_other(
            &record,
            &self.cfg.identity,
            observed_at,
            Instant::now(),
            self.cfg.lease_duration,
        ) {
            return Ok(Attempt::Other(holder));
        }
        let mine = record.holder.as_deref() == Some(self.cfg.identity.as_str());
        if !mine {
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(self.cfg.identity.clone());
        spec.lease_duration_seconds = Some(secs);
        spec.renew_time = Some(MicroTime(now));
        // replace() carries the resourceVersion: a concurrent writer makes this fail
        // with 409 instead of two holders.
        match self
            .api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await
        {
            Ok(l) => {
                self.observe(&Record::of(&l.spec.unwrap_or_default()));
                Ok(Attempt::Held)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                Ok(Attempt::Other(record.holder.unwrap_or_else(|| {
                    "(released, and just taken by another)".into()
                })))
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(holder: &str, renew: &str) -> Record {
        Record {
            holder: Some(holder.into()),
            duration: Some(15),
            acquire: None,
            renew: Some(renew.into()),
            transitions: Some(1),
        }
    }

    #[test]
    fn a_lease_is_live_for_its_duration_after_we_saw_it_change() {
        let t0 = Instant::now();
        let r = record("other", "2999-01-01T00:00:00Z");
        let d = Duration::from_secs(4);
        // A renewTime far in the future does not keep a silent holder for ever...
        assert_eq!(
            held_by_other(&r, "me", t0, t0 + Duration::from_secs(16), d),
            None
        );
        // ...and a renewTime in the past does not expire a holder we just saw renew.
        let past = record("other", "2000-01-01T00:00:00Z");
        assert_eq!(
            held_by_other(&past, "me", t0, t0 + Duration::from_secs(14), d),
            Some("other".into())
        );
    }

    #[test]
    fn our_own_or_an_empty_lease_is_free() {
        let t0 = Instant::now();
        assert_eq!(
            held_by_other(&record("me", "x"), "me", t0, t0, Duration::from_secs(15)),
            None
        );
        let released = Record {
            holder: None,
            ..record("x", "x")
        };
        assert_eq!(
            held_by_other(&released, "me", t0, t0, Duration::from_secs(15)),
            None
        );
    }

    #[test]
    fn a_lease_without_a_duration_uses_ours() {
        let t0 = Instant::now();
        let r = Record {
            duration: None,
            ..record("other", "x")
        };
        let ours = Duration::from_secs(4);
        assert!(held_by_other(&r, "me", t0, t0 + Duration::from_secs(3), ours).is_some());
        assert!(held_by_other(&r, "me", t0, t0 + Duration::from_secs(5), ours).is_none());
    }
}
