//! Bulk history for `owp bench-lists`: many tasks, workers and audit events written
//! straight into an empty benchmark database, far faster than through the API.

use sqlx::PgPool;

use super::StoreResult;

/// Adds `repos` repos, `workers` workers, `tasks` tasks (mostly finished, some ready) and
/// `events` audit events spread over them, then refreshes the planner's statistics.
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
    sqlx::query!("analyze").execute(pool).await?;
    Ok(())
}
