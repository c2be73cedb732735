//! A worker's live leases, and the idle re-poll that lists them without a claim.

use crate::domain::ids::WorkerId;
use crate::store::Db;
use sqlx::PgConnection;

use crate::domain::status::TaskStatus;
use crate::store::StoreResult;
use crate::wire::work::Lease;

/// A poll that need not claim (nothing changed since the worker's last empty claim): it
/// still counts as a sign of life, like a claim, and answers with the worker's leases.
/// `None` when the worker is offline: a full claim brings it back (with its event).
/// One statement: the worker's row, and its live leases beside it (tasks_held_by_worker).
pub async fn poll_without_claim(pool: &Db, worker: &WorkerId) -> StoreResult<Option<Vec<Lease>>> {
    // the request's sign of life was recorded when it authenticated (`liveness`)
    let rows = sqlx::query!(
        r#"select w.online, t.id as "task_id?", t.lease_id as "lease_id?", t.repo as "repo?",
                  t.title as "title?", t.description as "description?",
                  t.estimate_points as "estimate_points?", t.priority as "priority?", t.area,
                  t.tier as "tier?", t.required_skills as "required_skills?",
                  t.status as "status?: TaskStatus", t.attempt as "attempt?",
                  t.lease_expires_at as "lease_expires_at?",
                  coalesce(t.approval_lease = t.lease_id, false) as "awaiting_approval?"
           from workers w
           left join tasks t on t.worker_id = w.id and task_is_live(t.status)
                            and t.lease_expires_at > now()
           where w.id = $1"#,
        worker.as_str()
    )
    .fetch_all(pool)
    .await?;
    if !rows.first().is_some_and(|r| r.online) {
        return Ok(None);
    }
    let mut leases: Vec<Lease> = rows
        .into_iter()
        .filter_map(|r| {
            Some(Lease {
                task_id: r.task_id?,
                lease_id: r.lease_id?,
                repo: r.repo?,
                title: r.title?,
                description: r.description?,
                estimate_points: r.estimate_points?,
                priority: r.priority?,
                area: r.area,
                tier: r.tier?,
                required_skills: r.required_skills?,
                status: r.status?,
                attempt: r.attempt?,
                lease_expires_at: r.lease_expires_at?,
                awaiting_approval: r.awaiting_approval?,
            })
        })
        .collect();
    by_priority(&mut leases);
    Ok(Some(leases))
}

/// The worker's unexpired live leases. An expired one still counts against its capacity
/// until the sweep requeues it, but is no longer the worker's to work on.
pub async fn live_leases(tx: &mut PgConnection, worker_id: &WorkerId) -> StoreResult<Vec<Lease>> {
    let worker_id = worker_id.as_str();
    let rows = sqlx::query_as!(
        Lease,
        r#"select id as task_id, lease_id as "lease_id!", repo, title, description, estimate_points,
                  priority, area, tier, required_skills, status as "status: TaskStatus", attempt,
                  lease_expires_at as "lease_expires_at!",
                  coalesce(approval_lease = lease_id, false) as "awaiting_approval!"
           from tasks
           where worker_id = $1 and task_is_live(status)
             and lease_expires_at > now()"#,
        worker_id
    )
    .fetch_all(tx)
    .await?;
    let mut rows = rows;
    by_priority(&mut rows);
    Ok(rows)
}

/// Highest priority first, then by id: sorted here, not in SQL, since the claim
/// transaction forbids sorts (see claim_candidates).
pub(super) fn by_priority(leases: &mut [Lease]) {
    leases.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then_with(|| a.task_id.cmp(&b.task_id))
    });
}
