//! Repository analytics: one read-only statement over the repo's tasks and the leases of
//! those tasks (`tasks_by_repo`, then `leases_by_task_worker` per task). Definitions in
//! docs/PROTOCOL.md "Repository analytics".

use std::time::Duration;

use crate::store::{Begin, Db};

use super::StoreResult;

/// The raw figures of one repo over a window ending now.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub tasks_created: i64,
    pub tasks_completed: i64,
    pub tasks_merged: i64,
    pub tasks_failed: i64,
    pub avg_completion_time_s: Option<f64>,
    pub p50_completion_time_s: Option<f64>,
    pub p90_completion_time_s: Option<f64>,
    pub prs_merged: i64,
    pub prs_closed: i64,
    pub leases_ended: i64,
    pub leases_expired: i64,
    /// Seconds of lease time on the repo's tasks inside the window.
    pub held_s: f64,
    /// Distinct workers that held one of its tasks inside the window.
    pub workers: i64,
    pub review_wait_p50_s: Option<f64>,
    pub queue_wait_p50_s: Option<f64>,
    pub budget_full_with_ready: bool,
    pub rejections: i64,
    pub unclear_rejections: i64,
}

/// `None` when the repo does not exist.
pub async fn repo_figures(pool: &Db, repo: &str, window: Duration) -> StoreResult<Option<Figures>> {
    let mut tx = super::begin_as(pool, Begin::Snapshot).await?;
    // The repo's leases are a few thousand index probes; a hash join instead reads every
    // lease of every repo (60 ms at 100k leases, growing with the pool). The planner
    // cannot know the join is that selective, so it is told.
    sqlx::query!("set local enable_hashjoin = off")
        .execute(&mut *tx)
        .await?;
    sqlx::query!("set local enable_mergejoin = off")
        .execute(&mut *tx)
        .await?;
    let f = sqlx::query_as!(
        Figures,
        r#"with w as (select now() - make_interval(secs => $2) as since, now() as until),
           t as (select id, status, created_at, updated_at from tasks where repo = $1),
           -- per task through leases_by_task_worker: a repo's slice of the history, never
           -- a scan of every lease
           l as (
               select l.worker_id, l.granted_at, l.ended_at, l.end_reason, l.last_report,
                      l.pr_decided_at, t.created_at as task_created,
                      l.seq = min(l.seq) over (partition by l.task_id) as first,
                      l.end_reason in ('completed', 'pr_opened') and l.ended_at >= w.since as delivered,
                      extract(epoch from l.ended_at - l.granted_at)::float8 as work_s,
                      l.last_report in ('merged', 'closed') and l.pr_decided_at >= w.since as reviewed,
                      extract(epoch from l.pr_decided_at - l.ended_at)::float8 as wait_s,
                      greatest(extract(epoch from least(coalesce(l.ended_at, w.until), w.until)
                                                  - greatest(l.granted_at, w.since)), 0)::float8 as held_s
               from t cross join w
               cross join lateral (select * from leases x where x.task_id = t.id) l),
           ls as (
               select count(*) filter (where l.end_reason = 'completed' and l.ended_at >= w.since) as completed,
                      avg(work_s) filter (where delivered) as avg_work,
                      percentile_cont(0.5) within group (order by work_s) filter (where delivered) as p50_work,
                      percentile_cont(0.9) within group (order by work_s) filter (where delivered) as p90_work,
                      count(*) filter (where reviewed and last_report = 'merged') as merged,
                      count(*) filter (where reviewed and last_report = 'closed') as closed,
                      percentile_cont(0.5) within group (order by wait_s) filter (where reviewed) as p50_wait,
                      count(*) filter (where l.ended_at >= w.since) as ended,
                      count(*) filter (where l.ended_at >= w.since
                                         and l.end_reason in ('lease_expired', 'worker_offline')) as expired,
                      coalesce(sum(held_s), 0) as held,
                      count(distinct worker_id) filter (where held_s > 0) as workers,
                      percentile_cont(0.5) within group (order by extract(epoch from granted_at - task_created)::float8)
                          filter (where first and granted_at >= w.since) as p50_queue
               from l cross join w),
           ts as (
               select count(*) filter (where t.created_at >= w.since) as created,
                      count(*) filter (where t.status = 'failed' and t.updated_at >= w.since) as failed,
                      count(*) filter (where task_is_open(t.status)) as open,
                      count(*) filter (where t.status = 'ready') as ready
               from t cross join w),
           -- offers_by_task per task
           os as (
               select count(*) as rejections,
                      count(*) filter (where o.reason = 'unclear_requirements') as unclear
               from t cross join w
               join offers o on o.task_id = t.id
               where o.outcome = 'rejected' and o.ended_at >= w.since)
           select ts.created as "tasks_created!", ls.completed as "tasks_completed!",
                  ls.merged as "tasks_merged!", ts.failed as "tasks_failed!",
                  ls.avg_work as avg_completion_time_s, ls.p50_work as p50_completion_time_s,
                  ls.p90_work as p90_completion_time_s, ls.merged as "prs_merged!", ls.closed as "prs_closed!",
                  ls.ended as "leases_ended!", ls.expired as "leases_expired!", ls.held as "held_s!",
                  ls.workers as "workers!", ls.p50_wait as review_wait_p50_s, ls.p50_queue as queue_wait_p50_s,
                  (ts.open >= r.max_open_prs and ts.ready > 0) as "budget_full_with_ready!",
                  os.rejections as "rejections!", os.unclear as "unclear_rejections!"
           from repositories r, ls, ts, os
           where r.repo = $1"#,
        repo,
        window.as_secs_f64(),
    )
    .fetch_optional(&mut *tx)
    .await?;
    super::commit(tx).await?;
    Ok(f)
}
