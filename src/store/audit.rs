//! The append-only audit log. Callers pass their open transaction: the event commits or
//! rolls back with the change it records (I7).

use sqlx::PgConnection;

use super::StoreResult;

/// One audit event; unset fields stay null.
#[derive(Debug, Default)]
pub struct Event<'a> {
    pub kind: &'a str,
    pub task_id: Option<&'a str>,
    pub worker_id: Option<&'a str>,
    pub repo: Option<&'a str>,
    pub lease_id: Option<&'a str>,
    pub from_status: Option<&'a str>,
    pub to_status: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub data: Option<serde_json::Value>,
    /// `admin:<name>`, `admin`, `worker:<id>` or `system`.
    pub actor: &'a str,
}

pub async fn insert_event(tx: &mut PgConnection, e: Event<'_>) -> StoreResult<()> {
    sqlx::query!(
        "insert into audit_events (kind, task_id, worker_id, repo, lease_id, from_status, to_status, reason, data, actor)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        e.kind,
        e.task_id,
        e.worker_id,
        e.repo,
        e.lease_id,
        e.from_status,
        e.to_status,
        e.reason,
        e.data,
        e.actor,
    )
    .execute(tx)
    .await?;
    Ok(())
}
