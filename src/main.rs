//! The `kubefed` binary: parses arguments, sets up logging and hands over to `cli`.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = kubefed::cli::Cli::parse();
    kubefed::cli::init_tracing(&cli.global);
    match kubefed::cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
