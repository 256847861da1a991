//! `kubefed join` / `kubefed unjoin`, with kubefedctl's flags and defaults.

use std::path::PathBuf;

use clap::Args;

use crate::api::DEFAULT_KUBEFED_NAMESPACE;
use crate::cluster::join::{self, JoinOptions, Joined, Unjoined};

/// Flags both commands take.
#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// Name of the KubeFedCluster (an RFC 1123 subdomain, e.g. `prod.eu`).
    pub name: String,
    /// Context of the cluster to join (default: the cluster name).
    #[arg(long)]
    pub cluster_context: Option<String>,
    /// Context of the host cluster, where the control plane runs (default: the current
    /// context).
    #[arg(long)]
    pub host_cluster_context: Option<String>,
    /// Name of the host cluster in the names of the member's ServiceAccount and RBAC
    /// objects (default: the host context). Needed when the context name is not a valid
    /// object name, e.g. an EKS ARN.
    #[arg(long)]
    pub host_cluster_name: Option<String>,
    #[arg(long, default_value = DEFAULT_KUBEFED_NAMESPACE)]
    pub kubefed_namespace: String,
    /// Name of the Secret holding the member's token (default: the cluster name, or the
    /// Secret an existing KubeFedCluster already names).
    #[arg(long)]
    pub secret_name: Option<String>,
    /// Kubeconfig file holding both contexts (default: the files of $KUBECONFIG merged as
    /// kubectl does, or ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Check the input and print what would be done, without contacting any server.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct JoinArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Fail, instead of updating it, when an object join creates already exists.
    #[arg(long)]
    pub error_on_existing: bool,
}

#[derive(Args, Debug)]
pub struct UnjoinArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Remove the cluster from the host even if its own objects cannot be deleted (an
    /// unreachable or already deleted member); what is left is named in a warning.
    #[arg(long)]
    pub force: bool,
}

impl ClusterArgs {
    fn options(self) -> JoinOptions {
        JoinOptions {
            cluster_context: self.cluster_context,
            host_context: self.host_cluster_context,
            host_cluster_name: self.host_cluster_name,
            kubefed_namespace: self.kubefed_namespace,
            secret_name: self.secret_name,
            kubeconfig: self.kubeconfig,
            dry_run: self.dry_run,
            ..JoinOptions::new(&self.name)
        }
    }
}

pub async fn run_join(args: JoinArgs) -> anyhow::Result<()> {
    let opts = JoinOptions {
        error_on_existing: args.error_on_existing,
        ..args.cluster.options()
    };
    match join::join(&opts).await? {
        Joined::Cluster(c) => println!(
            "cluster {} joined: KubeFedCluster {}/{} -> {}",
            opts.cluster, opts.kubefed_namespace, opts.cluster, c.spec.api_endpoint
        ),
        Joined::DryRun(plan) => println!("dry run: join would create\n{plan}"),
    }
    Ok(())
}

pub async fn run_unjoin(args: UnjoinArgs) -> anyhow::Result<()> {
    let opts = JoinOptions {
        force: args.force,
        ..args.cluster.options()
    };
    match join::unjoin(&opts).await? {
        Unjoined::Done => println!("cluster {} unjoined", opts.cluster),
        Unjoined::DryRun(plan) => println!("{plan}"),
        Unjoined::Forced(left) => {
            eprintln!("warning: {left}");
            println!("cluster {} unjoined (forced)", opts.cluster);
        }
    }
    Ok(())
}
