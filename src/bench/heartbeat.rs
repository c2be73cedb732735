//! `owp bench-heartbeat` (issue 12, P4): a large registered fleet heartbeating at its
//! cadence. Seeds N workers straight into the database (registering 50,000 through the API
//! would take longer than the measurement), spreads their heartbeats evenly over the
//! interval, and prints the rate reached and heartbeat latency percentiles. With
//! `--lifecycle-tasks`, the lifecycle benchmark (`owp bench`) runs at the same time, so its
//! claim rate can be compared with a run without heartbeats.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;

use super::stats::{base_urls, error_kind, print_latencies, Stats};
use super::BenchArgs;
use crate::client::{Client, Credentials};
use crate::wire::workers::HeartbeatRequest;

#[derive(Args, Debug)]
pub struct BenchHeartbeatArgs {
    /// Base URL(s) of running servers, comma-separated: workers are spread over them.
    #[arg(long, env = "OWP_URL", default_value = "http://127.0.0.1:8787")]
    pub url: String,
    #[arg(long, env = "OWP_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: String,
    /// The servers' database: the workers are written there directly.
    #[arg(long, env = "OWP_BENCH_DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Registered workers, each heartbeating once per `--every`.
    #[arg(long, default_value_t = 50_000)]
    pub workers: usize,
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub every: Duration,
    /// How long to measure.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// When above 0, run the lifecycle benchmark (100 workers) over this many tasks meanwhile.
    #[arg(long, default_value_t = 0)]
    pub lifecycle_tasks: usize,
}

pub async fn run(args: BenchHeartbeatArgs) -> anyhow::Result<()> {
    let pool = crate::store::tool_pool(&args.database_url, 10).await?;
    let prefix = format!("hb{}", &uuid::Uuid::now_v7().simple().to_string()[24..]);
    let seeded = Instant::now();
    super::sql::seed::workers_with_tokens(&pool, &prefix, args.workers as i64).await?;
    println!(
        "seeded {} workers in {:.1}s; heartbeats every {:?} = {:.0}/s for {:?}",
        args.workers,
        seeded.elapsed().as_secs_f64(),
        args.every,
        args.workers as f64 / args.every.as_secs_f64(),
        args.duration
    );
    let bases = base_urls(&args.url)?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()?;
    let stats = Arc::new(Stats::default());
    let started = Instant::now();
    let deadline = started + args.duration;
    let lifecycle = (args.lifecycle_tasks > 0).then(|| {
        tokio::spawn(super::run(BenchArgs {
            url: bases.join(","),
            admin_token: args.admin_token.clone(),
            workers: 100,
            tasks: args.lifecycle_tasks,
            repos: 20,
            max_open_prs: 1000,
            leases_per_worker: 2,
            database_url: None,
            server_pid: None,
            ceiling_connections: 20,
            timeout: args.duration * 3,
            rounds: 1,
            open_loop: None,
            open_rate: None,
        }))
    });
    let mut beats = Vec::with_capacity(args.workers);
    for i in 0..args.workers {
        let client = Client::with_http(
            http.clone(),
            &bases[i % bases.len()],
            Credentials::Worker(format!("{prefix}-token-{}", i + 1)),
        );
        // spread evenly over the interval, so the rate is steady from the start
        let offset = args.every.mul_f64(i as f64 / args.workers as f64);
        let stats = stats.clone();
        let beat = beat_until(client, stats, offset, args.every, deadline);
        beats.push(tokio::spawn(beat));
    }
    for b in beats {
        b.await?;
    }
    let elapsed = started.elapsed();
    let done = stats.completed.load(Ordering::Relaxed);
    println!(
        "\nheartbeats: {done} in {:.1}s = {:.0}/s",
        elapsed.as_secs_f64(),
        done as f64 / elapsed.as_secs_f64()
    );
    print_latencies(&stats);
    if let Some(l) = lifecycle {
        l.await??;
    }
    Ok(())
}

/// One worker: a heartbeat every `every` from `offset` on, until `deadline`.
async fn beat_until(
    client: Client,
    stats: Arc<Stats>,
    offset: Duration,
    every: Duration,
    deadline: Instant,
) {
    tokio::time::sleep(offset).await;
    let req = HeartbeatRequest {
        status: Some("idle".into()),
        note: None,
    };
    while Instant::now() < deadline {
        let t = Instant::now();
        match client.heartbeat(&req).await {
            Ok(_) => {
                stats.record("heartbeat", t.elapsed());
                stats.completed.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => stats.error(format!("heartbeat: {}", error_kind(&e))),
        }
        let next = t + every;
        if next > deadline {
            break;
        }
        tokio::time::sleep_until(next.into()).await;
    }
}
