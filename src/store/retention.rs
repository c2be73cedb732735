//! Retention: deletes history older than `OWP_RETENTION`, one bounded batch per
//! transaction: audit events, and the ended leases and artifacts of terminal tasks. Live
//! rows are never touched: a task that is not terminal keeps its leases and artifacts
//! however old, and tasks themselves are kept. BRIN indexes on the time columns find the
//! old end of each table without scanning it.

use std::time::Duration;

use crate::store::Db;

use super::StoreResult;

/// Rows one batch deleted, by table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub audit_events: u64,
    pub leases: u64,
    pub artifacts: u64,
    pub offers: u64,
    /// Webhook deliveries remembered, and write-back events delivered or given up.
    pub github: u64,
    /// Notifications delivered or given up, and the marks of announced stale PRs and
    /// full budgets (a PR still stale past the horizon is announced again, a reminder).
    pub notifications: u64,
}

impl Pruned {
    pub fn total(&self) -> u64 {
        self.audit_events
            + self.leases
            + self.artifacts
            + self.offers
            + self.github
            + self.notifications
    }
}

/// Deletes up to `batch` rows of each table older than `older_than`, and records the
/// horizon so the invariant checker knows history before it may be gone.
pub async fn prune_batch(pool: &Db, older_than: Duration, batch: i64) -> StoreResult<Pruned> {
    let mut tx = super::begin(pool).await?;
    let secs = older_than.as_secs_f64();
    let r = sqlx::query!(
        r#"with horizon as (select now() - make_interval(secs => $1) as at),
           art as (
               delete from artifacts where id in (
                   select a.id from artifacts a join tasks t on t.id = a.task_id, horizon h
                   where a.created_at < h.at and task_has_outcome(t.status)
                   limit $2)
               returning 1),
           off as (
               delete from offers where id in (
                   select o.id from offers o join tasks t on t.id = o.task_id, horizon h
                   where o.created_at < h.at and o.ended_at < h.at
                     and task_is_terminal(t.status)
                   limit $2)
               returning 1),
           les as (
               delete from leases where id in (
                   select l.id from leases l join tasks t on t.id = l.task_id, horizon h
                   where l.granted_at < h.at and l.ended_at < h.at
                     and task_has_outcome(t.status)
                   limit $2)
               returning 1),
           ev as (
               delete from audit_events where id in (
                   select e.id from audit_events e, horizon h where e.at < h.at limit $2)
               returning 1),
           dlv as (
               delete from github_deliveries where delivery_id in (
                   select d.delivery_id from github_deliveries d, horizon h
                   where d.received_at < h.at limit $2)
               returning 1),
           obx as (
               delete from github_outbox where id in (
                   select o.id from github_outbox o, horizon h
                   where o.created_at < h.at and (o.delivered_at is not null or o.gave_up_at is not null)
                   limit $2)
               returning 1),
           nob as (
               delete from notification_outbox where id in (
                   select o.id from notification_outbox o, horizon h
                   where o.created_at < h.at and (o.delivered_at is not null or o.gave_up_at is not null)
                   limit $2)
               returning 1),
           nmk as (
               delete from notification_marks where key in (
                   select m.key from notification_marks m, horizon h where m.created_at < h.at limit $2)
               returning 1),
           mark as (
               update scheduler_state set pruned_before = greatest(pruned_before, (select at from horizon)))
           select (select count(*) from art) as "artifacts!", (select count(*) from les) as "leases!",
                  (select count(*) from ev) as "events!", (select count(*) from off) as "offers!",
                  (select count(*) from dlv) + (select count(*) from obx) as "github!",
                  (select count(*) from nob) + (select count(*) from nmk) as "notifications!""#,
        secs,
        batch,
    )
    .fetch_one(&mut *tx)
    .await?;
    super::commit(tx).await?;
    Ok(Pruned {
        audit_events: r.events as u64,
        leases: r.leases as u64,
        artifacts: r.artifacts as u64,
        offers: r.offers as u64,
        github: r.github as u64,
        notifications: r.notifications as u64,
    })
}
