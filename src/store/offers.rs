//! Offers: answering one (accept, reject) and the expiry of unanswered ones. Making them
//! shares the claim's locking and eligibility (`claim::make_offers`).
//!
//! Lock order, as everywhere a task changes: the task row first, then its offer row. An
//! answer and the expiry sweep and an admin's requeue or cancel are thereby serialised on
//! the task, and exactly one of them ends the offer.

use crate::domain::ids::{OfferId, WorkerId};
use std::time::Duration;

use crate::store::Db;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::StoreResult;
use crate::config::TierCaps;
use crate::domain::ids::LeaseId;
use crate::domain::status::RejectReason;
use crate::wire::offers::OfferView;

/// The offers with these ids, in the given order.
pub async fn offers_by_id(pool: &Db, ids: &[String]) -> StoreResult<Vec<OfferView>> {
    let mut rows = sqlx::query_as!(
        OfferView,
        r#"select o.id as offer_id, t.id as task_id, t.repo, t.title, t.description, t.estimate_points,
                  t.priority, t.required_skills, t.area, t.tier, o.expires_at
           from offers o join tasks t on t.id = o.task_id
           where o.id = any($1)"#,
        ids
    )
    .fetch_all(pool)
    .await?;
    rows.sort_by_key(|r| ids.iter().position(|id| *id == r.offer_id));
    Ok(rows)
}

pub enum Answered {
    Accepted {
        lease_id: String,
        task_id: String,
        lease_expires_at: DateTime<Utc>,
    },
    Rejected {
        task_id: String,
    },
    NotFound,
    /// Another worker's offer.
    Foreign,
    /// Expired (now, or earlier) or withdrawn by an admin.
    Expired,
    /// Already answered: `accepted` or `rejected`.
    AlreadyAnswered(&'static str),
    /// An admin paused the worker: it takes no new work (the offer stays open).
    Paused,
}

/// The offer, locked after its task (see the module comment).
struct Locked {
    task_id: String,
    outcome: Option<String>,
    expired: bool,
    /// An admin paused the offeree: it may not accept.
    paused: bool,
    /// The offeree's trust tier (its lease TTL may be capped: OWP_TIER_LEASE_TTL).
    tier: i16,
}

/// Locks the offer's task, then the offer; `Err` with the answer when it cannot be
/// answered by this worker (including one that expired just now: it is ended here).
async fn lock_open(
    tx: &mut PgConnection,
    offer_id: &str,
    worker_id: &str,
) -> StoreResult<Result<Locked, Answered>> {
    let Some(o) = sqlx::query!(
        "select o.task_id, o.worker_id, w.paused_by_admin, w.trust_tier
         from offers o join workers w on w.id = o.worker_id where o.id = $1",
        offer_id
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(Err(Answered::NotFound));
    };
    if o.worker_id != worker_id {
        return Ok(Err(Answered::Foreign));
    }
    sqlx::query!(
        "select 1 as one from tasks where id = $1 for update",
        o.task_id
    )
    .fetch_one(&mut *tx)
    .await?;
    let r = sqlx::query!(
        r#"select outcome, (expires_at <= now()) as "expired!"
           from offers where id = $1 for update"#,
        offer_id
    )
    .fetch_one(&mut *tx)
    .await?;
    let l = Locked {
        task_id: o.task_id,
        outcome: r.outcome,
        expired: r.expired,
        paused: o.paused_by_admin,
        tier: o.trust_tier,
    };
    match l.outcome.as_deref() {
        Some("accepted") => return Ok(Err(Answered::AlreadyAnswered("accepted"))),
        Some("rejected") => return Ok(Err(Answered::AlreadyAnswered("rejected"))),
        Some(_) => return Ok(Err(Answered::Expired)),
        None => {}
    }
    if l.expired {
        end_offers(tx, &[offer_id.to_string()], "expired", None, "system").await?;
        return Ok(Err(Answered::Expired));
    }
    Ok(Ok(l))
}

/// Starts answering an offer: the transaction holding its task and offer locked, or the
/// answer already due (committed: an offer found expired is ended on the way).
async fn open_answer(
    pool: &Db,
    offer_id: &str,
    worker_id: &str,
) -> StoreResult<Result<(sqlx::Transaction<'static, sqlx::Postgres>, Locked), Answered>> {
    let mut tx = super::begin(pool).await?;
    match lock_open(&mut tx, offer_id, worker_id).await? {
        Ok(o) => Ok(Ok((tx, o))),
        Err(answer) => {
            super::commit(tx).await?;
            Ok(Err(answer))
        }
    }
}

/// Accepts an open offer: its task becomes `leased` to the worker under a new lease, with
/// the lease's audit event (I7); the offer ends `accepted`.
/// Fires the status triggers (`store` docs: what triggers write).
pub async fn accept(
    pool: &Db,
    offer_id: &OfferId,
    worker_id: &WorkerId,
    lease_ttl: Duration,
    tier_lease_ttl: &TierCaps<Duration>,
) -> StoreResult<Answered> {
    let worker_id = worker_id.as_str();
    let offer_id = offer_id.as_str();
    let (mut tx, o) = match open_answer(pool, offer_id, worker_id).await? {
        Ok(open) => open,
        Err(answer) => return Ok(answer),
    };
    if o.paused {
        return Ok(Answered::Paused);
    }
    let lease_ttl = tier_lease_ttl.apply(o.tier, lease_ttl);
    let lease_id = LeaseId::generate();
    let expires = sqlx::query_scalar!(
        r#"with t as (
               update tasks set status = 'leased', lease_id = $3, offer_id = null,
                   lease_expires_at = now() + make_interval(secs => $4), updated_at = now(),
                   retry_at = null, withheld_from = null, withheld_until = null,
                   -- $6: this worker's claims wait where a repo asks (domain::access)
                   approval_lease = case when $6 and (select r.claim_approval from repositories r
                                                       where r.repo = tasks.repo) then $3 end
               where id = $1 and status = 'offered' and offer_id = $2 and worker_id = $5
               returning id, attempt, repo, lease_expires_at),
           l as (insert into leases (id, task_id, worker_id, attempt)
                 select $3, id, $5, attempt from t),
           o as (update offers set ended_at = now(), outcome = 'accepted', lease_id = $3
                 where id = $2 and exists (select 1 from t)),
           a as (insert into audit_events (kind, task_id, worker_id, repo, lease_id, from_status, to_status, data, actor)
                 select 'lease_granted', id, $5, repo, $3, 'offered', 'leased',
                        jsonb_build_object('attempt', attempt, 'offer_id', $2::text), 'worker:' || $5
                 from t)
           select lease_expires_at as "lease_expires_at!" from t"#,
        o.task_id,
        offer_id,
        lease_id.as_str(),
        lease_ttl.as_secs_f64(),
        worker_id,
        crate::domain::access::needs_approval(true, o.tier),
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(lease_expires_at) = expires else {
        // the offer is open but its task is not reserved under it: only an inconsistent
        // row ends here (the invariant checker names it)
        tracing::warn!(offer_id, task_id = %o.task_id, "open offer on a task not reserved under it");
        return Ok(Answered::Expired);
    };
    super::commit(tx).await?;
    crate::metrics::offers_ended("accepted", 1);
    crate::metrics::leases_claimed(1);
    Ok(Answered::Accepted {
        lease_id: lease_id.0,
        task_id: o.task_id,
        lease_expires_at,
    })
}

/// Rejects an open offer: its task is `ready` again (never offered to this worker again),
/// the offer ends `rejected` with the reason.
/// Fires the status triggers (`store` docs: what triggers write).
pub async fn reject(
    pool: &Db,
    offer_id: &OfferId,
    worker_id: &WorkerId,
    reason: RejectReason,
) -> StoreResult<Answered> {
    let worker_id = worker_id.as_str();
    let offer_id = offer_id.as_str();
    let (mut tx, o) = match open_answer(pool, offer_id, worker_id).await? {
        Ok(open) => open,
        Err(answer) => return Ok(answer),
    };
    let actor = format!("worker:{worker_id}");
    end_offers(
        &mut tx,
        &[offer_id.to_string()],
        "rejected",
        Some(reason.as_str()),
        &actor,
    )
    .await?;
    super::commit(tx).await?;
    Ok(Answered::Rejected { task_id: o.task_id })
}

/// Ends open offers whose tasks the caller has locked: each task is `ready` again and
/// gives up its slot, area and the worker's capacity; the offer ends with `outcome`, and
/// an `offer_<outcome>` event records it (I7). Returns how many ended.
/// Fires the status triggers (`store` docs: what triggers write).
pub async fn end_offers(
    tx: &mut PgConnection,
    offer_ids: &[String],
    outcome: &str,
    reason: Option<&str>,
    actor: &str,
) -> StoreResult<u64> {
    let n = sqlx::query_scalar!(
        r#"with o as (
               update offers set ended_at = now(), outcome = $2, reason = $3
               where id = any($1) and ended_at is null
               returning id, task_id, worker_id),
           t as (
               update tasks t set status = 'ready', worker_id = null, offer_id = null,
                   holds_area_lock = false, updated_at = now()
               from o where t.id = o.task_id and t.offer_id = o.id and t.status = 'offered'
               returning t.id, t.repo, o.id as offer_id, o.worker_id),
           a as (
               insert into audit_events (kind, task_id, worker_id, repo, from_status, to_status, reason, data, actor)
               select 'offer_' || $2, id, worker_id, repo, 'offered', 'ready', $3,
                      jsonb_build_object('offer_id', offer_id), $4
               from t)
           select count(*) as "n!" from t"#,
        offer_ids,
        outcome,
        reason,
        actor,
    )
    .fetch_one(&mut *tx)
    .await?;
    crate::metrics::offers_ended(outcome, n as u64);
    Ok(n as u64)
}

/// Ends up to `batch` offers past their expiry (the leader's duty); how many.
/// Fires the status triggers (`store` docs: what triggers write).
pub async fn expire_overdue(pool: &Db, batch: i64) -> StoreResult<u64> {
    let mut tx = super::begin(pool).await?;
    // offers_open_by_expiry; the task rows are locked first (skip locked: a task an answer
    // or an admin is changing right now is left for the next sweep)
    let ids: Vec<String> = sqlx::query_scalar!(
        "select o.id from offers o join tasks t on t.id = o.task_id
         where o.ended_at is null and o.expires_at < now()
         order by o.expires_at
         limit $1
         for update of t skip locked",
        batch
    )
    .fetch_all(&mut *tx)
    .await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let n = end_offers(&mut tx, &ids, "expired", None, "system").await?;
    super::commit(tx).await?;
    Ok(n)
}

/// A task's offer rejections by reason, most frequent first.
pub async fn rejections(conn: &mut PgConnection, task_id: &str) -> StoreResult<Vec<(String, i64)>> {
    let rows = sqlx::query!(
        r#"select reason as "reason!", count(*) as "n!" from offers
           where task_id = $1 and outcome = 'rejected'
           group by reason order by count(*) desc, reason"#,
        task_id
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.reason, r.n)).collect())
}
