//! `kubefed join` / `kubefed unjoin`.

use std::path::PathBuf;

use clap::Args;

use crate::api::DEFAULT_KUBEFED_NAMESPACE;
use crate::cluster::join::{self, JoinOptions};

#[derive(Args, Debug)]
pub struct JoinArgs {
    /// Name of the KubeFedCluster (an RFC 1123 label).
    pub name: String,
    /// Context of the cluster to join.
    #[arg(long)]
    pub cluster_context: String,
    /// Context of the host cluster, where the control plane runs.
    #[arg(long)]
    pub host_cluster_context: String,
    #[arg(long, default_value = DEFAULT_KUBEFED_NAMESPACE)]
    pub kubefed_namespace: String,
    /// Name of the Secret holding the member's token (default: the cluster name, or the
    /// Secret an existing KubeFedCluster already names).
    #[arg(long)]
    pub secret_name: Option<String>,
    /// Kubeconfig holding both contexts (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

impl JoinArgs {
    fn options(self) -> JoinOptions {
        JoinOptions {
            cluster: self.name,
            cluster_context: self.cluster_context,
            host_context: self.host_cluster_context,
            kubefed_namespace: self.kubefed_namespace,
            secret_name: self.secret_name,
            kubeconfig: self.kubeconfig,
        }
    }
}

pub async fn run_join(args: JoinArgs) -> anyhow::Result<()> {
    let opts = args.options();
    let c = join::join(&opts).await?;
    println!(
        "cluster {} joined: KubeFedCluster {}/{} -> {}",
        opts.cluster, opts.kubefed_namespace, opts.cluster, c.spec.api_endpoint
    );
    Ok(())
}

pub async fn run_unjoin(args: JoinArgs) -> anyhow::Result<()> {
    let opts = args.options();
    join::unjoin(&opts).await?;
    println!("cluster {} unjoined", opts.cluster);
    Ok(())
}
