//! Leader election with a `coordination.k8s.io/v1` Lease, so that two controller-managers
//! never both act. Acquire and renew are optimistic-concurrency updates on the Lease's
//! resourceVersion; a holder that has not renewed for `lease_duration` is replaced.
//! Losing the lease (no successful renew within `renew_deadline`) is reported to the
//! caller, which stops acting at once, as client-go's elector does.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

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

pub struct LeaderElector {
    api: Api<Lease>,
    cfg: LeaderConfig,
}

impl LeaderElector {
    pub fn new(client: kube::Client, cfg: LeaderConfig) -> Self {
        LeaderElector {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
        }
    }

    /// Blocks until this process holds the lease (or `cancel`).
    pub async fn acquire(&self, cancel: &CancellationToken) -> bool {
        let mut announced = None;
        loop {
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Held) => {
                    info!(lease = %self.cfg.name, identity = %self.cfg.identity, "acquired leadership");
                    return true;
                }
                Ok(Attempt::Other(holder)) => {
                    if announced.as_ref() != Some(&holder) {
                        info!(lease = %self.cfg.name, holder = %holder, "waiting for leadership");
                        announced = Some(holder);
                    }
                }
                Err(e) => warn!(error = %e, "leader election attempt failed"),
            }
            tokio::select! {
                _ = cancel.cancelled() => return false,
                _ = tokio::time::sleep(self.cfg.retry_period) => {}
            }
        }
    }

    /// Renews every retry period until `cancel` (returns `true`: stopped on purpose) or
    /// until a renewal has not succeeded within the renew deadline (returns `false`).
    pub async fn hold(&self, cancel: &CancellationToken) -> bool {
        let mut last_renew = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return true,
                _ = tokio::time::sleep(self.cfg.retry_period) => {}
            }
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Held) => last_renew = tokio::time::Instant::now(),
                Ok(Attempt::Other(holder)) => {
                    warn!(holder = %holder, "lost leadership to another holder");
                    return false;
                }
                Err(e) => warn!(error = %e, "renewing the lease failed"),
            }
            if last_renew.elapsed() > self.cfg.renew_deadline {
                warn!("could not renew the lease within the renew deadline");
                return false;
            }
        }
    }

    /// Gives the lease up so that a standby takes over at once (graceful shutdown).
    pub async fn release(&self) {
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
                    warn!(error = %e, "releasing the lease");
                }
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
                Ok(_) => Ok(Attempt::Held),
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    Ok(Attempt::Other("(just created by another)".into()))
                }
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let mine = holder.as_deref() == Some(self.cfg.identity.as_str());
        if !mine && let Some(h) = &holder {
            let duration =
                Duration::from_secs(spec.lease_duration_seconds.unwrap_or(secs).max(1) as u64);
            let renewed = spec
                .renew_time
                .as_ref()
                .map(|t| t.0)
                .unwrap_or(Timestamp::UNIX_EPOCH);
            let age = now.duration_since(renewed);
            if age.unsigned_abs() < duration && age.is_positive() {
                return Ok(Attempt::Other(h.clone()));
            }
        }
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
            Ok(_) => Ok(Attempt::Held),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                Ok(Attempt::Other(holder.unwrap_or_default()))
            }
            Err(e) => Err(e),
        }
    }
}
