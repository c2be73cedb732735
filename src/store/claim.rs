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

use std::collections::{HashMap, HashSet};

use std::time::Duration;

use sqlx::{PgConnection, PgPool};

use super::StoreResult;
use crate::config::TierCaps;
use crate::domain::ids::{LeaseId, OfferId};
use crate::domain::reputation::Counts;
use crate::domain::status::{TaskStatus, WorkerStatus};
use crate::wire::work::Lease;

pub struct ClaimRequest<'a> {
    pub worker_id: &'a str,
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
}

/// What one claim granted.
struct Reserved {
    /// Lease or offer ids.
    ids: Vec<String>,
    can_take_more: bool,
}

/// How far past the wanted count candidates are locked, to absorb lost races.
const CANDIDATE_SLACK: i64 = 4;

struct Budget {
    max_open: i64,
    area_locks: bool,
    open: i64,
    held_areas: HashSet<String>,
    /// The claiming worker's open tasks here, and the most it may have (None: no cap).
    worker_open: i64,
    worker_max: Option<i64>,
}

/// `GET /v1/work`: leases up to the worker's free capacity, then every live lease it holds.
/// Fires the status triggers (`store` docs: what triggers write).
pub async fn claim_leases(pool: &PgPool, req: &ClaimRequest<'_>) -> StoreResult<Claimed> {
    let mut tx = super::begin(pool).await?;
    let granted = claim_in(&mut tx, req).await?;
    let leases = live_leases(&mut tx, req.worker_id).await?;
    super::commit(tx).await?;
    crate::metrics::leases_claimed(granted.ids.len());
    Ok(Claimed {
        leases,
        new: granted.ids.len(),
        can_take_more: granted.can_take_more,
    })
}

/// `POST /v1/work/offers`: offers up to the worker's free capacity; the ids of the offers
/// made (the worker's older open offers are not repeated).
/// Fires the status triggers (`store` docs: what triggers write).
pub async fn make_offers(pool: &PgPool, req: &ClaimRequest<'_>) -> StoreResult<Vec<String>> {
    let mut tx = super::begin(pool).await?;
    let offers = claim_in(&mut tx, req).await?;
    super::commit(tx).await?;
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
                  paused_by_admin,
                  (not online or last_heartbeat < now() - interval '1 second') as "stale!",
                  coalesce(r.attempts, 0)::int8 as "attempts!", coalesce(r.delivered, 0)::int8 as "delivered!",
                  coalesce(r.on_time, 0)::int8 as "on_time!", coalesce(r.failed, 0)::int8 as "failed!",
                  coalesce(r.expired, 0)::int8 as "expired!", coalesce(r.prs_merged, 0)::int8 as "prs_merged!",
                  coalesce(r.prs_closed, 0)::int8 as "prs_closed!", coalesce(r.quality_sum, 0)::int8 as "quality_sum!",
                  coalesce(r.quality_count, 0)::int8 as "quality_count!"
           from workers w left join worker_reputation r on r.worker_id = w.id
           where w.id = $1
           for no key update of w"#,
        req.worker_id
    )
    .fetch_one(&mut *tx)
    .await?;
    // the score tasks' min_reputation is compared with (domain::reputation)
    let score = Counts {
        attempts: w.attempts,
        delivered: w.delivered,
        on_time: w.on_time,
        failed: w.failed,
        expired: w.expired,
        prs_merged: w.prs_merged,
        prs_closed: w.prs_closed,
        quality_sum: w.quality_sum,
        quality_count: w.quality_count,
    }
    .score();
    if w.stale {
        // the poll is a sign of life
        super::workers::touch_locked(tx, req.worker_id).await?;
    }
    // Live leases and open offers alike hold capacity (I2): counted by a statement of its
    // own after the lock, so its snapshot has every claim of this worker committed before
    // the lock was granted. It also sets the candidate query's planning for the rest of the
    // transaction, saving a round trip (see select_candidates).
    let used = sqlx::query!(
        r#"select coalesce(sum(estimate_points), 0)::int as "points!", count(*)::int as "leases!",
                  set_config('enable_sort', 'off', true) as "no_sort!",
                  set_config('plan_cache_mode', 'force_generic_plan', true) as "generic_plan!"
           from tasks where worker_id = $1 and task_holds_capacity(status)"#,
        req.worker_id
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
        });
    }
    let eligible = Eligibility {
        skills: &w.skills,
        tier: w.trust_tier,
        score,
    };
    let ids = if want > 0 {
        claim_candidates(tx, req, &eligible, &mut free_points, want).await?
    } else {
        Vec::new()
    };
    let can_take_more = free_points > 0 && (ids.len() as i64) < free_slots;
    Ok(Reserved { ids, can_take_more })
}

/// What a task may ask of the worker that claims it.
struct Eligibility<'a> {
    skills: &'a [String],
    /// Trust level: tasks of `tier` at most this.
    tier: i16,
    /// Reputation score: tasks of `min_reputation` at most this.
    score: i16,
}

async fn claim_candidates(
    tx: &mut PgConnection,
    req: &ClaimRequest<'_>,
    eligible: &Eligibility<'_>,
    free_points: &mut i32,
    want: i64,
) -> StoreResult<Vec<String>> {
    let offering = matches!(req.grant, Grant::Offer { .. });
    let candidates =
        select_candidates(tx, req.worker_id, eligible, *free_points, want, offering).await?;
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let mut repos: Vec<&str> = candidates.iter().map(|c| c.repo.as_str()).collect();
    repos.sort_unstable();
    repos.dedup();
    let mut budgets = lock_budgets(tx, &repos, &candidates[0].repo, req).await?;

    let mut claimed = Vec::new();
    for c in &candidates {
        if claimed.len() as i64 == want {
            break;
        }
        if c.estimate_points > *free_points {
            continue;
        }
        // a repo another poll is claiming from is passed over this time
        let Some(b) = budgets.get_mut(&c.repo) else {
            continue;
        };
        if b.open >= b.max_open || b.worker_max.is_some_and(|m| b.worker_open >= m) {
            continue;
        }
        let area = c.area.as_deref().filter(|_| b.area_locks);
        if area.is_some_and(|a| b.held_areas.contains(a)) {
            continue;
        }
        let granted = match req.grant {
            Grant::Lease { ttl } => {
                let ttl = req.caps.tier_lease_ttl.apply(eligible.tier, ttl);
                grant_lease(tx, &c.id, req.worker_id, ttl, area.is_some()).await?
            }
            Grant::Offer { ttl } => {
                grant_offer(tx, &c.id, req.worker_id, ttl, area.is_some()).await?
            }
        };
        let Some(id) = granted else {
            // the candidate is locked and ready: only an inconsistent row ends here
            tracing::warn!(task_id = %c.id, "passed over a ready task that has a live lease or whose area is held");
            continue;
        };
        b.open += 1;
        b.worker_open += 1;
        if let Some(a) = area {
            b.held_areas.insert(a.to_string());
        }
        *free_points -= c.estimate_points;
        claimed.push(id);
    }
    Ok(claimed)
}

/// A ready task this poll may claim, locked for this transaction.
struct Candidate {
    id: String,
    repo: String,
    area: Option<String>,
    estimate_points: i32,
}

/// Locks up to `want` plus some slack of the ready tasks this worker may claim, in claim
/// order (highest priority, then oldest).
async fn select_candidates(
    tx: &mut PgConnection,
    worker_id: &str,
    eligible: &Eligibility<'_>,
    free_points: i32,
    want: i64,
    offering: bool,
) -> StoreResult<Vec<Candidate>> {
    // The only good plan walks tasks_ready_queue in order and stops at the LIMIT. Right
    // after a bulk import the statistics say almost nothing is ready, and the planner may
    // prefer to sort every ready task (20-40 ms per poll at 20k ready). Sorts are forbidden
    // for the claim's transaction (claim_in's capacity statement sets it), which leaves the
    // index walk whatever the statistics say. The same statement forces the generic plan
    // for this query: PostgreSQL kept re-planning it on every poll (its custom plans look a
    // little cheaper than the generic one), about 0.9 ms of database CPU each time for the
    // same plan. The next statement (lock_budgets) turns custom planning back on.
    // Repos with a free slot are a hint here (re-checked under the repo lock below); they
    // keep full repos' tasks from crowding the candidate list. Their open tasks come from
    // the kept counts (store::open_counts), not a count of every repo's open tasks per poll.
    // Uses tasks_ready_queue and tasks_one_per_area.
    let candidates = sqlx::query_as!(
        Candidate,
        r#"with changes as (select repo, sum(delta) as delta from repo_open_changes group by repo),
           open_repos as materialized (
               select r.repo, r.area_locks_enabled from repositories r
               left join repo_open_counts c on c.repo = r.repo
               left join changes d on d.repo = r.repo
               where r.max_open_prs > coalesce(c.open, 0) + coalesce(d.delta, 0))
           select t.id, t.repo, t.area, t.estimate_points
           from tasks t join open_repos r on r.repo = t.repo
           where t.status = 'ready'
             and t.required_skills <@ $1
             and t.estimate_points <= $2
             and t.tier <= $3
             and t.min_reputation <= $6
             -- a task the worker rejected is never offered to it again
             and not ($7 and exists (select 1 from offers o where o.task_id = t.id and o.worker_id = $5
                                     and o.outcome = 'rejected'))
             -- retry backoff (domain::retry): nobody before retry_at, the worker that
             -- lost the attempt not before withheld_until
             and (t.retry_at is null or t.retry_at <= now())
             and (t.withheld_from is distinct from $5 or t.withheld_until <= now())
             and not (r.area_locks_enabled and t.area is not null and exists (
                 select 1 from tasks a where a.repo = t.repo and a.area = t.area and a.holds_area_lock))
           order by t.priority desc, t.created_at, t.id
           limit $4
           for update of t skip locked"#,
        eligible.skills,
        free_points,
        eligible.tier,
        want + CANDIDATE_SLACK,
        worker_id,
        eligible.score,
        offering,
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(candidates)
}

/// Leases one locked candidate to the worker, with its lease row and audit event (I7), in
/// one statement; the lease id, or none when the task is no longer ready.
async fn grant_lease(
    tx: &mut PgConnection,
    task_id: &str,
    worker_id: &str,
    ttl: Duration,
    holds_area_lock: bool,
) -> StoreResult<Option<String>> {
    let lease_id = LeaseId::generate();
    let granted = sqlx::query_scalar!(
        r#"with t as (
               update tasks set status = 'leased', worker_id = $2, lease_id = $3,
                   lease_expires_at = now() + make_interval(secs => $4),
                   holds_area_lock = $5, updated_at = now(),
                   retry_at = null, withheld_from = null, withheld_until = null
               where id = $1 and status = 'ready'
                 -- a row left inconsistent (a live lease on a ready task, an area another
                 -- task holds) is passed over, never a conflict that fails every poll
                 and not exists (select 1 from leases x where x.task_id = $1 and x.ended_at is null)
                 and not ($5 and exists (select 1 from tasks a
                                         where a.repo = tasks.repo and a.area = tasks.area and a.holds_area_lock))
               returning id, attempt, repo),
           l as (insert into leases (id, task_id, worker_id, attempt)
                 select $3, id, $2, attempt from t),
           a as (insert into audit_events (kind, task_id, worker_id, repo, lease_id, from_status, to_status, data, actor)
                 select 'lease_granted', id, $2, repo, $3, 'ready', 'leased', jsonb_build_object('attempt', attempt),
                        'worker:' || $2
                 from t)
           select count(*) as "n!" from t"#,
        task_id,
        worker_id,
        lease_id.as_str(),
        ttl.as_secs_f64(),
        holds_area_lock,
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok((granted == 1).then_some(lease_id.0))
}

/// Reserves one locked candidate for the worker with an offer row and its audit event, in
/// one statement; the offer id, or none when the task is no longer ready.
async fn grant_offer(
    tx: &mut PgConnection,
    task_id: &str,
    worker_id: &str,
    ttl: Duration,
    holds_area_lock: bool,
) -> StoreResult<Option<String>> {
    let offer_id = OfferId::generate();
    let granted = sqlx::query_scalar!(
        r#"with t as (
               update tasks set status = 'offered', worker_id = $2, offer_id = $3,
                   holds_area_lock = $5, updated_at = now()
               where id = $1 and status = 'ready'
                 and not exists (select 1 from offers x where x.task_id = $1 and x.ended_at is null)
                 and not ($5 and exists (select 1 from tasks a
                                         where a.repo = tasks.repo and a.area = tasks.area and a.holds_area_lock))
               returning id, repo),
           o as (insert into offers (id, task_id, worker_id, expires_at)
                 select $3, id, $2, now() + make_interval(secs => $4) from t
                 returning expires_at),
           a as (insert into audit_events (kind, task_id, worker_id, repo, from_status, to_status, data, actor)
                 select 'task_offered', t.id, $2, t.repo, 'ready', 'offered',
                        jsonb_build_object('offer_id', $3::text, 'expires_at', o.expires_at), 'worker:' || $2
                 from t, o)
           select count(*) as "n!" from t"#,
        task_id,
        worker_id,
        offer_id.as_str(),
        ttl.as_secs_f64(),
        holds_area_lock,
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok((granted == 1).then_some(offer_id.0))
}

/// Locks the candidates' repos that no other poll is claiming from (or, when all are busy,
/// waits for the first candidate's repo) and reads their open slots and held areas under
/// that lock. Repos missing from the map were not locked: their candidates are skipped.
async fn lock_budgets(
    tx: &mut PgConnection,
    repos: &[&str],
    first: &str,
    req: &ClaimRequest<'_>,
) -> StoreResult<HashMap<String, Budget>> {
    let default_cap = req.caps.max_open_prs_per_worker;
    let budget = |max_open: i32, area_locks: bool, per_worker: Option<i32>| Budget {
        max_open: i64::from(max_open),
        area_locks,
        open: 0,
        held_areas: HashSet::new(),
        worker_open: 0,
        worker_max: per_worker
            .or((default_cap > 0).then_some(default_cap))
            .map(i64::from),
    };
    // Both lock statements end the generic planning the capacity statement asked for the
    // candidates (see select_candidates): count_open's `repo = any($1)` must be planned
    // for its repos, or one repo with many open tasks turns it into a sequential scan.
    let rows = sqlx::query!(
        r#"select repo, max_open_prs, area_locks_enabled, max_open_prs_per_worker,
                  set_config('plan_cache_mode', 'auto', true) as "planning!"
           from repositories
           where repo = any($1) for update skip locked"#,
        repos as &[&str]
    )
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        // every candidate repo is busy: queue for one, holding no other repo lock
        let r = sqlx::query!(
            r#"select repo, max_open_prs, area_locks_enabled, max_open_prs_per_worker,
                      set_config('plan_cache_mode', 'auto', true) as "planning!"
               from repositories where repo = $1 for update"#,
            first
        )
        .fetch_one(&mut *tx)
        .await?;
        let b = budget(
            r.max_open_prs,
            r.area_locks_enabled,
            r.max_open_prs_per_worker,
        );
        return count_open(tx, HashMap::from([(r.repo, b)]), req.worker_id).await;
    }
    let budgets = rows
        .into_iter()
        .map(|r| {
            let b = budget(
                r.max_open_prs,
                r.area_locks_enabled,
                r.max_open_prs_per_worker,
            );
            (r.repo, b)
        })
        .collect();
    count_open(tx, budgets, req.worker_id).await
}

/// Reads the open slots and held areas of locked repos, and the claiming worker's own
/// open tasks there. A new statement, so a new snapshot: it sees every claim committed
/// before our locks were granted (the worker's own, too: its row is locked).
async fn count_open(
    tx: &mut PgConnection,
    mut budgets: HashMap<String, Budget>,
    worker_id: &str,
) -> StoreResult<HashMap<String, Budget>> {
    let locked: Vec<&str> = budgets.keys().map(String::as_str).collect();
    let open = sqlx::query!(
        r#"select repo, count(*) as "open!",
                  count(*) filter (where worker_id = $2) as "worker_open!",
                  coalesce(array_agg(area) filter (where holds_area_lock), '{}') as "areas!: Vec<String>"
           from tasks
           where repo = any($1) and task_is_open(status)
           group by repo"#,
        &locked as &[&str],
        worker_id
    )
    .fetch_all(&mut *tx)
    .await?;
    for r in open {
        if let Some(b) = budgets.get_mut(&r.repo) {
            b.open = r.open;
            b.worker_open = r.worker_open;
            b.held_areas = r.areas.into_iter().collect();
        }
    }
    Ok(budgets)
}

/// A poll that need not claim (nothing changed since the worker's last empty claim): it
/// still counts as a sign of life, like a claim, and answers with the worker's leases.
/// `None` when the worker is offline: a full claim brings it back (with its event).
pub async fn poll_without_claim(pool: &PgPool, worker_id: &str) -> StoreResult<Option<Vec<Lease>>> {
    let mut conn = pool.acquire().await?;
    let online = sqlx::query_scalar!(
        r#"with w as (select online from workers where id = $1),
           touched as (
               update workers set last_heartbeat = now()
               where id = $1 and online and last_heartbeat < now() - interval '1 second')
           select coalesce((select online from w), false) as "online!""#,
        worker_id
    )
    .fetch_one(&mut *conn)
    .await?;
    if !online {
        return Ok(None);
    }
    Ok(Some(live_leases(&mut conn, worker_id).await?))
}

/// The worker's unexpired live leases. An expired one still counts against its capacity
/// until the sweep requeues it, but is no longer the worker's to work on.
pub async fn live_leases(tx: &mut PgConnection, worker_id: &str) -> StoreResult<Vec<Lease>> {
    let rows = sqlx::query_as!(
        Lease,
        r#"select id as task_id, lease_id as "lease_id!", repo, title, description, estimate_points,
                  priority, area, tier, required_skills, status as "status: TaskStatus", attempt,
                  lease_expires_at as "lease_expires_at!"
           from tasks
           where worker_id = $1 and task_is_live(status)
             and lease_expires_at > now()"#,
        worker_id
    )
    .fetch_all(tx)
    .await?;
    // sorted here, not in SQL: the claim transaction forbids sorts (see claim_candidates)
    let mut rows = rows;
    rows.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then_with(|| a.task_id.cmp(&b.task_id))
    });
    Ok(rows)
}
