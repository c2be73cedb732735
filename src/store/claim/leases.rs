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
pub async fn poll_without_claim(pool: &Db, worker: &WorkerId) -> StoreResult<Option<Vec<Lease>>> {
    let worker_id = worker.as_str();
    let mut conn = pool.session().await?;
    // the request's sign of life was recorded when it authenticated (`liveness`)
    let online = sqlx::query_scalar!(
        r#"select coalesce((select online from workers where id = $1), false) as "online!""#,
        worker_id
    )
    .fetch_one(&mut *conn)
    .await?;
    let leases = match online {
        true => Some(live_leases(&mut conn, worker).await?),
        false => None,
    };
    conn.finish().await?;
    Ok(leases)
}

/// The worker's unexpired live leases. An expired one still counts against its capacity
/// until the sweep requeues it, but is no longer the worker's to work on.
pub async fn live_leases(tx: &mut PgConnection, worker_id: &WorkerId) -> StoreResult<Vec<Lease>> {
    let worker_id = worker_id.as_str();
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
