//! `kubefed demo up|down`: a local federation of real API servers left running for a
//! shell session, described by `DIR/state.json` and `DIR/kubeconfig`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::StateDir;
use crate::api;
use crate::localup::{self, Lifetime, LocalFederation, Options};

#[derive(Args, Debug)]
pub struct DemoArgs {
    #[command(subcommand)]
    pub command: Option<DemoCommand>,
    /// Directory for the demo federation's state (without a subcommand).
    #[arg(long, default_value = ".cache/demo")]
    pub state_dir: PathBuf,
    /// Check the DNS answers, tear everything down and exit 0 (all as expected) or 1.
    #[arg(long)]
    pub once: bool,
    /// Where examples/domain.yaml and examples/servicednsrecord.yaml are.
    #[arg(long, default_value = "examples")]
    pub examples_dir: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum DemoCommand {
    /// Start etcd and one kube-apiserver per cluster and leave them running.
    Up {
        #[command(flatten)]
        dir: StateDir,
        /// Number of clusters (`cluster1` is the host).
        #[arg(long, default_value_t = 3)]
        clusters: usize,
    },
    /// Stop the processes of a federation started with `demo up`.
    Down {
        #[command(flatten)]
        dir: StateDir,
    },
    /// Print the kubeconfig contexts of the federation, one per line (host first).
    Contexts {
        #[command(flatten)]
        dir: StateDir,
    },
}

pub async fn run(args: DemoArgs, log_file: Option<PathBuf>) -> anyhow::Result<()> {
    match args.command {
        None => {
            let shutdown = tokio_util::sync::CancellationToken::new();
            let s = shutdown.clone();
            tokio::spawn(async move {
                crate::controller_manager::signalled().await;
                s.cancel();
            });
            crate::demo::run(
                crate::demo::DemoOptions {
                    state_dir: args.state_dir,
                    once: args.once,
                    examples_dir: args.examples_dir,
                    log_file,
                },
                shutdown,
            )
            .await
        }
        Some(DemoCommand::Up { dir, clusters }) => up(dir, clusters).await,
        Some(DemoCommand::Contexts { dir }) => {
            let state = localup::State::load(&dir.state_dir)?;
            for c in &state.clusters {
                println!("{}", c.context);
            }
            Ok(())
        }
        Some(DemoCommand::Down { dir }) => {
            let stopped = localup::stop_state_dir(&dir.state_dir).with_context(|| {
                format!("stopping the federation in {}", dir.state_dir.display())
            })?;
            println!("stopped {} processes", stopped.len());
            Ok(())
        }
    }
}

async fn up(dir: StateDir, clusters: usize) -> anyhow::Result<()> {
    anyhow::ensure!(clusters >= 1, "--clusters must be at least 1");
    if let Ok(state) = localup::State::load(&dir.state_dir)
        && (state.etcd.pid.is_some() || state.clusters.iter().any(|c| c.pid.is_some()))
    {
        anyhow::bail!(
            "{} already holds a running federation: run `kubefed demo down --state-dir {}` first",
            dir.state_dir.display(),
            dir.state_dir.display()
        );
    }
    println!(
        "==> starting etcd and {clusters} kube-apiserver{} in {}",
        if clusters == 1 { "" } else { "s" },
        dir.state_dir.display()
    );
    let mut opts = Options::new(&dir.state_dir, clusters);
    opts.lifetime = Lifetime::Detached;
    let fed = LocalFederation::start(opts)
        .await
        .context("starting the local federation")?;
    // Leave a usable host: the kubefed namespace and the CRDs, as a control plane install would.
    println!(
        "==> installing the namespace {} and the kubefed CRDs on {}",
        api::DEFAULT_KUBEFED_NAMESPACE,
        localup::cluster_name(0)
    );
    let host = fed.client(&localup::cluster_name(0)).await?;
    crate::kube::apply::ensure_namespace(&host, api::DEFAULT_KUBEFED_NAMESPACE).await?;
    crate::kube::apply::apply_crds(&host, &api::crds(), Duration::from_secs(60)).await?;
    let state = fed.detach();
    println!("kubeconfig: {}", state.kubeconfig.display());
    println!(
        "etcd:       {} (pid {})",
        state.etcd.url,
        state.etcd.pid.unwrap_or_default()
    );
    for c in &state.clusters {
        println!(
            "{:<10}  {}  (pid {})",
            c.context,
            c.api_url,
            c.pid.unwrap_or_default()
        );
    }
    println!(
        "host context: {}; stop with `kubefed demo down --state-dir {}`",
        state.clusters[0].context,
        dir.state_dir.display()
    );
    Ok(())
}
