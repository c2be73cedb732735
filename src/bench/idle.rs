//! `owp bench-idle`: many idle workers long-polling one server (issue 12, P3). Registers N
//! workers, keeps each in `GET /v1/work?wait=W` until the server reports them waiting, then
//! measures the server's CPU and RSS over an idle stretch, the database connections in use
//! meanwhile, and how fast a new task reaches a waiting worker (one task at a time).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use tokio::sync::oneshot;

use crate::client::{Client, Credentials};
use crate::wire::admin::{RepoRequest, TaskRequest};
use crate::wire::tasks::StatusRequest;
use crate::wire::workers::RegisterRequest;

#[derive(Args, Debug)]
pub struct BenchIdleArgs {
    /// Base URL of a running server (start it with OWP_IP_RATE and OWP_IP_BURST high
    /// enough to register the workers from one address).
    #[arg(long, env = "OWP_URL", default_value = "http://127.0.0.1:8787")]
    pub url: String,
    #[arg(long, env = "OWP_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: String,
    /// Workers long-polling at once (each holds one connection: mind `ulimit -n`).
    #[arg(long, default_value_t = 10_000)]
    pub workers: usize,
    /// The `wait` of each poll, seconds.
    #[arg(long, default_value_t = 30)]
    pub wait: u32,
    /// How long the idle stretch is measured.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub idle: Duration,
    /// Tasks created one at a time to time the wake-up.
    #[arg(long, default_value_t = 100)]
    pub samples: usize,
    /// The server's process id, for its CPU time and RSS (Linux /proc).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// The server's database, to count its busy connections during the idle stretch.
    #[arg(long, env = "OWP_BENCH_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

/// Task id -> who waits to hear that a poll received it.
type Arrivals = Arc<Mutex<HashMap<String, oneshot::Sender<Instant>>>>;

pub async fn run(args: BenchIdleArgs) -> anyhow::Result<()> {
    let base = args.url.trim_end_matches('/').to_string();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.workers + 16)
        .timeout(Duration::from_secs(u64::from(args.wait) + 30))
        .build()?;
    let repo = RepoRequest {
        repo: "bench/idle".into(),
        max_open_prs: Some(10_000),
        area_locks_enabled: Some(false),
        ..RepoRequest::default()
    };
    let admin = Client::with_http(
        http.clone(),
        &base,
        Credentials::Admin(args.admin_token.clone()),
    );
    admin.upsert_repo(&repo).await?;

    let started = Instant::now();
    let tokens = register(&admin.as_caller(Credentials::None), args.workers).await?;
    println!(
        "registered {} workers in {:.1}s",
        tokens.len(),
        started.elapsed().as_secs_f64()
    );
    let arrivals: Arrivals = Arc::default();
    let pollers: Vec<_> = tokens
        .into_iter()
        .map(|t| {
            tokio::spawn(poll_loop(
                admin.as_caller(Credentials::Worker(t)),
                args.wait,
                arrivals.clone(),
            ))
        })
        .collect();
    let waiting = wait_for_waiters(&http, &base, args.workers).await?;
    println!("{waiting} polls waiting on the server");

    // the idle stretch
    let cpu_before = args.server_pid.and_then(cpu_ticks);
    let (idle_secs, busy_connections) = idle_stretch(&args).await?;
    if let (Some(pid), Some(before)) = (args.server_pid, cpu_before) {
        let after = cpu_ticks(pid).unwrap_or(before);
        let cpu = (after - before) as f64 / 100.0 / idle_secs * 100.0;
        println!(
            "idle {idle_secs:.0}s: server cpu {cpu:.2} % of a core, rss {} MiB",
            super::stats::rss_kib(pid).map_or("?".into(), |k| (k / 1024).to_string())
        );
    }
    if args.database_url.is_some() {
        println!(
            "database connections busy during the idle stretch (other than this probe): at most {busy_connections}"
        );
    }

    // wake-ups: one task at a time, timed from its creation to a poll's answer
    let mut latencies = wake_latencies(&admin, &arrivals, args.samples).await?;
    latencies.sort_unstable();
    let p = |q: f64| {
        let i = ((latencies.len() - 1) as f64 * q).round() as usize;
        latencies[i].as_secs_f64() * 1000.0
    };
    println!(
        "new task -> waiting poll ({} samples): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        p(0.5),
        p(0.99),
        p(1.0)
    );
    for p in pollers {
        p.abort();
    }
    Ok(())
}

/// `samples` new tasks, one at a time: how long each took from its creation to a waiting
/// poll's answer.
async fn wake_latencies(
    admin: &Client,
    arrivals: &Arrivals,
    samples: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut latencies = Vec::with_capacity(samples);
    for i in 0..samples {
        let task = TaskRequest {
            repo: "bench/idle".into(),
            title: format!("wake {i}"),
            ..TaskRequest::default()
        };
        let (tx, rx) = oneshot::channel();
        let sent = Instant::now();
        let id = admin.create_task(&task).await?.task_id;
        let early = arrivals
            .lock()
            .expect("arrivals lock")
            .insert(id.clone(), tx);
        debug_assert!(early.is_none());
        match tokio::time::timeout(Duration::from_secs(10), rx).await {
            Ok(Ok(at)) => latencies.push(at.saturating_duration_since(sent)),
            _ => bail!("task {id} reached no waiting poll within 10 s"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(latencies)
}

/// Waits out the idle stretch; its length in seconds, and the most database connections
/// busy at once meanwhile (sampled every 200 ms when `--database-url` is given).
async fn idle_stretch(args: &BenchIdleArgs) -> anyhow::Result<(f64, i64)> {
    let idle_started = Instant::now();
    let mut busy_connections = 0;
    if let Some(url) = &args.database_url {
        let pool = crate::store::tool_pool(url, 10).await?;
        let deadline = idle_started + args.idle;
        while Instant::now() < deadline {
            busy_connections =
                busy_connections.max(super::sql::seed::busy_connections(&pool).await?);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    } else {
        tokio::time::sleep(args.idle).await;
    }
    let idle_secs = idle_started.elapsed().as_secs_f64();
    Ok((idle_secs, busy_connections))
}

async fn register(anonymous: &Client, n: usize) -> anyhow::Result<Vec<String>> {
    use futures::stream::{self, StreamExt, TryStreamExt};
    stream::iter(0..n)
        .map(|i| async move {
            let req = RegisterRequest {
                name: format!("idle-{i}"),
                capacity_points: Some(10),
                max_concurrent_tasks: Some(1),
                ..RegisterRequest::default()
            };
            anyhow::Ok(anonymous.register(&req, None).await?.token)
        })
        .buffer_unordered(64)
        .try_collect()
        .await
}

/// Long-polls until aborted; hands each lease it receives to whoever waits for that task,
/// and completes it so the worker waits again.
async fn poll_loop(client: Client, wait: u32, arrivals: Arrivals) {
    loop {
        let Ok(body) = client
            .poll(None, Some(Duration::from_secs(u64::from(wait))))
            .await
        else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        let now = Instant::now();
        for lease in body.leases {
            // the creator may register the task a moment after the poll saw it
            for _ in 0..100 {
                let tx = arrivals
                    .lock()
                    .expect("arrivals lock")
                    .remove(&lease.task_id);
                if let Some(tx) = tx {
                    let _ = tx.send(now);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let report = StatusRequest {
                lease_id: Some(lease.lease_id.clone()),
                ..StatusRequest::to("completed")
            };
            let _ = client.report(&lease.task_id, &report).await;
        }
    }
}

/// Waits until the server reports (almost) every poll waiting; how many it reports.
async fn wait_for_waiters(
    http: &reqwest::Client,
    base: &str,
    want: usize,
) -> anyhow::Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        let waiting = text
            .lines()
            .find(|l| l.starts_with(crate::metrics::LONG_POLLS_WAITING))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0) as usize;
        if waiting * 100 >= want * 99 {
            return Ok(waiting);
        }
        if Instant::now() > deadline {
            bail!("only {waiting} of {want} polls waiting after 5 minutes (is /metrics on the API port?)");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// User + system CPU time of a process in clock ticks (1/100 s on Linux), from /proc.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name may hold spaces: fields count from after its closing parenthesis
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}
