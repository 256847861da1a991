//! The `kubefed` command line: one subcommand per verb of `../shared/SPEC.md` §6. Each
//! subcommand parses its flags here and calls into the library.
//!
//! It also owns what every command shares at the process level: the log subscriber
//! ([`init_tracing`], [`log_filter`]: strict filters, text or flattened JSON, never a
//! panic on a closed output) and how an error is printed ([`error_message`]: one line,
//! API errors as their message).

mod controller_manager;
mod crds;
mod demo;
mod dns_server;
mod enable;
mod federate;
mod join;
mod orphaning;
mod render;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "kubefed",
    version,
    long_version = LONG_VERSION,
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
    /// Append logs to this file instead of stderr (`demo` logs to `STATE_DIR/kubefed.log`
    /// by default, so that its output stays readable).
    #[arg(long, global = true, env = "KUBEFED_LOG_FILE")]
    pub log_file: Option<PathBuf>,
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
    Unjoin(join::UnjoinArgs),
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
    /// Keep (or stop keeping) a federated object's member copies when it is deleted.
    #[command(subcommand)]
    OrphaningDeletion(orphaning::OrphaningCommand),
    /// Print the version, git commit, build date and target of this binary.
    Version(VersionArgs),
    /// Print a shell completion script (e.g. `source <(kubefed completion bash)`).
    Completion { shell: clap_complete::Shell },
}

impl Command {
    /// Servers and the demo: they run until a signal and must shut down gracefully.
    pub fn is_long_running(&self) -> bool {
        matches!(
            self,
            Command::ControllerManager(_) | Command::DnsServer(_) | Command::Demo(_)
        )
    }
}

/// `kubefed --version` in full: what `kubefed version` prints.
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\ngit commit: ",
    env!("KUBEFED_GIT_COMMIT"),
    "\nbuild date: ",
    env!("KUBEFED_BUILD_DATE"),
    "\ntarget:     ",
    env!("KUBEFED_TARGET")
);

#[derive(Args, Debug)]
pub struct VersionArgs {
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = VersionFormat::Text)]
    pub output: VersionFormat,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum VersionFormat {
    Text,
    Json,
}

impl Cli {
    /// Where logs go: `--log-file`, else the demo's own file, else stderr (`None`).
    pub fn log_file(&self) -> Option<PathBuf> {
        self.global
            .log_file
            .clone()
            .or_else(|| match &self.command {
                Command::Demo(d) if d.command.is_none() => Some(d.state_dir.join("kubefed.log")),
                _ => None,
            })
    }
}

/// Installs the global subscriber: `--log` as an EnvFilter (an invalid one is an error,
/// not a silent fallback), text or JSON lines on stderr or appended to `file`.
pub fn init_tracing(opts: &GlobalOpts, file: Option<&std::path::Path>) -> anyhow::Result<()> {
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    let filter = log_filter(&opts.log)?;
    let (writer, ansi) = match file {
        None => (
            BoxMakeWriter::new(std::io::stderr),
            // Colour only on a terminal: logs redirected to files stay greppable.
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
        ),
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening the log file {}", path.display()))?;
            (BoxMakeWriter::new(std::sync::Mutex::new(f)), false)
        }
    };
    // A log line that cannot be written (stderr closed, e.g. piped to `head`) is dropped.
    // tracing-subscriber would otherwise report it with `eprintln!`, which panics on the
    // same closed stderr, in whatever task logged: the signal handler included, and then
    // SIGTERM no longer stops the process.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .log_internal_errors(false);
    match opts.log_format {
        LogFormat::Text => builder.init(),
        // `message` and the event's fields at the top level, as log pipelines expect.
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(())
}

/// An error as the CLI prints it: the context chain on one line, each kube API error as
/// its message ([`crate::kube::Brief`]) rather than kube's Display with the whole Status.
pub fn error_message(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        match cause.downcast_ref::<kube::Error>() {
            Some(k @ kube::Error::Api(_)) => {
                parts.push(crate::kube::Brief(k).to_string());
                // Its source is the same Status again.
                break;
            }
            _ => parts.push(cause.to_string()),
        }
    }
    parts.join(": ")
}

/// kube's client logs every failed HTTP request at ERROR from its tracing layer
/// (`kube_client::client::builder`), however the caller handles the failure: waiting for
/// an API server to come up printed dozens of them. kubefed reports the failures it acts
/// on itself, once, naming the cluster, so that target is off unless the filter names
/// `kube_client` (e.g. `--log info,kube_client=debug`).
pub fn log_filter(spec: &str) -> anyhow::Result<tracing_subscriber::EnvFilter> {
    let filter = tracing_subscriber::EnvFilter::builder()
        .parse(spec)
        .map_err(|e| anyhow::anyhow!("invalid --log filter {spec:?}: {e}"))?;
    if spec.contains("kube_client") {
        return Ok(filter);
    }
    Ok(filter.add_directive(
        "kube_client::client::builder=off"
            .parse()
            .expect("a valid directive"),
    ))
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let log_file = cli.log_file();
    match cli.command {
        Command::Crds(args) => crds::run(args),
        Command::Demo(args) => demo::run(args, log_file).await,
        Command::ControllerManager(args) => controller_manager::run(args).await,
        Command::DnsServer(args) => dns_server::run(args).await,
        Command::Join(args) => join::run_join(args).await,
        Command::Unjoin(args) => join::run_unjoin(args).await,
        Command::Enable(args) => enable::run_enable(args).await,
        Command::Disable(args) => enable::run_disable(args).await,
        Command::Federate(args) => federate::run(args).await,
        Command::Render(args) => render::run(args).await,
        Command::OrphaningDeletion(cmd) => orphaning::run(cmd).await,
        Command::Version(args) => {
            let b = crate::admin::build_info::BUILD;
            match args.output {
                VersionFormat::Text => println!("kubefed {LONG_VERSION}"),
                VersionFormat::Json => println!("{}", serde_json::to_string_pretty(&b)?),
            }
            Ok(())
        }
        Command::Completion { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "kubefed",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    }
}

/// The state directory flag shared by the demo subcommands.
#[derive(Args, Debug, Clone)]
pub struct StateDir {
    /// Directory holding `kubeconfig` and `state.json` of the local federation.
    #[arg(long, default_value = ".cache/demo")]
    pub state_dir: PathBuf,
}

/// etcd TLS and authentication, shared by `dns-server` and `controller-manager` (its
/// skydns writer). The names follow etcdctl's; the environment variables ExternalDNS's.
#[derive(Args, Debug, Clone, Default)]
pub struct EtcdSecurityArgs {
    /// PEM CA bundle that signs etcd's serving certificate (TLS to https:// endpoints;
    /// without it, the system roots).
    #[arg(long, env = "ETCD_CA_FILE")]
    pub etcd_cacert: Option<PathBuf>,
    /// PEM client certificate for etcd (with --etcd-key).
    #[arg(long, env = "ETCD_CERT_FILE")]
    pub etcd_cert: Option<PathBuf>,
    /// PEM key of --etcd-cert.
    #[arg(long, env = "ETCD_KEY_FILE")]
    pub etcd_key: Option<PathBuf>,
    /// Name to verify etcd's certificate against, when not the endpoint's host.
    #[arg(long, env = "ETCD_TLS_SERVER_NAME")]
    pub etcd_server_name: Option<String>,
    /// etcd user (etcd's authentication).
    #[arg(long, env = "ETCD_USERNAME")]
    pub etcd_username: Option<String>,
    /// Password of --etcd-username; prefer the environment variable, which `ps` does
    /// not show.
    #[arg(long, env = "ETCD_PASSWORD", hide_env_values = true)]
    pub etcd_password: Option<String>,
}

impl EtcdSecurityArgs {
    /// The checked settings (files readable, pairs complete, TLS only with https).
    pub fn security(
        &self,
        endpoints: &[String],
    ) -> anyhow::Result<crate::dns::skydns::security::EtcdSecurity> {
        let s = crate::dns::skydns::security::EtcdSecurity {
            ca_file: self.etcd_cacert.clone(),
            cert_file: self.etcd_cert.clone(),
            key_file: self.etcd_key.clone(),
            server_name: self.etcd_server_name.clone(),
            username: self.etcd_username.clone(),
            password: self.etcd_password.clone(),
        };
        if !endpoints.is_empty() {
            s.validate(endpoints)?;
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// What the filter lets through of one kube client error and one of ours.
    fn logged(spec: &str) -> String {
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_env_filter(log_filter(spec).unwrap())
            .with_writer(move || out.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(sub, || {
            tracing::error!(target: "kube_client::client::builder", "failed with error client error (Connect)");
            tracing::error!(target: "kubefed::cluster", "cluster2 unreachable");
        });
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn an_api_error_prints_as_its_message() {
        let status = kube::core::Status {
            message: "namespaces \"x\" not found".into(),
            reason: "NotFound".into(),
            code: 404,
            ..Default::default()
        };
        let e = anyhow::Error::new(kube::Error::Api(Box::new(status))).context("reading x");
        assert_eq!(
            error_message(&e),
            "reading x: namespaces \"x\" not found (NotFound, 404)"
        );
    }

    #[test]
    fn an_invalid_log_filter_is_an_error() {
        let e = log_filter("info,kubefed=loud").unwrap_err().to_string();
        assert!(e.contains("invalid --log filter"), "{e}");
        assert!(log_filter("info,kubefed=debug").is_ok());
    }

    #[test]
    fn kube_client_request_errors_are_off_unless_asked_for() {
        let out = logged("info");
        assert!(out.contains("cluster2 unreachable"), "{out}");
        assert!(!out.contains("client error (Connect)"), "{out}");
        let out = logged("debug");
        assert!(!out.contains("client error (Connect)"), "{out}");
        let out = logged("info,kube_client=debug");
        assert!(out.contains("client error (Connect)"), "{out}");
    }
}
