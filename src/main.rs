//! The `owp` binary: parse the command line, start telemetry, run the subcommand.

use clap::Parser;
use owp_pool::cli::{self, Cli, Command};
use owp_pool::config::LogFormat;
use owp_pool::{bench, server, telemetry};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // the server logs what it does; the people's tools only what needs attention
    let (format, level) = match &cli.command {
        Command::Serve(cfg) => (cfg.log_format, "info"),
        Command::Worker(_) => (LogFormat::Pretty, "info"),
        Command::Admin(_) | Command::Demo(_) | Command::Completions { .. } => {
            (LogFormat::Pretty, "warn")
        }
        _ => (LogFormat::Pretty, "info"),
    };
    telemetry::init(format, level);
    let serving = matches!(cli.command, Command::Serve(_));
    let result = match cli.command {
        Command::Serve(cfg) => server::run(*cfg).await,
        Command::Migrate(args) => cli::migrate(args).await,
        Command::Worker(args) => cli::worker::run(args).await,
        Command::Admin(args) => cli::admin::run(args).await,
        Command::Demo(args) => cli::demo::run(args).await,
        Command::Completions { shell } => cli::completions(shell),
        Command::Bench(args) => bench::run(args).await,
        Command::BenchLists(args) => owp_pool::bench::lists::run(args).await,
        Command::BenchIdle(args) => owp_pool::bench::idle::run(args).await,
        Command::BenchHeartbeat(args) => owp_pool::bench::heartbeat::run(args).await,
        Command::BenchSweep(args) => owp_pool::bench::sweep::run(args).await,
        Command::Healthcheck(args) => cli::healthcheck(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if serving => {
            tracing::error!(error = format!("{e:#}"), "exiting");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            // a person reads this: the error and its causes, no log decoration
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
