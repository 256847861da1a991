//! The FederatedTypeConfig controller: one sync controller per enabled type, started,
//! restarted when the FederatedTypeConfig's spec changes and stopped when it is disabled
//! or deleted, and `status.propagationController` saying which.
//!
//! A deleted FederatedTypeConfig is never reconciled (it is not in the store any more),
//! so its controller is stopped from the runtime's "no longer in the store" callback, and
//! every reconcile also stops controllers whose FederatedTypeConfig has gone, in case
//! that callback was missed (a re-list after an outage).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use serde_json::json;
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span};

use super::sync::{self, SyncMetrics};
use crate::api::core::{
    ControllerStatus, FederatedTypeConfig, FederatedTypeConfigSpec, PropagationMode,
};
use crate::cluster::registry::ClusterRegistry;
use crate::host::HostIndex;
use crate::kube::controller::{self, ControllerError, ControllerMetrics, Spec};

#[derive(Debug, Error)]
pub enum SupervisorError {
    #[error("writing the FederatedTypeConfig status: {}", crate::kube::Brief(.0))]
    WriteStatus(#[source] kube::Error),
}

impl ControllerError for SupervisorError {
    fn reason(&self) -> &'static str {
        "WriteStatus"
    }
}

struct Running {
    spec: FederatedTypeConfigSpec,
    cancel: CancellationToken,
}

struct Ctx {
    host: kube::Client,
    index: Arc<HostIndex>,
    registry: Arc<ClusterRegistry>,
    recorder: Recorder,
    metrics: SyncMetrics,
    controller_metrics: ControllerMetrics,
    concurrency: u16,
    cancel: CancellationToken,
    running: Mutex<BTreeMap<String, Running>>,
}

impl Ctx {
    fn stop(&self, name: &str) {
        if let Some(r) = self.running.lock().unwrap().remove(name) {
            r.cancel.cancel();
            self.index
                .stop_federated(&r.spec.federated_type.to_dynamic());
        }
    }

    /// Stops controllers whose FederatedTypeConfig is gone.
    fn prune(&self) {
        let store = self.index.type_configs.store();
        let gone: Vec<String> = self
            .running
            .lock()
            .unwrap()
            .keys()
            .filter(|n| {
                store
                    .get(&ObjectRef::new(n).within(&self.index.namespace))
                    .is_none()
            })
            .cloned()
            .collect();
        for n in gone {
            info!(ftc = %n, "FederatedTypeConfig deleted");
            self.stop(&n);
        }
    }

    fn start(&self, ftc: &FederatedTypeConfig) {
        let name = ftc.name_any();
        let cancel = self.cancel.child_token();
        let span = info_span!("sync", kind = %ftc.spec.federated_type.kind);
        tokio::spawn(
            sync::run(
                ftc.clone(),
                self.index.clone(),
                self.registry.clone(),
                self.host.clone(),
                self.recorder.clone(),
                self.metrics.clone(),
                self.controller_metrics.clone(),
                self.concurrency,
                cancel.clone(),
            )
            .instrument(span),
        );
        self.running.lock().unwrap().insert(
            name,
            Running {
                spec: ftc.spec.clone(),
                cancel,
            },
        );
    }
}

/// Runs until `cancel`; `concurrency` bounds each type's reconciles.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    index: Arc<HostIndex>,
    registry: Arc<ClusterRegistry>,
    host: kube::Client,
    identity: String,
    metrics: SyncMetrics,
    controller_metrics: ControllerMetrics,
    concurrency: u16,
    cancel: CancellationToken,
) {
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(
            host.clone(),
            Reporter {
                controller: "kubefed-sync-controller".into(),
                instance: Some(identity),
            },
        ),
        host,
        index: index.clone(),
        registry,
        metrics,
        controller_metrics: controller_metrics.clone(),
        concurrency,
        cancel: cancel.clone(),
        running: Mutex::new(BTreeMap::new()),
    });
    let spec = Spec {
        name: "federatedtypeconfig",
        source: index.type_configs.clone(),
        triggers: vec![controller::self_triggers(&index.type_configs)],
        concurrency: 1,
    };
    let c = ctx.clone();
    controller::run(
        spec,
        controller_metrics,
        ctx.clone(),
        reconcile,
        move |_, name| c.stop(name),
        cancel,
    )
    .await;
    let names: Vec<String> = ctx.running.lock().unwrap().keys().cloned().collect();
    for n in names {
        ctx.stop(&n);
    }
}

async fn reconcile(
    ftc: Arc<FederatedTypeConfig>,
    ctx: Arc<Ctx>,
) -> Result<Action, SupervisorError> {
    ctx.prune();
    let name = ftc.name_any();
    let wanted = ftc.spec.propagation == PropagationMode::Enabled
        && ftc.metadata.deletion_timestamp.is_none();
    let current = ctx
        .running
        .lock()
        .unwrap()
        .get(&name)
        .map(|r| r.spec == ftc.spec);
    match (wanted, current) {
        (true, Some(true)) => {}
        (true, Some(false)) => {
            info!(ftc = %name, "FederatedTypeConfig changed; restarting its sync controller");
            ctx.stop(&name);
            ctx.start(&ftc);
        }
        (true, None) => ctx.start(&ftc),
        (false, Some(_)) => ctx.stop(&name),
        (false, None) => {}
    }
    let st = if wanted {
        ControllerStatus::Running
    } else {
        ControllerStatus::NotRunning
    };
    let generation = ftc.metadata.generation.unwrap_or(0);
    if ftc
        .status
        .as_ref()
        .map(|s| (s.propagation_controller, s.observed_generation))
        != Some((st, generation))
    {
        let patch =
            json!({"status": {"observedGeneration": generation, "propagationController": st}});
        Api::<FederatedTypeConfig>::namespaced(ctx.host.clone(), &ctx.index.namespace)
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map_err(SupervisorError::WriteStatus)?;
    }
    Ok(Action::await_change())
}
