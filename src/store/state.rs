//! The pool overview behind `GET /v1/admin/state` and the pool-wide metrics gauges.

use sqlx::PgPool;

use super::StoreResult;

pub struct RepoState {
    pub repo: String,
    pub max_open_prs: i32,
    pub current_open_prs: i64,
    pub area_locks_enabled: bool,
}

pub struct PoolState {
    pub workers_online: i64,
    pub workers_total: i64,
    /// (status, count) for every status that has tasks
    pub tasks_by_status: Vec<(String, i64)>,
    pub repositories: Vec<RepoState>,
    /// How long the longest-waiting ready task has been ready (0 when none is).
    pub oldest_ready_age_secs: f64,
}

pub async fn read_state(pool: &PgPool, heartbeat_timeout_secs: f64) -> StoreResult<PoolState> {
    // one snapshot, so the counts add up
    let mut tx = super::begin(pool).await?;
    sqlx::query!("set transaction isolation level repeatable read, read only")
        .execute(&mut *tx)
        .await?;
    let w = sqlx::query!(
        r#"select count(*) filter (where online and last_heartbeat > now() - make_interval(secs => $1)) as "online!",
                  count(*) as "total!",
                  coalesce((select extract(epoch from now() - min(updated_at))::float8
                            from tasks where status = 'ready'), 0) as "oldest_ready!"
           from workers"#,
        heartbeat_timeout_secs
    )
    .fetch_one(&mut *tx)
    .await?;
    let by_status = sqlx::query!(r#"select status, count(*) as "n!" from tasks group by status"#)
        .fetch_all(&mut *tx)
        .await?;
    let repositories = sqlx::query_as!(
        RepoState,
        r#"select r.repo, r.max_open_prs, r.area_locks_enabled,
                  (select count(*) from tasks t where t.repo = r.repo
                   and t.status in ('leased', 'in_progress', 'blocked', 'pr_opened')) as "current_open_prs!"
           from repositories r order by r.repo"#
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(PoolState {
        workers_online: w.online,
        workers_total: w.total,
        tasks_by_status: by_status.into_iter().map(|r| (r.status, r.n)).collect(),
        repositories,
        oldest_ready_age_secs: w.oldest_ready,
    })
}
