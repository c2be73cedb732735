//! `owp bench-sweep` (issue 12, P5): a mass expiry under claim load. Writes N tasks leased
//! to one worker with leases that all expire at the same moment straight into the database,
//! keeps W workers polling and completing ordinary tasks through the API meanwhile, and
//! prints how long the server's lease-expiry sweep took to requeue them all (from its audit
//! events) and the poll latency before and during the sweep.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use chrono::{DateTime, Utc};
use clap::Args;

use super::sql::seed;
use super::stats::{base_urls, error_kind, print_latencies, Stats};
use crate::client::{Client, Credentials};
use crate::wire::admin::{RepoRequest, TaskRequest};
use crate::wire::tasks::StatusRequest;

#[derive(Args, Debug)]
pub struct BenchSweepArgs {
    /// Base URL(s) of running servers, comma-separated: pollers are spread over them.
    #[arg(long, env = "OWP_URL", default_value = "http://127.0.0.1:8787")]
    pub url: String,
    #[arg(long, env = "OWP_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: String,
    /// The servers' database: the expiring leases and the pollers are written there.
    #[arg(long, env = "OWP_BENCH_DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Leases that expire at the same moment.
    #[arg(long, default_value_t = 100_000)]
    pub leases: i64,
    /// Workers polling (and completing what they get) throughout.
    #[arg(long, default_value_t = 100)]
    pub pollers: usize,
    /// Ordinary tasks for the pollers to claim.
    #[arg(long, default_value_t = 20_000)]
    pub tasks: usize,
    /// Each poller's pause after each poll and its reports: the load's pace (0: flat out,
    /// which saturates this machine before any sweep starts).
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    pub think: Duration,
    /// Repos the ordinary tasks are spread over (a repo's claims take turns).
    #[arg(long, default_value_t = 20)]
    pub repos: usize,
    /// The leases expire this long after they are written (the baseline is measured then).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub expire_in: Duration,
    /// Give up waiting for the sweep after this long.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// One poll: when it started, and how long it took.
type Sample = (DateTime<Utc>, Duration);

pub async fn run(args: BenchSweepArgs) -> anyhow::Result<()> {
    let pool = crate::store::tool_pool(&args.database_url, 10).await?;
    let prefix = format!("sw{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let bases = base_urls(&args.url)?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.pollers * 2)
        .timeout(Duration::from_secs(30))
        .build()?;
    let admin = Client::with_http(
        http.clone(),
        &bases[0],
        Credentials::Admin(args.admin_token.clone()),
    );
    let live = seed_queue(&admin, &args, &prefix).await?;
    seed::workers_with_tokens(&pool, &prefix, args.pollers as i64).await?;
    let written = Instant::now();
    let expires =
        seed::expiring_leases(&pool, &prefix, args.leases, args.expire_in.as_secs_f64()).await?;
    println!(
        "wrote {} leases expiring at {expires} in {:.1}s; {} pollers (pause {:?}) over {} tasks in {} repos",
        args.leases,
        written.elapsed().as_secs_f64(),
        args.pollers,
        args.think,
        args.tasks,
        live.len()
    );

    let stats = Arc::new(Stats::default());
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut pollers = Vec::new();
    for i in 0..args.pollers {
        let client = Client::with_http(
            http.clone(),
            &bases[i % bases.len()],
            Credentials::Worker(format!("{prefix}-token-{}", i + 1)),
        );
        let (stats, samples, stop, think) =
            (stats.clone(), samples.clone(), stop.clone(), args.think);
        pollers.push(tokio::spawn(async move {
            poll_loop(client, &stats, &samples, &stop, think).await
        }));
    }

    // wait for the leases to expire, then for the sweep to end them all
    let started = Instant::now();
    let deadline = started + args.expire_in + args.timeout;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if Utc::now() > expires && seed::live_leases_of_holder(&pool, &prefix).await? == 0 {
            break;
        }
        if Instant::now() > deadline {
            stop.store(true, Ordering::Relaxed);
            bail!("the sweep did not end the leases within {:?}", args.timeout);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for p in pollers {
        p.await?;
    }
    let window = seed::sweep_window(&pool, &prefix).await?;
    let (Some(first), Some(last)) = (window.first, window.last) else {
        bail!("no lease_expired event: was the server's sweep running?");
    };
    let secs = |d: chrono::TimeDelta| d.num_milliseconds() as f64 / 1000.0;
    println!(
        "\nsweep: {} leases expired in {:.2}s (first to last event); all requeued {:.2}s after they expired",
        window.leases,
        secs(last - first),
        secs(last - expires)
    );
    let samples = samples.lock().expect("samples lock").clone();
    let (before, during) = around(&samples, first, last);
    println!("polls before the sweep: {}", percentiles(before));
    println!("polls during the sweep: {}", percentiles(during));
    print_latencies(&stats);
    Ok(())
}

/// The repos (`live`) and the ready tasks the pollers claim while the sweep runs.
async fn seed_queue(
    admin: &Client,
    args: &BenchSweepArgs,
    prefix: &str,
) -> anyhow::Result<Vec<String>> {
    let live: Vec<String> = (0..args.repos.max(1))
        .map(|i| format!("{prefix}-live{i}"))
        .collect();
    for repo in &live {
        admin
            .upsert_repo(&RepoRequest {
                repo: repo.clone(),
                max_open_prs: Some(10_000),
                area_locks_enabled: Some(false),
                ..RepoRequest::default()
            })
            .await?;
    }
    let tasks: Vec<TaskRequest> = (0..args.tasks)
        .map(|i| TaskRequest {
            repo: live[i % live.len()].clone(),
            title: format!("task {i}"),
            estimate_points: Some(1),
            ..TaskRequest::default()
        })
        .collect();
    for chunk in tasks.chunks(500) {
        admin.create_tasks(chunk).await?;
    }
    Ok(live)
}

/// Poll latencies before the sweep's first event, and between its first and last.
fn around(
    samples: &[Sample],
    first: DateTime<Utc>,
    last: DateTime<Utc>,
) -> (Vec<Duration>, Vec<Duration>) {
    let pick = |keep: &dyn Fn(DateTime<Utc>) -> bool| -> Vec<Duration> {
        samples
            .iter()
            .filter(|(at, _)| keep(*at))
            .map(|(_, d)| *d)
            .collect()
    };
    (
        pick(&|at| at < first),
        pick(&|at| at >= first && at <= last),
    )
}

async fn poll_loop(
    client: Client,
    stats: &Stats,
    samples: &Mutex<Vec<Sample>>,
    stop: &AtomicBool,
    think: Duration,
) {
    while !stop.load(Ordering::Relaxed) {
        let at = Utc::now();
        let t = Instant::now();
        let leases = match client.poll(None, None).await {
            Ok(answer) => {
                let took = t.elapsed();
                stats.record("poll", took);
                samples.lock().expect("samples lock").push((at, took));
                answer.leases
            }
            Err(e) => {
                stats.error(format!("poll: {}", error_kind(&e)));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let idle = leases.is_empty();
        for lease in leases {
            let t = Instant::now();
            let body = StatusRequest {
                lease_id: Some(lease.lease_id.clone()),
                ..StatusRequest::to("completed")
            };
            match client.report(&lease.task_id, &body).await {
                Ok(_) => stats.record("status", t.elapsed()),
                Err(e) => stats.error(format!("status: {}", error_kind(&e))),
            }
        }
        let pause = if idle {
            think.max(Duration::from_millis(20))
        } else {
            think
        };
        tokio::time::sleep(pause).await;
    }
}

/// "n polls, p50 / p99 / max" of a set of latencies.
fn percentiles(mut v: Vec<Duration>) -> String {
    if v.is_empty() {
        return "none".into();
    }
    v.sort_unstable();
    let p = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0;
    format!(
        "{} polls, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        v.len(),
        p(0.5),
        p(0.99),
        p(1.0)
    )
}
