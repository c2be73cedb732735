//! Duty: leases that ran past their TTL end; their tasks go back to `ready` with
//! `attempt + 1`, or become terminal `failed` at `max_attempts`.

use std::time::Instant;

use sqlx::PgPool;

use super::BATCH;
use crate::store::StoreResult;

#[derive(Debug, Default, Clone, Copy)]
pub struct Expired {
    pub leases: u64,
    pub requeued: u64,
    pub failed: u64,
}

/// Expires every overdue lease, in batches of `BATCH` rows, one transaction each.
pub async fn run(pool: &PgPool) -> StoreResult<Expired> {
    let started = Instant::now();
    let mut total = Expired::default();
    loop {
        let b = expire_batch(pool).await?;
        total.leases += b.leases;
        total.requeued += b.requeued;
        total.failed += b.failed;
        if b.leases < BATCH as u64 {
            break;
        }
    }
    crate::metrics::sweep("lease_expiry", total.leases, started.elapsed());
    crate::metrics::leases_expired(total.leases);
    crate::metrics::requeued("lease_expired", total.requeued);
    Ok(total)
}

/// One batch in one statement (so one transaction): the task, its lease and both audit
/// events change together (I7). `skip locked` passes over rows a report is changing right
/// now, and the update re-states the expiry condition, so a concurrent second sweep (two
/// leaders) finds nothing left to do and writes no duplicate event.
pub async fn expire_batch(pool: &PgPool) -> StoreResult<Expired> {
    let r = sqlx::query!(
        r#"with overdue as (
               -- tasks_live_by_expiry
               select id, worker_id, lease_id, status from tasks
               where status in ('leased', 'in_progress', 'blocked') and lease_expires_at < now()
               order by lease_expires_at
               limit $1
               for update skip locked),
           upd as (
               update tasks t set
                   -- a failed attempt, as domain::transition::failed_attempt counts it
                   status = case when t.attempt + 1 >= t.max_attempts then 'failed' else 'ready' end,
                   attempt = t.attempt + 1,
                   worker_id = null, lease_id = null, lease_expires_at = null,
                   holds_area_lock = false, updated_at = now()
               from overdue o
               where t.id = o.id and t.status in ('leased', 'in_progress', 'blocked') and t.lease_expires_at < now()
               returning t.id, t.repo, t.status as new_status, t.attempt, o.worker_id, o.lease_id, o.status as old_status),
           ended as (
               update leases l set ended_at = now(), end_reason = 'lease_expired'
               from upd where l.id = upd.lease_id and l.ended_at is null),
           ev_expired as (
               insert into audit_events (kind, task_id, worker_id, repo, lease_id, from_status, to_status, reason, data)
               select 'lease_expired', id, worker_id, repo, lease_id, old_status, new_status, 'lease_expired',
                      jsonb_build_object('attempt', attempt)
               from upd),
           ev_requeued as (
               insert into audit_events (kind, task_id, worker_id, repo, lease_id, from_status, to_status, reason, data)
               select 'task_requeued', id, worker_id, repo, lease_id, old_status, 'ready', 'lease_expired',
                      jsonb_build_object('attempt', attempt)
               from upd where new_status = 'ready')
           select count(*) as "leases!", count(*) filter (where new_status = 'ready') as "requeued!",
                  count(*) filter (where new_status = 'failed') as "failed!"
           from upd"#,
        BATCH
    )
    .fetch_one(pool)
    .await?;
    Ok(Expired {
        leases: r.leases as u64,
        requeued: r.requeued as u64,
        failed: r.failed as u64,
    })
}
