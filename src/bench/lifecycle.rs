//! `owp bench` (the lifecycle benchmark): drives a running server like a worker fleet would and prints throughput,
//! latency percentiles per endpoint, errors, server RSS, and the invariant checker's verdict.
//!
//! It registers W workers, creates T tasks across R repos, then every worker loops
//! poll -> `in_progress` -> `completed` until all tasks are done (closed loop), `--rounds`
//! times into the same database (the rate as the tables grow). `--open-loop` then offers
//! lifecycles at half the closed-loop rate and prints latency at that fixed load
//! (`bench::open_loop`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;

use super::stats::{base_urls, error_kind, print_report, rss_kib, sample_rss, Stats};
use crate::client::{Client, Credentials};
use crate::domain::status::TaskStatus;
use crate::wire::admin::{RepoRequest, TaskRequest};
use crate::wire::tasks::StatusRequest;
use crate::wire::work::Lease;
use crate::wire::workers::RegisterRequest;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Base URL of a running server, or several comma-separated (replicas): workers are
    /// spread over them round-robin; repos and tasks are created through the first.
    #[arg(long, env = "OWP_URL", default_value = "http://127.0.0.1:8787")]
    pub url: String,
    #[arg(long, env = "OWP_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: String,
    /// Concurrent simulated workers.
    #[arg(long, default_value_t = 100)]
    pub workers: usize,
    /// Tasks to create and drive to completion.
    #[arg(long, default_value_t = 20_000)]
    pub tasks: usize,
    #[arg(long, default_value_t = 20)]
    pub repos: usize,
    /// Review budget per repo.
    #[arg(long, default_value_t = 1000)]
    pub max_open_prs: i64,
    /// Leases per worker (max_concurrent_tasks).
    #[arg(long, default_value_t = 2)]
    pub leases_per_worker: i64,
    /// When given, first measure the raw-SQL ceiling on a scratch table of this database
    /// (same concurrency), and run the invariant checker against it after the run.
    #[arg(long, env = "OWP_BENCH_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// When given, report this server process's resident memory (Linux /proc).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Connections the raw-SQL ceiling runs on: the database concurrency the service has
    /// (its OWP_DB_MAX_CONNECTIONS, 20 by default), so both compete for the same database.
    #[arg(long, default_value_t = 20)]
    pub ceiling_connections: usize,
    /// Give up after this long (each round).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Closed-loop rounds of `--tasks` lifecycles each, one after the other into the same
    /// database: the rate of each as the tables grow.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// After the closed loop, offer lifecycles at half its rate for this long (open loop):
    /// latency at a fixed load (`bench::open_loop`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub open_loop: Option<Duration>,

    /// The open loop's offered rate, lifecycles/s (default: half the closed-loop rate), so
    /// two servers can be compared at the same load.
    #[arg(long)]
    pub open_rate: Option<f64>,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.workers * 2)
        .timeout(Duration::from_secs(30))
        .build()?;
    let bases = base_urls(&args.url)?;
    let base = bases[0].clone();
    println!(
        "bench: {} workers, {} tasks x {} rounds, {} repos against {base}",
        args.workers, args.tasks, args.rounds, args.repos
    );
    // the ceiling first, with the same concurrency, on a scratch table of the same database
    let ceiling = match &args.database_url {
        Some(url) => Some(raw_sql_ceiling(url, args.ceiling_connections, args.tasks).await?),
        None => None,
    };
    let admin = Client::with_http(
        http.clone(),
        &base,
        Credentials::Admin(args.admin_token.clone()),
    );
    let repos = seed_repos(&admin, &args).await?;
    let tokens = register_workers(&admin.as_caller(Credentials::None), &args).await?;
    let clients: Vec<Client> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, token)| {
            let base = &bases[i % bases.len()];
            Client::with_http(http.clone(), base, Credentials::Worker(token))
        })
        .collect();
    let rss_before = args.server_pid.and_then(rss_kib);
    let mut rates = Vec::new();
    for round in 1..=args.rounds.max(1) {
        create_tasks(&admin, &repos, args.tasks).await?;
        let rate = closed_loop(&clients, &args, ceiling).await?;
        if args.rounds > 1 {
            println!(
                "round {round}: {rate:.0} lifecycles/s, server rss {} MiB",
                args.server_pid
                    .and_then(rss_kib)
                    .map_or("?".into(), |k| (k / 1024).to_string())
            );
        }
        rates.push(rate);
    }
    if let [first, .., last] = rates[..] {
        println!(
            "growth: last round {last:.0}/s vs first {first:.0}/s ({:+.1} %)",
            (last / first - 1.0) * 100.0
        );
    }
    if let (Some(window), Some(&rate)) = (args.open_loop, rates.last()) {
        let offered = args.open_rate.unwrap_or(rate / 2.0).max(1.0);
        let n = (offered * window.as_secs_f64()).ceil() as usize + args.workers;
        create_tasks(&admin, &repos, n).await?;
        super::open_loop::run(&clients, offered, window).await?;
    }
    if let Some(pid) = args.server_pid {
        println!(
            "server rss: before {} MiB, after {} MiB",
            rss_before.map_or("?".into(), |k| (k / 1024).to_string()),
            rss_kib(pid).map_or("?".into(), |k| (k / 1024).to_string()),
        );
    }
    if let Some(url) = &args.database_url {
        check_invariants(url).await?;
    }
    Ok(())
}

/// One closed-loop round: every worker polls and reports until `--tasks` more lifecycles are
/// done. Prints the round's report; its rate.
async fn closed_loop(
    clients: &[Client],
    args: &BenchArgs,
    ceiling: Option<f64>,
) -> anyhow::Result<f64> {
    let stats = Arc::new(Stats::default());
    let started = Instant::now();
    let deadline = started + args.timeout;
    let target = args.tasks as u64;
    let handles: Vec<_> = clients
        .iter()
        .map(|client| {
            let (client, stats) = (client.clone(), stats.clone());
            tokio::spawn(async move { worker_loop(client, stats, target, deadline).await })
        })
        .collect();
    let peak_rss = Arc::new(AtomicU64::new(0));
    let sampler = args
        .server_pid
        .map(|pid| tokio::spawn(sample_rss(pid, peak_rss.clone())));
    for h in handles {
        h.await?;
    }
    let elapsed = started.elapsed();
    if let Some(s) = sampler {
        s.abort();
        println!(
            "server peak rss: {} MiB",
            peak_rss.load(Ordering::Relaxed) / 1024
        );
    }
    let done = stats.completed.load(Ordering::Relaxed);
    print_report(&stats, done, target, elapsed);
    let rate = done as f64 / elapsed.as_secs_f64();
    if let Some(c) = ceiling {
        println!(
            "raw-SQL ceiling: {c:.0} lifecycles/s; the service did {rate:.0}/s, {:.0} % of it (P1: >= 50 %)",
            rate / c * 100.0
        );
    }
    if done < target {
        bail!("only {done} of {target} tasks completed before the timeout");
    }
    Ok(rate)
}

/// Creates the repos of this run (names unique per run).
async fn seed_repos(admin: &Client, args: &BenchArgs) -> anyhow::Result<Vec<String>> {
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let repos: Vec<String> = (0..args.repos)
        .map(|i| format!("bench-{run_id}/r{i}"))
        .collect();
    for r in &repos {
        let repo = RepoRequest {
            repo: r.clone(),
            max_open_prs: Some(args.max_open_prs),
            area_locks_enabled: Some(false),
            ..RepoRequest::default()
        };
        admin.upsert_repo(&repo).await?;
    }
    Ok(repos)
}

/// Creates `n` ready tasks spread over the repos, half of them asking for a skill.
async fn create_tasks(admin: &Client, repos: &[String], n: usize) -> anyhow::Result<()> {
    let setup = Instant::now();
    let batch: Vec<TaskRequest> = (0..n)
        .map(|i| TaskRequest {
            repo: repos[i % repos.len()].clone(),
            title: format!("task {i}"),
            estimate_points: Some(1),
            required_skills: Some(if i % 2 == 0 {
                vec!["rust".into()]
            } else {
                vec![]
            }),
            ..TaskRequest::default()
        })
        .collect();
    for chunk in batch.chunks(200) {
        admin.create_tasks(chunk).await?;
    }
    println!("created {n} tasks in {:.1}s", setup.elapsed().as_secs_f64());
    Ok(())
}

async fn register_workers(anonymous: &Client, args: &BenchArgs) -> anyhow::Result<Vec<String>> {
    let mut tokens = Vec::with_capacity(args.workers);
    for i in 0..args.workers {
        let req = RegisterRequest {
            name: format!("bench-{i}"),
            skills: Some(vec!["rust".into(), "sql".into()]),
            capacity_points: Some(10),
            max_concurrent_tasks: Some(args.leases_per_worker),
            ..RegisterRequest::default()
        };
        tokens.push(anonymous.register(&req, None).await?.token);
    }
    Ok(tokens)
}

/// The least a lifecycle can cost here: `workers` connections each claiming (one
/// statement) and completing (one statement) until `tasks` are done (`bench::sql::ceiling`).
async fn raw_sql_ceiling(url: &str, workers: usize, tasks: usize) -> anyhow::Result<f64> {
    let workers = workers.max(1);
    use super::sql::ceiling;
    let pool = crate::store::tool_pool(url, u32::try_from(workers).unwrap_or(u32::MAX)).await?;
    ceiling::prepare(&pool, tasks as i64).await?;
    let started = Instant::now();
    let loops = (0..workers).map(|w| {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut conn = pool.acquire().await?;
            let me = format!("w_ceiling{w}");
            let mut done = 0u64;
            while let Some(id) = ceiling::claim(&mut conn, &me).await? {
                ceiling::complete(&mut conn, &id).await?;
                done += 1;
            }
            anyhow::Ok(done)
        })
    });
    let mut done = 0;
    for l in futures::future::join_all(loops).await {
        done += l??;
    }
    let rate = done as f64 / started.elapsed().as_secs_f64();
    ceiling::drop_table(&pool).await?;
    println!(
        "raw-SQL ceiling: {done} claim + complete pairs at {rate:.0}/s ({workers} connections)"
    );
    Ok(rate)
}

async fn check_invariants(url: &str) -> anyhow::Result<()> {
    let pool = crate::store::tool_pool(url, 2).await?;
    let violations = crate::store::invariants::check(&pool).await?;
    if violations.is_empty() {
        println!("invariant checker: OK (I1-I7 hold over the whole database and audit log)");
        return Ok(());
    }
    println!("invariant checker: {} VIOLATIONS", violations.len());
    for v in &violations {
        println!("  {v}");
    }
    bail!("invariants violated")
}

async fn worker_loop(client: Client, stats: Arc<Stats>, target: u64, deadline: Instant) {
    let mut idle_polls = 0u32;
    while stats.completed.load(Ordering::Relaxed) < target && Instant::now() < deadline {
        let t = Instant::now();
        let leases = match client.poll(None, None).await {
            Ok(answer) => {
                stats.record("poll", t.elapsed());
                answer.leases
            }
            Err(e) => {
                stats.error(format!("poll: {}", error_kind(&e)));
                continue;
            }
        };
        if leases.is_empty() {
            // others hold the remaining work: back off a little, as a real client would
            idle_polls += 1;
            tokio::time::sleep(Duration::from_millis(5 * u64::from(idle_polls.min(20)))).await;
            continue;
        }
        idle_polls = 0;
        for lease in leases {
            if lease.status == TaskStatus::Leased
                && !report(&client, &lease, "in_progress", &stats).await
            {
                continue;
            }
            if report(&client, &lease, "completed", &stats).await {
                stats.completed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

pub(super) async fn report(client: &Client, lease: &Lease, status: &str, stats: &Stats) -> bool {
    let t = Instant::now();
    let body = StatusRequest {
        lease_id: Some(lease.lease_id.clone()),
        ..StatusRequest::to(status)
    };
    match client.report(&lease.task_id, &body).await {
        Ok(_) => {
            stats.record("status", t.elapsed());
            true
        }
        Err(e) => {
            stats.error(format!("status {status}: {}", error_kind(&e)));
            false
        }
    }
}
