//! The `owp` command line: the server (`serve`, `migrate`), the people's tools (`worker`,
//! `admin`, `demo`, `completions`) and the benchmarks. One file or folder per command.

pub mod admin;
mod config_file;
pub mod demo;
mod output;
pub mod worker;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::config::{DbArgs, ServeConfig};

#[derive(Parser)]
#[command(
    name = "owp",
    version,
    about = "OWP Pool: a capacity-aware task scheduler for the Open Work Protocol"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run an API replica (and its share of the scheduler election).
    Serve(Box<ServeConfig>),
    /// A contributor's agent: register once, then run a command for each lease.
    Worker(worker::WorkerArgs),
    /// A maintainer's tool: repos, tasks, workers, state, audit, imports.
    Admin(admin::AdminArgs),
    /// The pool at work on this machine: a server, repos, tasks and simulated workers.
    Demo(demo::DemoArgs),
    /// Print a shell completion script: `owp completions bash > /etc/bash_completion.d/owp`.
    Completions { shell: clap_complete::Shell },
    /// Apply pending database migrations and exit.
    Migrate(MigrateArgs),
    /// Drive a running server with simulated workers and print throughput and latency.
    Bench(crate::bench::BenchArgs),
    /// Seed a throwaway database with a large history and time the operator's list endpoints.
    BenchLists(crate::bench::lists::BenchListsArgs),
    /// Keep many workers long-polling one server; print its idle CPU, RSS and wake-up latency.
    BenchIdle(crate::bench::idle::BenchIdleArgs),
    /// A large fleet heartbeating at its cadence (optionally with the lifecycle load); latency.
    BenchHeartbeat(crate::bench::heartbeat::BenchHeartbeatArgs),
    /// A mass lease expiry under claim load: how long the sweep takes, poll latency meanwhile.
    BenchSweep(crate::bench::sweep::BenchSweepArgs),
    /// Exit 0 when the local server answers /healthz (for container HEALTHCHECKs: no shell needed).
    Healthcheck(HealthcheckArgs),
}

#[derive(Args)]
pub struct HealthcheckArgs {
    #[arg(long, env = "OWP_PORT", default_value_t = 8787)]
    pub port: u16,
}

pub async fn healthcheck(args: HealthcheckArgs) -> anyhow::Result<()> {
    let url = format!("http://127.0.0.1:{}/healthz", args.port);
    let resp = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .build()?
        .get(&url)
        .send()
        .await?;
    anyhow::ensure!(
        resp.status().is_success(),
        "{url} answered {}",
        resp.status()
    );
    Ok(())
}

#[derive(Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub db: DbArgs,
}

pub async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    crate::store::migrations::apply_with_retry(
        args.db.database_url.expose(),
        std::time::Duration::from_secs(300),
    )
    .await?;
    let known = crate::store::MIGRATOR.iter().count();
    tracing::info!(migrations = known, "database is up to date");
    Ok(())
}

/// Writes the completion script for `shell` to stdout.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    use std::io::Write;
    let mut script = vec![];
    clap_complete::generate(shell, &mut Cli::command(), "owp", &mut script);
    match std::io::stdout().write_all(&script) {
        // `owp completions bash | head` is not an error
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
