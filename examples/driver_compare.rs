//! sqlx (the service's driver) against tokio-postgres behind deadpool-postgres on the same
//! work, same database, same connection count (issue 12, item 4). Figures and the decision
//! are in docs/BENCHMARKS.md.
//!
//! ```sh
//! cargo run --release --features driver-compare --example driver_compare -- --database-url postgres://... [--tasks 20000] [--connections 20]
//! ```
//!
//! Three kinds of work, each on a scratch copy of `tasks` (`store::ceiling`):
//! 1. claim + complete, one autocommitted statement each (the raw-SQL ceiling of `owp bench`);
//! 2. a report's shape: BEGIN, lock the row, update it, COMMIT. sqlx waits for each answer
//!    (four round trips); tokio-postgres pipelines BEGIN with the lock and the update with
//!    the COMMIT (two round trips);
//! 3. a bulk import of the tasks: sqlx sends them as one JSON array read by
//!    `jsonb_to_recordset` (what `POST /v1/tasks/bulk` does), tokio-postgres as binary COPY.

use std::time::Instant;

use clap::Parser;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use owp_pool::store::ceiling;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::NoTls;

#[derive(Parser)]
struct Args {
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    #[arg(long, default_value_t = 20_000)]
    tasks: i64,
    #[arg(long, default_value_t = 20)]
    connections: usize,
}

const CLAIM: &str =
    "update bench_ceiling_tasks set status = 'leased', worker_id = $1, lease_id = 'l_' || id,
        lease_expires_at = now() + interval '1 hour', updated_at = now()
 where id = (select id from bench_ceiling_tasks where status = 'ready'
             order by priority desc, created_at, id limit 1 for update skip locked)
 returning id";
const COMPLETE: &str = "update bench_ceiling_tasks set status = 'completed', lease_id = null,
        lease_expires_at = null, updated_at = now() where id = $1";
const LOCK: &str = "select status from bench_ceiling_tasks where id = $1 for update";
const REPORT: &str =
    "update bench_ceiling_tasks set priority = priority + 1, updated_at = now() where id = $1";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let n = args.connections;
    let sqlx_pool = PgPoolOptions::new()
        .max_connections(n as u32)
        .connect(&args.database_url)
        .await?;
    let pg_config: tokio_postgres::Config = args.database_url.parse()?;
    let manager = Manager::from_config(
        pg_config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let dp_pool = Pool::builder(manager).max_size(n).build()?;
    println!(
        "{} tasks, {n} connections each; rates in operations/s (higher is better)\n",
        args.tasks
    );
    println!("{:<44} {:>10} {:>16}", "work", "sqlx", "tokio-postgres");

    // each measured twice, alternating, so a drift of the shared machine hits both
    let (mut a, mut b) = (0.0, 0.0);
    for _ in 0..2 {
        ceiling::prepare(&sqlx_pool, args.tasks).await?;
        a += timed(args.tasks, sqlx_pairs(&sqlx_pool, n)).await? / 2.0;
        ceiling::prepare(&sqlx_pool, args.tasks).await?;
        b += timed(args.tasks, deadpool_pairs(&dp_pool, n)).await? / 2.0;
    }
    row("claim + complete (2 statements, autocommit)", a, b);

    ceiling::prepare(&sqlx_pool, args.tasks).await?;
    let (mut a, mut b) = (0.0, 0.0);
    for _ in 0..2 {
        a += timed(args.tasks, sqlx_reports(&sqlx_pool, n, args.tasks)).await? / 2.0;
        b += timed(args.tasks, deadpool_reports(&dp_pool, n, args.tasks)).await? / 2.0;
    }
    row("report transaction (begin, lock, update, commit)", a, b);

    let (mut a, mut b) = (0.0, 0.0);
    for _ in 0..2 {
        ceiling::prepare(&sqlx_pool, 0).await?;
        a += timed(args.tasks, sqlx_bulk(&sqlx_pool, args.tasks)).await? / 2.0;
        ceiling::prepare(&sqlx_pool, 0).await?;
        b += timed(args.tasks, deadpool_bulk(&dp_pool, args.tasks)).await? / 2.0;
    }
    row("bulk insert (rows/s, one connection)", a, b);
    ceiling::drop_table(&sqlx_pool).await?;
    Ok(())
}

fn row(work: &str, a: f64, b: f64) {
    println!(
        "{work:<44} {a:>10.0} {b:>16.0}  ({:+.0} %)",
        (b / a - 1.0) * 100.0
    );
}

/// Runs `work` and returns `ops` per second of it.
async fn timed(
    ops: i64,
    work: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    work.await?;
    Ok(ops as f64 / started.elapsed().as_secs_f64())
}

async fn join_all(loops: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>) -> anyhow::Result<()> {
    for l in futures::future::join_all(loops).await {
        l??;
    }
    Ok(())
}

async fn sqlx_pairs(pool: &PgPool, n: usize) -> anyhow::Result<()> {
    let loops = (0..n)
        .map(|w| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut conn = pool.acquire().await?;
                let me = format!("w{w}");
                while let Some(id) = ceiling::claim(&mut conn, &me).await? {
                    ceiling::complete(&mut conn, &id).await?;
                }
                Ok(())
            })
        })
        .collect();
    join_all(loops).await
}

async fn deadpool_pairs(pool: &Pool, n: usize) -> anyhow::Result<()> {
    let loops = (0..n)
        .map(|w| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let client = pool.get().await?;
                let claim = client.prepare_cached(CLAIM).await?;
                let complete = client.prepare_cached(COMPLETE).await?;
                let me = format!("w{w}");
                while let Some(row) = client.query_opt(&claim, &[&me]).await? {
                    let id: String = row.get(0);
                    client.execute(&complete, &[&id]).await?;
                }
                Ok(())
            })
        })
        .collect();
    join_all(loops).await
}

/// The ids of connection `c`'s share of the tasks (`store::ceiling` numbers them).
fn share(c: usize, n: usize, tasks: i64) -> impl Iterator<Item = String> {
    (1..=tasks)
        .filter(move |i| (*i as usize) % n == c)
        .map(|i| format!("t_ceiling{i:010}"))
}

async fn sqlx_reports(pool: &PgPool, n: usize, tasks: i64) -> anyhow::Result<()> {
    let loops = (0..n)
        .map(|c| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for id in share(c, n, tasks) {
                    let mut tx = pool.begin().await?;
                    let _status: String = sqlx::query_scalar(LOCK)
                        .bind(&id)
                        .fetch_one(&mut *tx)
                        .await?;
                    sqlx::query(REPORT).bind(&id).execute(&mut *tx).await?;
                    tx.commit().await?;
                }
                Ok(())
            })
        })
        .collect();
    join_all(loops).await
}

async fn deadpool_reports(pool: &Pool, n: usize, tasks: i64) -> anyhow::Result<()> {
    let loops = (0..n)
        .map(|c| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let client = pool.get().await?;
                let lock = client.prepare_cached(LOCK).await?;
                let report = client.prepare_cached(REPORT).await?;
                for id in share(c, n, tasks) {
                    // requests issued together go out together: one round trip for each pair
                    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&id];
                    let (_, row) = tokio::try_join!(
                        client.batch_execute("begin"),
                        client.query_one(&lock, &params)
                    )?;
                    let _status: String = row.get(0);
                    tokio::try_join!(
                        client.execute(&report, &params),
                        client.batch_execute("commit")
                    )?;
                }
                Ok(())
            })
        })
        .collect();
    join_all(loops).await
}

async fn sqlx_bulk(pool: &PgPool, tasks: i64) -> anyhow::Result<()> {
    let rows: Vec<serde_json::Value> = (1..=tasks)
        .map(|i| {
            serde_json::json!({"id": format!("t_bulk{i:010}"), "repo": "bench/bulk",
                               "title": format!("task {i}"), "estimate_points": 1 + i % 5})
        })
        .collect();
    sqlx::query(
        "insert into bench_ceiling_tasks (id, repo, title, estimate_points)
         select id, repo, title, estimate_points
         from jsonb_to_recordset($1) as x(id text, repo text, title text, estimate_points int)",
    )
    .bind(serde_json::Value::Array(rows))
    .execute(pool)
    .await?;
    Ok(())
}

async fn deadpool_bulk(pool: &Pool, tasks: i64) -> anyhow::Result<()> {
    let client = pool.get().await?;
    let sink = client
        .copy_in("copy bench_ceiling_tasks (id, repo, title, estimate_points) from stdin binary")
        .await?;
    let writer = BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::TEXT, Type::TEXT, Type::INT4]);
    futures::pin_mut!(writer);
    for i in 1..=tasks {
        let (id, title, points) = (
            format!("t_bulk{i:010}"),
            format!("task {i}"),
            (1 + i % 5) as i32,
        );
        writer
            .as_mut()
            .write(&[&id, &"bench/bulk", &title, &points])
            .await?;
    }
    writer.finish().await?;
    Ok(())
}
