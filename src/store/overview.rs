//! The pool overview: counts of workers and tasks and each repo's budget in use, read in
//! one snapshot. Behind `GET /v1/admin/state` and the pool-wide metrics gauges.

use std::collections::HashMap;
use std::time::Duration;

use crate::store::{Begin, Db};
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::domain::status::TaskStatus;

pub struct RepoOverview {
    pub repo: String,
    pub max_open_prs: i32,
    pub current_open_prs: i64,
    pub area_locks_enabled: bool,
    /// pr_opened tasks older than OWP_PR_STALE_AFTER.
    pub stale_prs: i64,
}

pub struct PoolOverview {
    /// Workers not revoked, by trust tier level (0-3).
    pub workers_by_trust_level: Vec<(i16, i64)>,
    pub workers_online: i64,
    pub workers_total: i64,
    tasks_by_status: HashMap<TaskStatus, i64>,
    pub repositories: Vec<RepoOverview>,
    /// How long the longest-waiting ready task has been ready (0 when none is).
    pub oldest_ready_age_secs: f64,
}

impl PoolOverview {
    /// Tasks in this status (0 when there are none).
    pub fn tasks(&self, status: TaskStatus) -> i64 {
        self.tasks_by_status.get(&status).copied().unwrap_or(0)
    }
}

pub async fn read_overview(
    pool: &Db,
    heartbeat_timeout: Duration,
    pr_stale_after: Duration,
) -> StoreResult<PoolOverview> {
    // one snapshot, so the counts add up
    let mut tx = super::begin_as(pool, Begin::Snapshot).await?;
    let w = sqlx::query!(
        r#"select count(*) filter (where online and last_heartbeat > now() - make_interval(secs => $1)) as "online!",
                  count(*) as "total!",
                  coalesce((select extract(epoch from now() - min(updated_at))::float8
                            from tasks where status = 'ready'), 0) as "oldest_ready!"
           from workers"#,
        heartbeat_timeout.as_secs_f64()
    )
    .fetch_one(&mut *tx)
    .await?;
    let by_tier = sqlx::query!(
        r#"select trust_tier, count(*) as "n!" from workers where revoked_at is null
           group by trust_tier order by trust_tier"#
    )
    .fetch_all(&mut *tx)
    .await?;
    let by_status = sqlx::query!(
        r#"select status as "status: TaskStatus", count(*) as "n!" from tasks group by status"#
    )
    .fetch_all(&mut *tx)
    .await?;
    let repositories = super::views::repos_in(&mut tx, pr_stale_after.as_secs_f64())
        .await?
        .into_iter()
        .map(|r| RepoOverview {
            repo: r.repo,
            max_open_prs: r.max_open_prs,
            current_open_prs: r.open_slots,
            area_locks_enabled: r.area_locks_enabled,
            stale_prs: r.stale_prs,
        })
        .collect();
    super::commit(tx).await?;
    Ok(PoolOverview {
        workers_by_trust_level: by_tier.into_iter().map(|r| (r.trust_tier, r.n)).collect(),
        workers_online: w.online,
        workers_total: w.total,
        tasks_by_status: by_status.into_iter().map(|r| (r.status, r.n)).collect(),
        repositories,
        oldest_ready_age_secs: w.oldest_ready,
    })
}

/// Leases granted and tasks finished (completed or merged) per minute over the last
/// `minutes`, oldest first, every minute listed (zeros included). Reads the audit log's
/// last hour by its BRIN index on `at`.
pub async fn throughput(pool: &Db, minutes: i32) -> StoreResult<Vec<(DateTime<Utc>, i64, i64)>> {
    let rows = sqlx::query!(
        r#"with m as (
               select generate_series(date_trunc('minute', now()) - make_interval(mins => $1 - 1),
                                      date_trunc('minute', now()), interval '1 minute') as at),
           e as (
               select date_trunc('minute', at) as at,
                      count(*) filter (where kind = 'lease_granted') as claimed,
                      count(*) filter (where task_is_delivered(to_status)) as finished
               from audit_events
               where at >= date_trunc('minute', now()) - make_interval(mins => $1 - 1)
               group by 1)
           select m.at as "at!", coalesce(e.claimed, 0) as "claimed!", coalesce(e.finished, 0) as "finished!"
           from m left join e on e.at = m.at order by m.at"#,
        minutes
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.at, r.claimed, r.finished))
        .collect())
}
