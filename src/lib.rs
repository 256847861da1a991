//! kubefed: Kubernetes Cluster Federation (KubeFed v2 compatible) centred on
//! multi-cluster DNS.
//!
//! ```text
//!  member clusters                    host cluster (kube-federation-system)
//!  Services/Ingresses ──watch──►  ServiceDNSRecord / IngressDNSRecord status
//!  Nodes (region/zone)                     │ (pure record -> endpoints rules)
//!                                          ▼
//!                                     DNSEndpoint ──► ExternalDNS (CRD source)
//!                                          │
//!                                          ├──► skydns keys in etcd ──► CoreDNS / `kubefed dns-server`
//!                                          └──► in-process index ──► embedded DNS server
//!
//!  Federated<Kind> (+ placement, overrides, RSP) ──sync──► target objects in the members
//! ```
//!
//! The controller-manager runs every controller on one runtime (`kube::runtime::Controller`
//! with kubefed's error, backoff and metrics conventions, [`kube::controller`]), reading
//! one host index (one watch per host resource, [`host`]) and the registry's member
//! stores; each resource has one writer. See `docs/architecture.md`.
//!
//! Module map (dependencies point down the list; `api`, `federation`'s rules and
//! `dns::records` do no I/O):
//! - [`api`]: CRD types of every group, and the CRD generator behind `crds/`.
//! - [`kube`]: applying CRDs/YAML, shared watches and stores, the controller runtime,
//!   finding the kubeconfig as kubectl does, kube errors as one line.
//! - [`host`]: the host index every controller and the embedded DNS feed read.
//! - [`cluster`]: join/unjoin, member clients, health and the prober, the member registry.
//! - [`federation`]: the sync engine: pure placement, overrides, retention and replica
//!   rules, and the FederatedTypeConfig, sync and replica scheduling controllers.
//! - [`dns`]: record rules (pure), skydns codec/store/writer, the controllers, the server.
//! - [`controller_manager`]: wiring of the host index, leader election, registry and
//!   controllers.
//! - [`admin`]: /metrics, /healthz, /readyz, leader election, build and process metrics.
//! - [`localup`]: the local control plane (etcd + kube-apiservers) for tests and the demo.
//! - [`demo`]: the end-to-end multi-cluster DNS demo on a local federation.
//! - [`cli`]: the `kubefed` subcommands.

// kube-derive's repeated `printcolumn(name = .., type_ = ..)` attributes look like
// duplicates to this lint; they are separate columns.
#![allow(clippy::duplicated_attributes)]

pub mod admin;
pub mod api;
pub mod cli;
pub mod cluster;
pub mod controller_manager;
pub mod demo;
pub mod dns;
pub mod federation;
pub mod host;
pub mod kube;
pub mod localup;
