//! The pool overview behind `GET /v1/admin/state`.

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
}

pub async fn read_state(pool: &PgPool, heartbeat_timeout_secs: f64) -> StoreResult<PoolState> {
    // one snapshot, so the counts add up
    let mut tx = super::begin(pool).await?;
    sqlx::query!("set transaction isolation level repeatable read, read only")
        .execute(&mut *tx)
        .await?;
    let w = sqlx::query!(
        r#"select count(*) filter (where online and last_heartbeat > now() - make_interval(secs => $1)) as "online!",
                  count(*) as "total!"
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
    })
}

/// What the state gauges export, read in one cheap statement at scrape time.
pub struct Gauges {
    pub tasks_by_status: Vec<(String, i64)>,
    pub workers_online: i64,
    /// (repo, open slots in use, max_open_prs)
    pub repos: Vec<(String, i64, i32)>,
    pub oldest_ready_age_secs: f64,
}

pub async fn read_gauges(pool: &PgPool, heartbeat_timeout_secs: f64) -> StoreResult<Gauges> {
    let by_status = sqlx::query!(r#"select status, count(*) as "n!" from tasks group by status"#)
        .fetch_all(pool)
        .await?;
    // tasks_open_by_repo, tasks_ready_queue and workers_online_by_heartbeat keep these cheap
    let r = sqlx::query!(
        r#"select
               (select count(*) from workers
                where online and last_heartbeat > now() - make_interval(secs => $1)) as "online!",
               coalesce((select extract(epoch from now() - min(updated_at))::float8
                         from tasks where status = 'ready'), 0) as "oldest!",
               coalesce((select jsonb_agg(jsonb_build_array(r.repo, r.max_open_prs,
                            (select count(*) from tasks t where t.repo = r.repo
                             and t.status in ('leased', 'in_progress', 'blocked', 'pr_opened'))))
                         from repositories r), '[]') as "repos!""#,
        heartbeat_timeout_secs
    )
    .fetch_one(pool)
    .await?;
    let repos = serde_json::from_value::<Vec<(String, i32, i64)>>(r.repos)
        .map_err(|e| super::StoreError::Internal(sqlx::Error::Decode(Box::new(e))))?
        .into_iter()
        .map(|(repo, max, open)| (repo, open, max))
        .collect();
    Ok(Gauges {
        tasks_by_status: by_status.into_iter().map(|r| (r.status, r.n)).collect(),
        workers_online: r.online,
        repos,
        oldest_ready_age_secs: r.oldest,
    })
}
