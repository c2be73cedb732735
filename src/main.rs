//! The `owp` binary: parse the command line, start telemetry, run the subcommand.

use clap::Parser;
use owp_pool::cli::{self, Cli, Command};
use owp_pool::config::LogFormat;
use owp_pool::{bench, server, telemetry};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let format = match &cli.command {
        Command::Serve(cfg) => cfg.log_format,
        _ => LogFormat::Pretty,
    };
    telemetry::init(format);
    let result = match cli.command {
        Command::Serve(cfg) => server::run(*cfg).await,
        Command::Migrate(args) => cli::migrate(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::BenchLists(args) => owp_pool::bench_lists::run(args).await,
        Command::BenchIdle(args) => owp_pool::bench::idle::run(args).await,
        Command::Healthcheck(args) => cli::healthcheck(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "exiting");
            std::process::ExitCode::FAILURE
        }
    }
}
