//! Duty: a worker silent for longer than the heartbeat timeout is marked offline, and its
//! live leases are requeued at once (reason `worker_offline`). Its `pr_opened` tasks keep
//! their repo slot and area lock: the PR exists and still awaits review.

use std::time::{Duration, Instant};

use sqlx::PgPool;

use super::BATCH;
use crate::store::StoreResult;

#[derive(Debug, Default, Clone, Copy)]
pub struct Offline {
    pub workers: u64,
    pub requeued: u64,
    pub failed: u64,
}

pub async fn run(pool: &PgPool, heartbeat_timeout: Duration) -> StoreResult<Offline> {
    let started = Instant::now();
    let mut total = Offline::default();
    loop {
        let n = mark_offline_batch(pool, heartbeat_timeout).await?;
        total.workers += n;
        if n < BATCH as u64 {
            break;
        }
    }
    loop {
        let (requeued, failed) = requeue_batch(pool).await?;
        total.requeued += requeued;
        total.failed += failed;
        if requeued + failed < BATCH as u64 {
            break;
        }
    }
    crate::metrics::sweep(
        "offline_workers",
        total.workers + total.requeued + total.failed,
        started.elapsed(),
    );
    crate::metrics::workers_marked_offline(total.workers);
    crate::metrics::requeued("worker_offline", total.requeued);
    Ok(total)
}

/// Marks silent workers offline. A worker whose heartbeat arrives meanwhile is skipped
/// (its row is locked) or no longer matches the re-stated condition.
pub async fn mark_offline_batch(pool: &PgPool, heartbeat_timeout: Duration) -> StoreResult<u64> {
    let n = sqlx::query_scalar!(
        r#"with silent as (
               -- workers_online_by_heartbeat
               select id from workers
               where online and last_heartbeat < now() - make_interval(secs => $1)
               order by last_heartbeat
               limit $2
               for update skip locked),
           upd as (
               update workers w set online = false
               from silent s
               where w.id = s.id and w.online and w.last_heartbeat < now() - make_interval(secs => $1)
               returning w.id, w.last_heartbeat),
           ev as (
               insert into audit_events (kind, worker_id, reason, data)
               select 'worker_offline', id, 'heartbeat_timeout', jsonb_build_object('last_heartbeat', last_heartbeat)
               from upd)
           select count(*) as "n!" from upd"#,
        heartbeat_timeout.as_secs_f64(),
        BATCH
    )
    .fetch_one(pool)
    .await?;
    Ok(n as u64)
}

/// Requeues live leases held by offline workers. Like an expired lease, the lost attempt
/// counts (`attempt + 1`), so a task that keeps losing its workers ends as `failed`.
pub async fn requeue_batch(pool: &PgPool) -> StoreResult<(u64, u64)> {
    let r = sqlx::query!(
        r#"with held as (
               select t.id, t.worker_id, t.lease_id, t.status
               from tasks t join workers w on w.id = t.worker_id
               where not w.online and t.status in ('leased', 'in_progress', 'blocked')
               limit $1
               for update of t skip locked),
           upd as (
               update tasks t set
                   -- a failed attempt, as domain::transition::failed_attempt counts it
                   status = case when t.attempt + 1 >= t.max_attempts then 'failed' else 'ready' end,
                   attempt = t.attempt + 1,
                   worker_id = null, lease_id = null, lease_expires_at = null,
                   holds_area_lock = false, updated_at = now()
               from held h
               where t.id = h.id and t.status in ('leased', 'in_progress', 'blocked') and t.worker_id = h.worker_id
               returning t.id, t.repo, t.status as new_status, t.attempt, h.worker_id, h.lease_id, h.status as old_status),
           ended as (
               update leases l set ended_at = now(), end_reason = 'worker_offline'
               from upd where l.id = upd.lease_id and l.ended_at is null),
           ev as (
               insert into audit_events (kind, task_id, worker_id, repo, lease_id, from_status, to_status, reason, data)
               select case when new_status = 'ready' then 'task_requeued' else 'task_failed' end,
                      id, worker_id, repo, lease_id, old_status, new_status, 'worker_offline',
                      jsonb_build_object('attempt', attempt)
               from upd)
           select count(*) filter (where new_status = 'ready') as "requeued!",
                  count(*) filter (where new_status = 'failed') as "failed!"
           from upd"#,
        BATCH
    )
    .fetch_one(pool)
    .await?;
    Ok((r.requeued as u64, r.failed as u64))
}
