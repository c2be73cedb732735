//! Lease claiming: one short transaction per poll.
//!
//! What must be serialised, and how:
//! - the worker's own capacity (I2, I8): the worker row is locked first, so two polls of
//!   one worker run one after the other and each sees the other's claims;
//! - a repo's budget and its area locks (I4, I5): the candidates' repo rows are locked
//!   before their open slots are counted. They are taken with `skip locked`: a repo that
//!   another poll is claiming from right now is passed over by this poll instead of
//!   queueing behind it (waiting there made every poll wait on every other, since one
//!   poll's candidates span many repos). Only when no candidate repo is free does a poll
//!   wait, for one repo, holding no other repo lock;
//! - a task (I1): candidates are locked with `for update skip locked`, so concurrent polls
//!   pass over each other's candidates instead of queueing behind them.
//!
//! Deadlock-free: a poll waits at most once, for one repo, and only while it holds no repo
//! lock; transactions holding repo locks never wait for task or worker rows. Other writers
//! only ever free capacity, slots or areas, so a count read under these locks can only be
//! conservative.

mod budgets;
mod candidates;
mod leases;

use budgets::*;
use candidates::*;
pub use leases::{live_leases, poll_without_claim};

use std::time::Duration;

use crate::store::Db;
use sqlx::PgConnection;

use crate::config::TierCaps;
use crate::domain::ids::WorkerId;
use crate::domain::ids::{LeaseId, OfferId};
use crate::domain::status::WorkerStatus;
use crate::store::reputation::counts_of_row;
use crate::store::StoreResult;
use crate::wire::work::Lease;

pub struct ClaimRequest<'a> {
    pub worker_id: &'a WorkerId,
    /// Cap on new claims in this call (`max`).
    pub max_new: u32,
    /// How new claims are granted: leases (`GET /v1/work`) or offers (`POST /v1/work/offers`).
    pub grant: Grant,
    /// What the worker's tier lets its declaration use (`OWP_TIER_MAX_CONCURRENT`,
    /// `OWP_TIER_LEASE_TTL`) and the per-worker open-PR cap (`OWP_MAX_OPEN_PRS_PER_WORKER`).
    pub caps: &'a ClaimCaps,
}

/// Caps a worker's own declaration cannot lift.
#[derive(Clone, Debug, Default)]
pub struct ClaimCaps {
    pub tier_max_concurrent: TierCaps<i32>,
    pub tier_lease_ttl: TierCaps<Duration>,
    /// Open tasks one worker may have per repository, unless the repository sets its own;
    /// 0: no cap.
    pub max_open_prs_per_worker: i32,
}

/// What a claim grants the worker.
#[derive(Clone, Copy, Debug)]
pub enum Grant {
    /// A lease with this TTL: the task becomes `leased`.
    Lease { ttl: Duration },
    /// An offer open this long: the task becomes `offered` (reserved for the worker) until
    /// it accepts, rejects or the offer expires. Tasks it rejected before are not offered.
    Offer { ttl: Duration },
}

pub struct Claimed {
    /// All of the worker's live leases, old and new.
    pub leases: Vec<Lease>,
    pub new: usize,
    /// The worker could take more work now (capacity left, not paused): worth waiting for.
    pub can_take_more: bool,
    /// The worker's reputation score as the claim read it (its long poll's rank).
    pub score: i16,
}

/// What one claim granted.
struct Reserved {
    /// Lease or offer ids.
    ids: Vec<String>,
    can_take_more: bool,
    score: i16,
}

/// A candidate chosen under the repo locks: whether it takes its area's lock, and whether
/// its lease waits for a maintainer's approval (leases only: an offer's acceptance decides
/// that for itself).
struct Chosen<'a> {
    task: &'a str,
    area_lock: bool,
    approval: bool,
}

/// What the grant statement granted: lease or offer ids in claim order.
struct Granted {
    ids: Vec<String>,
}

/// `GET /v1/work`: leases up to the worker's free capacity, then every live lease it holds.
/// Fires the status triggers (`store` docs: what triggers write).
pub async fn claim_leases(pool: &Db, req: &ClaimRequest<'_>) -> StoreResult<Claimed> {
    let mut tx = crate::store::begin(pool).await?;
    let granted = claim_in(&mut tx, req).await?;
    let leases = live_leases(&mut tx, req.worker_id).await?;
    crate::store::commit(tx).await?;
    crate::metrics::leases_claimed(granted.ids.len());
    Ok(Claimed {
        leases,
        new: granted.ids.len(),
        can_take_more: granted.can_take_more,
        score: granted.score,
    })
}

/// `POST /v1/work/offers`: offers up to the worker's free capacity; the ids of the offers
/// made (the worker's older open offers are not repeated).
/// Fires the status triggers (`store` docs: what triggers write).
pub async fn make_offers(pool: &Db, req: &ClaimRequest<'_>) -> StoreResult<Vec<String>> {
    let mut tx = crate::store::begin(pool).await?;
    let offers = claim_in(&mut tx, req).await?;
    crate::store::commit(tx).await?;
    Ok(offers.ids)
}

/// Locks the worker and grants what its free capacity allows; the ids of what it granted
/// (lease ids or offer ids).
async fn claim_in(tx: &mut PgConnection, req: &ClaimRequest<'_>) -> StoreResult<Reserved> {
    // Locks the worker row for the rest of the poll (I2, I8): `no key update` conflicts with
    // itself, so this worker's polls run one at a time, yet lets FK checks (key share) pass.
    // Locking, not updating: an update per poll would write a new row version (a HOT one
    // since migration 0011 dropped the last_heartbeat index, still WAL and a dead tuple)
    // every time.
    let w = sqlx::query!(
        r#"select skills, capacity_points, max_concurrent_tasks, status as "status: WorkerStatus", trust_tier,
                  paused_by_admin, repos,
                  (not online or last_heartbeat < now() - interval '1 second') as "stale!",
                  coalesce(r.attempts, 0)::int8 as "attempts!", coalesce(r.delivered, 0)::int8 as "delivered!",
                  coalesce(r.on_time, 0)::int8 as "on_time!", coalesce(r.failed, 0)::int8 as "failed!",
                  coalesce(r.expired, 0)::int8 as "expired!", coalesce(r.prs_merged, 0)::int8 as "prs_merged!",
                  coalesce(r.prs_closed, 0)::int8 as "prs_closed!", coalesce(r.quality_sum, 0)::int8 as "quality_sum!",
                  coalesce(r.quality_count, 0)::int8 as "quality_count!"
           from workers w left join worker_reputation r on r.worker_id = w.id
           where w.id = $1
           for no key update of w"#,
        req.worker_id.as_str()
    )
    .fetch_one(&mut *tx)
    .await?;
    // the score tasks' min_reputation is compared with (domain::reputation)
    let score = counts_of_row!(w).score();
    if w.stale {
        // the poll is a sign of life
        super::workers::touch_locked(tx, req.worker_id).await?;
    }
    // Live leases and open offers alike hold capacity (I2): counted by a statement of its
    // own after the lock, so its snapshot has every claim of this worker committed before
    // the lock was granted. It also sets the candidate query's planning (no sorts, no JIT,
    // the generic plan) for the rest of the transaction, saving a round trip (see
    // select_candidates).
    let used = sqlx::query!(
        r#"select coalesce(sum(estimate_points), 0)::int as "points!", count(*)::int as "leases!",
                  set_config('enable_sort', 'off', true) as "no_sort!",
                  -- the candidates' sort of repositories carries the disabled cost (10^10),
                  -- past jit_above_cost: seconds of JIT per poll where the connection did
                  -- not turn JIT off already (Db's options do; a pool of another's may not)
                  set_config('jit', 'off', true) as "no_jit!",
                  set_config('plan_cache_mode', 'force_generic_plan', true) as "generic_plan!"
           from tasks where worker_id = $1 and task_holds_capacity(status)"#,
        req.worker_id.as_str()
    )
    .fetch_one(&mut *tx)
    .await?;
    let mut free_points = w.capacity_points - used.points;
    // the declaration is the worker's word; its tier decides how much of it counts
    let max_concurrent = req
        .caps
        .tier_max_concurrent
        .apply(w.trust_tier, w.max_concurrent_tasks);
    let free_slots = i64::from(max_concurrent - used.leases);
    let want = free_slots.min(i64::from(req.max_new));
    let paused = w.status == WorkerStatus::Paused || w.paused_by_admin;
    if paused || free_slots <= 0 || free_points <= 0 {
        return Ok(Reserved {
            ids: Vec::new(),
            can_take_more: false,
            score,
        });
    }
    let eligible = Eligibility {
        skills: &w.skills,
        tier: w.trust_tier,
        score,
        repos: w.repos.as_deref(),
    };
    let granted = if want > 0 {
        claim_candidates(tx, req, &eligible, &mut free_points, want).await?
    } else {
        Granted { ids: Vec::new() }
    };
    let can_take_more = free_points > 0 && (granted.ids.len() as i64) < free_slots;
    Ok(Reserved {
        ids: granted.ids,
        can_take_more,
        score,
    })
}

/// Grants the chosen candidates (locked, in claim order, each with whether it takes its
/// area's lock) in one statement: leases or offers, their rows and audit events (I7). A
/// candidate left out is an inconsistent row (a
/// live lease or offer on a ready task, an area another task holds), passed over.
async fn grant(
    tx: &mut PgConnection,
    req: &ClaimRequest<'_>,
    tier: i16,
    chosen: &[Chosen<'_>],
) -> StoreResult<Granted> {
    if chosen.is_empty() {
        return Ok(Granted { ids: Vec::new() });
    }
    let tasks: Vec<&str> = chosen.iter().map(|c| c.task).collect();
    let area_locks: Vec<bool> = chosen.iter().map(|c| c.area_lock).collect();
    let worker = req.worker_id.as_str();
    let rows: Vec<(String, String)> = match req.grant {
        Grant::Lease { ttl } => {
            let ttl = req.caps.tier_lease_ttl.apply(tier, ttl);
            let approvals: Vec<bool> = chosen.iter().map(|c| c.approval).collect();
            grant_leases(tx, &tasks, &area_locks, &approvals, worker, ttl).await?
        }
        Grant::Offer { ttl } => {
            let ids: Vec<String> = chosen.iter().map(|_| OfferId::generate().0).collect();
            let rows = sqlx::query_file!(
                "src/store/claim/grant_offers.sql",
                &tasks as &[&str],
                &ids,
                &area_locks,
                worker,
                ttl.as_secs_f64(),
            )
            .fetch_all(&mut *tx)
            .await?;
            rows.into_iter().map(|r| (r.task_id, r.grant_id)).collect()
        }
    };
    // in claim order
    let mut ids = Vec::with_capacity(rows.len());
    for Chosen { task, .. } in chosen {
        match rows.iter().find(|r| r.0 == *task) {
            Some((_, id)) => ids.push(id.clone()),
            None => {
                tracing::warn!(task_id = %task, "passed over a ready task that has a live lease or offer, or whose area is held")
            }
        }
    }
    Ok(Granted { ids })
}

/// grant_leases.sql: the (task, lease) pairs granted.
async fn grant_leases(
    tx: &mut PgConnection,
    tasks: &[&str],
    area_locks: &[bool],
    approvals: &[bool],
    worker: &str,
    ttl: Duration,
) -> StoreResult<Vec<(String, String)>> {
    let ids: Vec<String> = tasks.iter().map(|_| LeaseId::generate().0).collect();
    let rows = sqlx::query_file!(
        "src/store/claim/grant_leases.sql",
        tasks as &[&str],
        &ids,
        area_locks,
        worker,
        ttl.as_secs_f64(),
        approvals,
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows.into_iter().map(|r| (r.task_id, r.lease_id)).collect())
}
