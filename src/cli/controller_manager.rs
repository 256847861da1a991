//! `kubefed controller-manager`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::api::DEFAULT_KUBEFED_NAMESPACE;
use crate::controller_manager::{self, Options};
use crate::dns::controllers::ExternalDnsCopy;

#[derive(Args, Debug)]
pub struct ControllerManagerArgs {
    /// Kubeconfig file of the host cluster (default: the files of $KUBECONFIG merged as
    /// kubectl does, ~/.kube/config, or the in-cluster service account).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Context of the host cluster in the kubeconfig.
    #[arg(long)]
    pub context: Option<String>,
    #[arg(long, default_value = DEFAULT_KUBEFED_NAMESPACE)]
    pub kubefed_namespace: String,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub metrics_listen: SocketAddr,
    /// Elect a leader through a Lease so only one instance acts.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    #[arg(long, default_value = "kubefed-controller-manager")]
    pub lease_name: String,
    /// Identity in the Lease (default: host name and PID).
    #[arg(long)]
    pub identity: Option<String>,
    /// Also write each DNSEndpoint as `externaldns.k8s.io/v1alpha1` (read by ExternalDNS
    /// v0.21 and later): where that CRD is installed (auto), always or never.
    #[arg(long, value_enum, default_value_t = ExternalDnsCopy::Auto)]
    pub externaldns_copy: ExternalDnsCopy,
    /// Also write every DNSEndpoint into this etcd (comma-separated URLs) in the skydns
    /// layout that CoreDNS's etcd plugin and `kubefed dns-server` serve.
    #[arg(long, value_delimiter = ',')]
    pub etcd_endpoints: Vec<String>,
    /// The skydns key prefix in etcd.
    #[arg(long, default_value = "/skydns")]
    pub etcd_prefix: String,
    #[command(flatten)]
    pub etcd_security: super::EtcdSecurityArgs,
    /// Serve the DNSEndpoint names in-process (no etcd) on this address, UDP and TCP;
    /// zones are the Domains' (plus --dns-zone).
    #[arg(long)]
    pub dns_listen: Option<SocketAddr>,
    /// An extra zone for --dns-listen (repeatable).
    #[arg(long = "dns-zone")]
    pub dns_zones: Vec<String>,
    /// Zone transfers, NOTIFY and TSIG of the --dns-listen server (as `dns-server`'s).
    #[command(flatten)]
    pub dns_xfr: super::dns_server::XfrArgs,
    /// Requests per second the controllers may send to the host API server (client-go's
    /// QPS; 0: no limit). Lease renewals are never limited.
    #[arg(long, default_value_t = 100)]
    pub kube_api_qps: u32,
    /// Requests the controllers may send at once above the QPS (client-go's burst).
    #[arg(long, default_value_t = 200)]
    pub kube_api_burst: u32,
}

pub async fn run(args: ControllerManagerArgs) -> anyhow::Result<()> {
    let identity = args.identity.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap_or_else(|_| "kubefed".into());
        format!("{}_{}", host.trim(), std::process::id())
    });
    let shutdown = CancellationToken::new();
    let s = shutdown.clone();
    tokio::spawn(async move {
        controller_manager::signalled().await;
        s.cancel();
    });
    controller_manager::run(
        Options {
            kubeconfig: args.kubeconfig,
            context: args.context,
            namespace: args.kubefed_namespace,
            metrics_listen: args.metrics_listen,
            leader_elect: args.leader_elect,
            lease_name: args.lease_name,
            identity,
            externaldns_copy: args.externaldns_copy,
            etcd_security: args.etcd_security.security(&args.etcd_endpoints)?,
            etcd_endpoints: args.etcd_endpoints,
            etcd_prefix: args.etcd_prefix,
            dns_listen: args.dns_listen,
            dns_zones: args.dns_zones,
            dns_xfr: Some(args.dns_xfr.config_unregistered()?),
            kube_api_qps: args.kube_api_qps,
            kube_api_burst: args.kube_api_burst,
        },
        shutdown,
    )
    .await
}
