//! Claim approval (a repository's `claim_approval`): a maintainer approves an untrusted
//! worker's claim, and work may start, or denies it, and the task is ready again for
//! anyone but that worker. A claim awaits approval while `tasks.approval_lease` equals its
//! live lease (migration 18); each decision locks the task row, so it serialises with the
//! holder's reports, the sweeps and the other admin actions on the task.

use crate::store::Db;

use super::StoreResult;
use crate::domain::status::TaskStatus;

pub enum Decided {
    /// Done: the lease that was decided and its holder.
    Done {
        lease_id: String,
        worker_id: String,
    },
    NotFound,
    /// No claim on this task awaits approval (never did, decided already, or its lease
    /// ended): the task's status now.
    NotAwaiting(TaskStatus),
}

struct Awaiting {
    status: TaskStatus,
    repo: String,
    worker_id: Option<String>,
    lease_id: Option<String>,
    awaiting: bool,
}

/// The claim awaiting approval on a task, its row locked for the decision.
struct Pending {
    status: TaskStatus,
    repo: String,
    worker_id: String,
    lease_id: String,
}

/// Begins a decision: the task row locked, and its awaiting claim, or the answer when
/// there is none to decide.
async fn begin_decision(
    pool: &Db,
    task_id: &str,
) -> StoreResult<Result<(sqlx::Transaction<'static, sqlx::Postgres>, Pending), Decided>> {
    let mut tx = super::begin(pool).await?;
    let t = sqlx::query_as!(
        Awaiting,
        r#"select status as "status: TaskStatus", repo, worker_id, lease_id,
                  coalesce(approval_lease = lease_id, false) as "awaiting!"
           from tasks where id = $1 for update"#,
        task_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(t) = t else {
        return Ok(Err(Decided::NotFound));
    };
    let (true, Some(worker_id), Some(lease_id)) = (t.awaiting, t.worker_id, t.lease_id) else {
        return Ok(Err(Decided::NotAwaiting(t.status)));
    };
    let (status, repo) = (t.status, t.repo);
    Ok(Ok((
        tx,
        Pending {
            status,
            repo,
            worker_id,
            lease_id,
        },
    )))
}

/// Approves the claim awaiting approval on this task: the holder may report from now on.
pub async fn approve(pool: &Db, task_id: &str, actor: &str) -> StoreResult<Decided> {
    let (mut tx, t) = match begin_decision(pool, task_id).await? {
        Ok(pending) => pending,
        Err(answer) => return Ok(answer),
    };
    let Pending {
        worker_id,
        lease_id,
        ..
    } = &t;
    sqlx::query!(
        r#"with t as (update tasks set approval_lease = null, updated_at = now() where id = $1)
           insert into audit_events (kind, task_id, worker_id, repo, lease_id, actor)
           values ('claim_approved', $1, $2, $3, $4, $5)"#,
        task_id,
        worker_id,
        t.repo,
        lease_id,
        actor,
    )
    .execute(&mut *tx)
    .await?;
    super::commit(tx).await?;
    Ok(Decided::Done {
        lease_id: t.lease_id,
        worker_id: t.worker_id,
    })
}

/// Denies the claim awaiting approval on this task: the lease ends (`requeued`, counted
/// nowhere in the worker's reputation: it never had the chance to work), the task is
/// `ready` at once with its slot and area freed, and it is never offered or leased to
/// that worker again while it waits (`withheld_from`, until another worker takes it).
/// Fires the status triggers (`store` docs: what triggers write).
pub async fn deny(pool: &Db, task_id: &str, actor: &str) -> StoreResult<Decided> {
    let (mut tx, t) = match begin_decision(pool, task_id).await? {
        Ok(pending) => pending,
        Err(answer) => return Ok(answer),
    };
    let Pending {
        worker_id,
        lease_id,
        ..
    } = &t;
    sqlx::query!(
        r#"with t as (
               update tasks set status = 'ready', worker_id = null, lease_id = null,
                   lease_expires_at = null, holds_area_lock = false, approval_lease = null,
                   retry_at = null, withheld_from = $2, withheld_until = 'infinity',
                   updated_at = now()
               where id = $1),
           l as (
               update leases set ended_at = now(), end_reason = 'requeued', credited = false
               where id = $4 and ended_at is null)
           insert into audit_events (kind, task_id, worker_id, repo, lease_id, from_status, to_status, reason, actor)
           values ('task_requeued', $1, $2, $3, $4, $5, 'ready', 'claim_denied', $6)"#,
        task_id,
        worker_id,
        t.repo,
        lease_id,
        t.status.as_str(),
        actor,
    )
    .execute(&mut *tx)
    .await?;
    super::commit(tx).await?;
    Ok(Decided::Done {
        lease_id: t.lease_id,
        worker_id: t.worker_id,
    })
}
