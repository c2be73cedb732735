//! The raw-SQL ceiling for `owp bench` (issue 25, P1): the least a lifecycle can cost in
//! this database — one statement and commit to claim a ready task, one to complete it, no
//! audit, no checks — on a fixed minimal table (a primary key and one ready-queue index).
//! It is not a copy of `tasks`, so a lighter `tasks` schema shows as a better ratio, and the
//! real tables and the invariant checker never see it.

use sqlx::{PgConnection, PgPool};

use crate::store::StoreResult;

const TABLE: &str = "bench_ceiling_tasks";

/// Creates the scratch table with `n` ready tasks.
pub async fn prepare(pool: &PgPool, n: i64) -> StoreResult<()> {
    sqlx::query(&format!("drop table if exists {TABLE}"))
        .execute(pool)
        .await?;
    sqlx::query(&format!(
        "create table {TABLE} (
             id text primary key,
             status text not null default 'ready',
             priority int not null default 0,
             worker_id text,
             lease_id text,
             lease_expires_at timestamptz,
             created_at timestamptz not null default now(),
             updated_at timestamptz not null default now())"
    ))
    .execute(pool)
    .await?;
    sqlx::query(&format!(
        "create index {TABLE}_ready on {TABLE} (priority desc, created_at, id)
         where status = 'ready'"
    ))
    .execute(pool)
    .await?;
    sqlx::query(&format!(
        "insert into {TABLE} (id, created_at)
         select 't_ceiling' || lpad(i::text, 10, '0'),
                now() - make_interval(secs => ($1 - i)::float8)
         from generate_series(1, $1::int8) i"
    ))
    .bind(n)
    .execute(pool)
    .await?;
    sqlx::query(&format!("analyze {TABLE}"))
        .execute(pool)
        .await?;
    Ok(())
}

/// Claims the next ready task for `worker` (one statement, autocommit); its id, or none
/// when the queue is empty.
pub async fn claim(conn: &mut PgConnection, worker: &str) -> StoreResult<Option<String>> {
    let id = sqlx::query_scalar(&format!(
        "update {TABLE} set status = 'leased', worker_id = $1, lease_id = 'l_' || id,
                lease_expires_at = now() + interval '1 hour', updated_at = now()
         where id = (select id from {TABLE} where status = 'ready'
                     order by priority desc, created_at, id
                     limit 1 for update skip locked)
         returning id"
    ))
    .bind(worker)
    .fetch_optional(conn)
    .await?;
    Ok(id)
}

/// Completes a claimed task (one statement, autocommit).
pub async fn complete(conn: &mut PgConnection, id: &str) -> StoreResult<()> {
    sqlx::query(&format!(
        "update {TABLE} set status = 'completed', lease_id = null, lease_expires_at = null,
                updated_at = now()
         where id = $1"
    ))
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn drop_table(pool: &PgPool) -> StoreResult<()> {
    sqlx::query(&format!("drop table if exists {TABLE}"))
        .execute(pool)
        .await?;
    Ok(())
}
