//! The `kubefed` command line: one subcommand per verb of `../shared/SPEC.md` §6. Each
//! subcommand parses its flags here and calls into the library.

mod controller_manager;
mod crds;
mod demo;
mod dns_server;
mod enable;
mod federate;
mod join;
mod render;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "kubefed",
    version,
    about = "Kubernetes Cluster Federation centred on multi-cluster DNS"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug)]
pub struct GlobalOpts {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "KUBEFED_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax), e.g. `info,kubefed=debug`.
    #[arg(long, global = true, default_value = "info", env = "KUBEFED_LOG")]
    pub log: String,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the controllers (cluster health, sync, DNS) against a host cluster.
    ControllerManager(controller_manager::ControllerManagerArgs),
    /// Serve the skydns records of an etcd prefix as an authoritative DNS server.
    DnsServer(dns_server::DnsServerArgs),
    /// Register a member cluster with the control plane.
    Join(join::JoinArgs),
    /// Remove a member cluster from the control plane.
    Unjoin(join::JoinArgs),
    /// Enable propagation of a Kubernetes type (creates `Federated<Kind>` and its FederatedTypeConfig).
    Enable(enable::EnableArgs),
    /// Disable propagation of a federated type.
    Disable(enable::DisableArgs),
    /// Wrap an existing object into its `Federated<Kind>`.
    Federate(federate::FederateArgs),
    /// Print, offline, the DNSEndpoints that the records in a file produce.
    Render(render::RenderArgs),
    /// Print the CustomResourceDefinitions of every kubefed API (or write them to a directory).
    Crds(crds::CrdsArgs),
    /// Run a local federation of real API servers (up/down).
    Demo(demo::DemoArgs),
}

pub fn init_tracing(opts: &GlobalOpts) {
    let filter = tracing_subscriber::EnvFilter::try_new(&opts.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal: logs redirected to files stay greppable.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match opts.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Crds(args) => crds::run(args),
        Command::Demo(args) => demo::run(args).await,
        Command::ControllerManager(args) => controller_manager::run(args).await,
        Command::DnsServer(args) => dns_server::run(args).await,
        Command::Join(args) => join::run_join(args).await,
        Command::Unjoin(args) => join::run_unjoin(args).await,
        Command::Enable(args) => enable::run_enable(args).await,
        Command::Disable(args) => enable::run_disable(args).await,
        Command::Federate(args) => federate::run(args).await,
        Command::Render(args) => render::run(args),
    }
}

/// The state directory flag shared by the demo subcommands.
#[derive(Args, Debug, Clone)]
pub struct StateDir {
    /// Directory holding `kubeconfig` and `state.json` of the local federation.
    #[arg(long, default_value = ".cache/demo")]
    pub state_dir: PathBuf,
}
