//! The core sync engine: which clusters a `Federated<Kind>` goes to, what object each of
//! them gets and which of its fields are the federation's, how a
//! ReplicaSchedulingPreference spreads replicas and how a type is enabled (the pure
//! rules), and the controllers that apply them (`supervisor`, `sync`, `rsp`).
//!
//! ```text
//!  FederatedTypeConfig ──supervisor──► one sync controller per enabled type
//!
//!  Federated<Kind> ──spec.placement──► placement::selected_clusters ──► {cluster}
//!        │                                  (+ FederatedNamespace, readiness split)
//!        ├─spec.overrides──► overrides::overrides_by_cluster ──► [ClusterOverride]
//!        │                                                          │
//!        └─spec.template──► desired::applied_object(fed, target, overrides, member obj)
//!                               template → identity → overrides::apply_overrides
//!                               → managed label → digest (server-side apply)
//!                                                          │
//!                                    sync: create / update / delete in each member,
//!                                    status::PropagationStatus on the federated object
//!
//!  ReplicaSchedulingPreference + Ready clusters + member replica state
//!        ──► scheduling::schedule ──► scheduling::apply_schedule (placement + /spec/replicas overrides)
//!        (rsp: the controller that writes it into the federated object)
//!
//!  `kubefed enable/disable` ──► typeconfig (discovery match, FTC + CRD objects)
//!  `kubefed federate`       ──► federate (object → Federated<Kind>)
//! ```
//!
//! The rules (`placement`, `overrides`, `desired`, `scheduling`, `status`,
//! `typeconfig`, `federate`) are pure: borrowed JSON in, values or a `thiserror` error
//! out; no client, no clock (`now` is passed in). The controllers read only the host
//! index and the registry's member stores and run on `crate::kube::controller`; the CLI
//! (`cli::enable`, `cli::federate`) does the requests of `typeconfig` and `federate`.
//! See `docs/sync.md`.

pub mod desired;
pub mod federate;
pub mod overrides;
pub mod placement;
pub mod rsp;
pub mod scheduling;
pub mod status;
pub mod supervisor;
pub mod sync;
pub mod typeconfig;
