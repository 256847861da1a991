//! The `kubefed` binary: parses arguments, sets up logging and hands over to `cli`.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = kubefed::cli::Cli::parse();
    if !cli.command.is_long_running() {
        // Like any Unix filter, `kubefed crds | head` ends quietly when the reader goes
        // away, instead of panicking in println!. The servers keep Rust's default (ignore
        // SIGPIPE): a closed output must never kill them before a graceful shutdown.
        // SAFETY: SIG_DFL installs no handler, so there is no handler code to be unsound.
        unsafe {
            let _ = nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGPIPE,
                nix::sys::signal::SigHandler::SigDfl,
            );
        }
    }
    let log_file = cli.log_file();
    let result = match kubefed::cli::init_tracing(&cli.global, log_file.as_deref()) {
        Ok(()) => kubefed::cli::run(cli).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Not eprintln!: it panics when stderr is closed.
            let _ = writeln!(
                std::io::stderr(),
                "error: {}",
                kubefed::cli::error_message(&e)
            );
            ExitCode::FAILURE
        }
    }
}
