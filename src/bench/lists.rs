//! `owp bench-lists`: how fast the operator's list endpoints answer over a large history.
//! Seeds an empty database with bulk history (`bench::sql::seed`), then times each list
//! request, one at a time, against a running server on that database, and prints
//! p50/p95/p99 per request.

use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;

#[derive(Args, Debug)]
pub struct BenchListsArgs {
    /// Base URL of a running server whose database is `--database-url`.
    #[arg(long, env = "OWP_URL", default_value = "http://127.0.0.1:8787")]
    pub url: String,
    #[arg(long, env = "OWP_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: String,
    /// The server's database, seeded here first (use an empty, throwaway database).
    #[arg(long, env = "OWP_BENCH_DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    #[arg(long, default_value_t = 100_000)]
    pub tasks: i64,
    #[arg(long, default_value_t = 1_000_000)]
    pub events: i64,
    #[arg(long, default_value_t = 1_000)]
    pub workers: i64,
    /// Timed requests per endpoint.
    #[arg(long, default_value_t = 50)]
    pub samples: usize,
    /// Do not seed (the database already holds the history).
    #[arg(long)]
    pub no_seed: bool,
}

pub async fn run(args: BenchListsArgs) -> anyhow::Result<()> {
    let pool = crate::store::tool_pool(&args.database_url, 10)
        .await
        .context("connecting to --database-url")?;
    if !args.no_seed {
        let started = Instant::now();
        super::sql::seed::bulk_history(&pool, 20, args.workers, args.tasks, args.events).await?;
        println!(
            "seeded {} tasks, {} workers, {} audit events in {:.1}s",
            args.tasks,
            args.workers,
            args.events,
            started.elapsed().as_secs_f64()
        );
    }
    let http = reqwest::Client::new();
    println!(
        "{:<20} {:>8} {:>9} {:>9} {:>9}",
        "request", "samples", "p50 ms", "p95 ms", "p99 ms"
    );
    for (name, path) in &requests(&args) {
        let samples = time_request(&http, &args, path).await?;
        let p = |q: f64| {
            let i = ((samples.len() - 1) as f64 * q).round() as usize;
            samples[i].as_secs_f64() * 1000.0
        };
        println!(
            "{name:<20} {:>8} {:>9.2} {:>9.2} {:>9.2}",
            samples.len(),
            p(0.5),
            p(0.95),
            p(0.99)
        );
    }
    time_reconciliation(&pool).await
}

/// The list requests timed, by name: first and deep pages, each filter.
fn requests(args: &BenchListsArgs) -> Vec<(String, String)> {
    let mid_task = format!("t_bench{:010}", args.tasks / 2);
    let deep_task_cursor = crate::http::paging::encode_cursor(&mid_task);
    let deep_event_cursor = crate::http::paging::encode_cursor(&(args.events / 2).to_string());
    vec![
        (
            "tasks, first page".to_string(),
            "/v1/tasks?limit=50".to_string(),
        ),
        (
            "tasks, deep page".into(),
            format!("/v1/tasks?limit=50&cursor={deep_task_cursor}"),
        ),
        (
            "tasks?status=ready".into(),
            "/v1/tasks?status=ready&limit=50".into(),
        ),
        (
            "tasks?repo&status".into(),
            "/v1/tasks?repo=bench/r7&status=completed,merged&limit=50".into(),
        ),
        (
            "tasks?worker_id".into(),
            "/v1/tasks?worker_id=w_bench00000042&limit=50".into(),
        ),
        ("tasks?area".into(), "/v1/tasks?area=area7&limit=50".into()),
        ("task detail".into(), format!("/v1/tasks/{mid_task}")),
        ("workers".into(), "/v1/workers?limit=50".into()),
        (
            "workers?online".into(),
            "/v1/workers?online=false&limit=50".into(),
        ),
        ("worker detail".into(), "/v1/workers/w_bench00000042".into()),
        ("admin/repos".into(), "/v1/admin/repos".into()),
        (
            "audit, first page".into(),
            "/v1/audit/events?limit=50".into(),
        ),
        (
            "audit, deep cursor".into(),
            format!("/v1/audit/events?limit=50&cursor={deep_event_cursor}"),
        ),
        (
            "audit?event_type".into(),
            "/v1/audit/events?event_type=task_requeued&limit=50".into(),
        ),
        (
            "audit?actor".into(),
            "/v1/audit/events?actor=worker:w_bench00000042&limit=50".into(),
        ),
        (
            "audit?target".into(),
            format!("/v1/audit/events?target={mid_task}"),
        ),
        (
            "audit?since".into(),
            "/v1/audit/events?since=2026-01-01T00:00:00Z&limit=50".into(),
        ),
        (
            "audit offset 1000".into(),
            "/v1/audit/events?limit=50&offset=1000".into(),
        ),
        (
            "analytics 30d".into(),
            "/v1/analytics/repositories/bench/r3".into(),
        ),
        (
            "analytics 90d".into(),
            "/v1/analytics/repositories/bench/r3?period=90d".into(),
        ),
        (
            "reputation".into(),
            "/v1/workers/w_bench00000042/reputation".into(),
        ),
    ]
}

/// `args.samples` timings of one request, sorted.
async fn time_request(
    http: &reqwest::Client,
    args: &BenchListsArgs,
    path: &str,
) -> anyhow::Result<Vec<std::time::Duration>> {
    let url = format!("{}{path}", args.url.trim_end_matches('/'));
    let mut samples = Vec::with_capacity(args.samples);
    for _ in 0..args.samples {
        let started = Instant::now();
        let resp = http
            .get(&url)
            .header("x-admin-token", &args.admin_token)
            .send()
            .await?;
        let status = resp.status();
        resp.bytes().await?;
        samples.push(started.elapsed());
        if !status.is_success() {
            bail!("{path} answered {status}");
        }
    }
    samples.sort_unstable();
    Ok(samples)
}

/// The leader's reputation reconciliation over the whole history, timed.
async fn time_reconciliation(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    let started = Instant::now();
    let db = crate::store::Db::direct(pool.clone());
    let (mut checked, mut repaired, mut after) = (0, 0, String::new());
    while let (r, Some(last)) =
        crate::store::reputation::reconcile_batch(&db, &after, crate::scheduler::BATCH).await?
    {
        checked += r.checked;
        repaired += r.repaired;
        after = last;
    }
    println!(
        "reputation reconciliation: {checked} workers checked, {repaired} repaired, in {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    Ok(())
}
