//! The `owp` command line: serve | migrate | bench.

use clap::{Args, Parser, Subcommand};

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
    /// Apply pending database migrations and exit.
    Migrate(MigrateArgs),
    /// Drive a running server with simulated workers and print throughput and latency.
    Bench(crate::bench::BenchArgs),
}

#[derive(Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub db: DbArgs,
}

pub async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let pool = crate::store::connect(&args.db.database_url, &args.db.pool_settings()).await?;
    crate::store::MIGRATOR.run(&pool).await?;
    let applied = crate::store::MIGRATOR.iter().count();
    tracing::info!(migrations = applied, "database is up to date");
    pool.close().await;
    Ok(())
}
