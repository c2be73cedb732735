//! Bulk history for `owp bench-lists`: many tasks, workers and audit events written
//! straight into an empty benchmark database, far faster than through the API.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::store::StoreResult;

/// Adds `repos` repos, `workers` workers, `tasks` tasks (mostly finished, some ready), a
/// lease history for the finished ones and `events` audit events spread over them, then
/// refreshes the planner's statistics.
pub async fn bulk_history(
    pool: &PgPool,
    repos: i64,
    workers: i64,
    tasks: i64,
    events: i64,
) -> StoreResult<()> {
    sqlx::query!(
        "insert into repositories (repo, max_open_prs)
         select 'bench/r' || i, 1000 from generate_series(1, $1::int8) i
         on conflict do nothing",
        repos
    )
    .execute(pool)
    .await?;
    sqlx::query!(
        "insert into workers (id, name, token_digest, skills, capacity_points, max_concurrent_tasks, online)
         select 'w_bench' || lpad(i::text, 8, '0'), 'bench ' || i,
                sha256(('bench-token-' || i)::bytea), '{rust}', 10, 2, i % 3 = 0
         from generate_series(1, $1::int8) i
         on conflict do nothing",
        workers
    )
    .execute(pool)
    .await?;
    sqlx::query!(
        "insert into tasks (id, repo, title, status, worker_id, estimate_points, priority, area, created_at)
         select 't_bench' || lpad(i::text, 10, '0'), 'bench/r' || (i % $2 + 1), 'task ' || i,
                case when i % 10 = 0 then 'ready' when i % 20 = 1 then 'failed'
                     when i % 20 = 3 then 'cancelled' when i % 5 = 2 then 'merged' else 'completed' end,
                case when i % 10 = 0 or i % 20 = 3 then null
                     else 'w_bench' || lpad((i % $3 + 1)::text, 8, '0') end,
                1 + i % 5, i % 7, 'area' || (i % 50), now() - make_interval(secs => ($1 - i)::float8)
         from generate_series(1, $1::int8) i
         on conflict do nothing",
        tasks,
        repos,
        workers,
    )
    .execute(pool)
    .await?;
    sqlx::query!(
        "insert into audit_events (at, kind, task_id, worker_id, repo, actor, from_status, to_status)
         select now() - make_interval(secs => ($1 - i)::float8 / 10),
                (array['task_created', 'lease_granted', 'task_status_changed', 'task_requeued'])[i % 4 + 1],
                't_bench' || lpad((i % $2 + 1)::text, 10, '0'),
                case when i % 4 = 0 then null else 'w_bench' || lpad((i % $3 + 1)::text, 8, '0') end,
                'bench/r' || (i % $4 + 1),
                case when i % 4 = 0 then 'admin:alice' else 'worker:w_bench' || lpad((i % $3 + 1)::text, 8, '0') end,
                'leased', 'completed'
         from generate_series(1, $1::int8) i",
        events,
        tasks,
        workers,
        repos,
    )
    .execute(pool)
    .await?;
    lease_history(pool).await?;
    sqlx::query!("analyze").execute(pool).await?;
    Ok(())
}

/// The leases of the seeded finished tasks, and the reputation counters they make.
async fn lease_history(pool: &PgPool) -> StoreResult<()> {
    // One lease per finished task (granted 10 min after the task, worked 1-4 h, PRs
    // reviewed 1-9 h), and an expired earlier attempt on every 7th.
    sqlx::query!(
        "insert into leases (id, task_id, worker_id, attempt, granted_at, ended_at, end_reason,
                             last_report, on_time, pr_decided_at)
         select 'l_bench' || t.id || '_' || a.n, t.id, t.worker_id, 0,
                t.created_at + make_interval(mins => 10 + a.n * 300),
                t.created_at + make_interval(mins => 10 + a.n * 300 + 60 * (1 + h.i % 4)),
                case when a.n = 0 then 'lease_expired' when t.status = 'merged' then 'pr_opened' else t.status end,
                case when a.n = 0 then 'in_progress' when t.status = 'merged' then 'merged' else t.status end,
                a.n = 1 and h.i % 4 < 2,
                case when a.n = 1 and t.status = 'merged'
                     then t.created_at + make_interval(mins => 10 + 300 + 60 * (1 + h.i % 4) + 60 * (1 + h.i % 9)) end
         from tasks t
         cross join lateral (select hashtext(t.id) & 1023 as i) h
         cross join lateral (select n from generate_series(0, 1) n) a
         where t.id like 't_bench%' and task_has_outcome(t.status)
           and (a.n = 1 or h.i % 7 = 0)
         on conflict do nothing"
    )
    .execute(pool)
    .await?;
    // the counters the triggers would have kept, had these leases ended one by one
    sqlx::query!(
        "insert into worker_reputation select * from worker_reputation_expected e
         where e.worker_id like 'w_bench%'
         on conflict (worker_id) do update set attempts = excluded.attempts,
             delivered = excluded.delivered, on_time = excluded.on_time, failed = excluded.failed,
             expired = excluded.expired, prs_merged = excluded.prs_merged,
             prs_closed = excluded.prs_closed, quality_sum = excluded.quality_sum,
             quality_count = excluded.quality_count"
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Connections to this database doing something (not idle), other than the caller's.
pub async fn busy_connections(pool: &PgPool) -> StoreResult<i64> {
    let n = sqlx::query_scalar!(
        r#"select count(*) as "n!" from pg_stat_activity
           where datname = current_database() and state <> 'idle' and pid <> pg_backend_pid()"#
    )
    .fetch_one(pool)
    .await?;
    Ok(n)
}

/// Adds `n` online workers named `<prefix>-<i>` whose bearer tokens are `<prefix>-token-<i>`
/// (i from 1), for load that needs more workers than registering through the API allows.
pub async fn workers_with_tokens(pool: &PgPool, prefix: &str, n: i64) -> StoreResult<()> {
    sqlx::query!(
        "insert into workers (id, name, token_digest, skills, capacity_points, max_concurrent_tasks)
         select 'w_' || $1 || '_' || i, $1 || '-' || i, sha256(($1 || '-token-' || i)::bytea),
                '{rust}', 10, 2
         from generate_series(1, $2::int8) i
         on conflict do nothing",
        prefix,
        n
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Adds repo `<prefix>` with `n` tasks leased to one worker (`w_<prefix>_holder`) whose
/// leases all expire `in_secs` from now, for `owp bench-sweep`; the moment they expire.
pub async fn expiring_leases(
    pool: &PgPool,
    prefix: &str,
    n: i64,
    in_secs: f64,
) -> StoreResult<DateTime<Utc>> {
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "insert into repositories (repo, max_open_prs) values ($1, 10000)",
        prefix
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "insert into workers (id, name, token_digest, skills, capacity_points, max_concurrent_tasks)
         values ('w_' || $1 || '_holder', $1 || '-holder', sha256(($1 || '-holder')::bytea), '{}', 1000, 100)",
        prefix
    )
    .execute(&mut *tx)
    .await?;
    let expires = sqlx::query_scalar!(
        r#"select now() + make_interval(secs => $1) as "at!""#,
        in_secs
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query!(
        "insert into tasks (id, repo, title, estimate_points, status, worker_id, lease_id, lease_expires_at)
         select 't_' || $1 || '_' || i, $1, 'sweep ' || i, 1, 'leased', 'w_' || $1 || '_holder',
                'l_' || $1 || '_' || i, $3
         from generate_series(1, $2::int8) i",
        prefix,
        n,
        expires,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "insert into leases (id, task_id, worker_id, attempt)
         select 'l_' || $1 || '_' || i, 't_' || $1 || '_' || i, 'w_' || $1 || '_holder', 0
         from generate_series(1, $2::int8) i",
        prefix,
        n,
    )
    .execute(&mut *tx)
    .await?;
    crate::store::commit(tx).await?;
    sqlx::query!("analyze tasks, leases").execute(pool).await?;
    Ok(expires)
}

/// Live leases the holder of `expiring_leases(prefix)` still has.
pub async fn live_leases_of_holder(pool: &PgPool, prefix: &str) -> StoreResult<i64> {
    let n = sqlx::query_scalar!(
        r#"select count(*) as "n!" from tasks
           where worker_id = 'w_' || $1 || '_holder' and task_is_live(status)"#,
        prefix
    )
    .fetch_one(pool)
    .await?;
    Ok(n)
}

/// When the sweeps ended a repo's leases: the first and last such event and their count.
pub struct SweepWindow {
    pub first: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
    pub leases: i64,
}

pub async fn sweep_window(pool: &PgPool, repo: &str) -> StoreResult<SweepWindow> {
    let w = sqlx::query_as!(
        SweepWindow,
        r#"select min(at) as first, max(at) as last, count(*) as "leases!" from audit_events
           where repo = $1 and kind = 'lease_expired'"#,
        repo
    )
    .fetch_one(pool)
    .await?;
    Ok(w)
}
