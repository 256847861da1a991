//! The core sync engine's rules: which clusters a `Federated<Kind>` goes to, what object
//! each of them gets, which member-owned fields survive an update, how a
//! ReplicaSchedulingPreference spreads replicas, and how a type is enabled.
//!
//! ```text
//!  Federated<Kind> ──spec.placement──► placement::selected_clusters ──► {cluster}
//!        │                                  (+ FederatedNamespace, readiness split)
//!        ├─spec.overrides──► overrides::overrides_by_cluster ──► [ClusterOverride]
//!        │                                                          │
//!        └─spec.template──► desired::desired_object(fed, target, overrides, member obj)
//!                               template → identity → retain::retain_cluster_fields
//!                               → overrides::apply_overrides → managed label
//!
//!  ReplicaSchedulingPreference + Ready clusters + member replica state
//!        ──► scheduling::schedule ──► scheduling::apply_schedule (placement + /spec/replicas overrides)
//!
//!  `kubefed enable/disable` ──► typeconfig (discovery match, FTC + CRD objects)
//!  `kubefed federate`       ──► federate (object → Federated<Kind>)
//! ```
//!
//! Everything here is pure: borrowed JSON in,
//! values or a `thiserror` error out; no client, no clock (`now` is passed in). The sync
//! controller (reconcile loop, dispatch, status) and the CLI (`cli::enable`,
//! `cli::federate`, which do the requests) call these functions; see `docs/sync.md`.

pub mod desired;
pub mod federate;
pub mod overrides;
pub mod placement;
pub mod retain;
pub mod scheduling;
pub mod typeconfig;
