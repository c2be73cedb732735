//! The leader's sweeps, one batch per transaction: leases past their TTL end, silent
//! workers go offline, and the live leases of offline workers end. An attempt ended by a
//! sweep is a failed attempt: the domain rule (`transition::failed_attempt`) decides each
//! task's next status, and one statement (`end_attempts`) applies it for both sweeps.

use std::time::Duration;

use crate::store::Db;
use sqlx::PgConnection;

use super::StoreResult;
use crate::domain::retry::Backoff;
use crate::domain::transition::failed_attempt;

/// What one batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    pub leases: u64,
    pub requeued: u64,
    pub failed: u64,
}

/// Why a sweep ended an attempt: the lease's `end_reason` and the events' `reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    LeaseExpired,
    WorkerOffline,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LeaseExpired => "lease_expired",
            Self::WorkerOffline => "worker_offline",
        }
    }

    /// The event that records the lease's end itself, when the reason has one of its own.
    fn ended_event(self) -> Option<&'static str> {
        match self {
            Self::LeaseExpired => Some("lease_expired"),
            Self::WorkerOffline => None,
        }
    }
}

/// A task whose live lease a sweep ends, locked by the sweep's transaction.
struct Victim {
    id: String,
    attempt: i32,
    max_attempts: i32,
}

/// Ends up to `batch` leases that ran past their TTL.
/// Fires the status triggers (`store` docs: what triggers write).
pub async fn expire_overdue_leases(pool: &Db, batch: i64, backoff: Backoff) -> StoreResult<Ended> {
    let mut tx = super::begin(pool).await?;
    // tasks_live_by_expiry; skip locked passes over tasks a report is changing right now,
    // and a second sweep (two leaders) over the ones this sweep holds
    let victims = sqlx::query_as!(
        Victim,
        "select id, attempt, max_attempts from tasks
         where task_is_live(status) and lease_expires_at < now()
         order by lease_expires_at
         limit $1
         for update skip locked",
        batch
    )
    .fetch_all(&mut *tx)
    .await?;
    let ended = end_attempts(&mut tx, &victims, EndReason::LeaseExpired, backoff).await?;
    super::commit(tx).await?;
    Ok(ended)
}

/// Marks up to `batch` silent workers offline; returns how many. A worker whose heartbeat
/// arrives meanwhile is skipped (its row is locked) or no longer matches the re-stated
/// condition.
pub async fn mark_silent_workers_offline(
    pool: &Db,
    heartbeat_timeout: Duration,
    batch: i64,
) -> StoreResult<u64> {
    let n = sqlx::query_scalar!(
        r#"with silent as (
               -- a sequential read: last_heartbeat has no index (HOT stamps, migration 0011)
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
               insert into audit_events (kind, worker_id, reason, data, actor)
               select 'worker_offline', id, 'heartbeat_timeout', jsonb_build_object('last_heartbeat', last_heartbeat), 'system'
               from upd)
           select count(*) as "n!" from upd"#,
        heartbeat_timeout.as_secs_f64(),
        batch
    )
    .fetch_one(pool)
    .await?;
    Ok(n as u64)
}

/// Ends up to `batch` live leases held by offline workers. Their `pr_opened` tasks keep
/// slot and area: the PR exists and still awaits review.
/// Fires the status triggers (`store` docs: what triggers write).
pub async fn end_offline_workers_leases(
    pool: &Db,
    batch: i64,
    backoff: Backoff,
) -> StoreResult<Ended> {
    let mut tx = super::begin(pool).await?;
    // The worker rows are locked first, and re-read once locked: a worker whose request is
    // bringing it back online right now (its row locked) is passed over, and one that came
    // back since this statement's snapshot no longer matches `not online`. Only then are
    // its tasks locked: a sweep that cannot have the worker takes none of its tasks either
    // (locking both per row let two concurrent sweeps each hold what the other skipped,
    // and both stop early). `no key update` leaves FK checks of inserts (key share) alone.
    let victims = sqlx::query_as!(
        Victim,
        "with w as (
             select id from workers w
             where not online
               and exists (select 1 from tasks t where t.worker_id = w.id
                           and task_is_live(t.status))
             limit $1
             for no key update skip locked)
         select t.id, t.attempt, t.max_attempts
         from tasks t
         where t.worker_id in (select id from w) and task_is_live(t.status)
         limit $1
         for update of t skip locked",
        batch
    )
    .fetch_all(&mut *tx)
    .await?;
    let ended = end_attempts(&mut tx, &victims, EndReason::WorkerOffline, backoff).await?;
    super::commit(tx).await?;
    Ok(ended)
}

/// Ends the live leases of locked tasks as failed attempts, in one statement: each task
/// gets the status and attempt the domain rule gives, its lease ends, and the events are
/// written with it (I7): the reason's own event if it has one, then `task_requeued` or
/// `task_failed`. The workers' reputation counters move once per worker, in worker order
/// (two sweeps never wait on each other in a cycle), by what `lease_counts` says each ended
/// lease changed; the row trigger stands aside for this transaction (migration
/// `sweep_counts_reputation`).
async fn end_attempts(
    tx: &mut PgConnection,
    victims: &[Victim],
    reason: EndReason,
    backoff: Backoff,
) -> StoreResult<Ended> {
    if victims.is_empty() {
        return Ok(Ended::default());
    }
    let mut ids = Vec::with_capacity(victims.len());
    let mut statuses = Vec::with_capacity(victims.len());
    let mut attempts = Vec::with_capacity(victims.len());
    // retry backoff (domain::retry), in seconds; null where the task does not back off
    let mut retry_in = Vec::with_capacity(victims.len());
    let mut withheld_for = Vec::with_capacity(victims.len());
    for v in victims {
        let out = failed_attempt(v.attempt, v.max_attempts, reason.as_str());
        let delay = out.backs_off.then(|| backoff.after(out.attempt));
        ids.push(v.id.as_str());
        statuses.push(out.status.as_str());
        attempts.push(out.attempt);
        retry_in.push(delay.map(|d| d.everyone.as_secs_f64()));
        withheld_for.push(delay.map(|d| d.same_worker.as_secs_f64()));
    }
    sqlx::query!("set local owp.reputation_counted = 'statement'")
        .execute(&mut *tx)
        .await?;
    let r = sqlx::query_file!(
        "src/store/end_attempts.sql",
        &ids as &[&str],
        &statuses as &[&str],
        &attempts,
        reason.as_str(),
        reason.ended_event(),
        &retry_in as &[Option<f64>],
        &withheld_for as &[Option<f64>],
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok(Ended {
        leases: r.leases as u64,
        requeued: r.requeued as u64,
        failed: r.failed as u64,
    })
}
