//! A worker's status report in one statement (issue 25): its token checked, the task locked
//! and the report applied with its lease change and audit event, guarded by what the
//! locking path would check first (domain::transition::guarded_from). No BEGIN, no COMMIT,
//! one round trip. When the guard matches nothing, the caller takes the locking path
//! (`update_status`), which gives the exact answer.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::TierCaps;
use crate::domain::ids::WorkerId;
use crate::domain::status::{Report, TaskStatus};
use crate::domain::transition;
use crate::domain::trust::TrustTier;
use crate::store::{Db, StoreResult};

/// A report that qualifies for the guarded statement.
pub struct GuardedReport<'a> {
    pub task_id: &'a str,
    /// The lease the report names.
    pub lease_id: &'a str,
    pub report: Report,
    /// The statuses it applies from (or repeats).
    from: Vec<TaskStatus>,
    outcome: transition::Outcome,
    pub message: Option<&'a str>,
    pub lease_ttl: Duration,
    pub tier_lease_ttl: &'a TierCaps<Duration>,
    pub on_time_per_point: Duration,
}

impl<'a> GuardedReport<'a> {
    /// The report, if it may take the guarded statement: it names its lease and the domain
    /// lists the statuses it applies from.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        task_id: &'a str,
        lease_id: Option<&'a str>,
        report: Report,
        message: Option<&'a str>,
        lease_ttl: Duration,
        tier_lease_ttl: &'a TierCaps<Duration>,
        on_time_per_point: Duration,
    ) -> Option<Self> {
        let from = transition::guarded_from(report)?;
        // a lease id is compared, never stored: one PostgreSQL text cannot hold (NUL) is
        // no lease's, and the locking path answers it without sending it
        let lease_id = lease_id.filter(|l| !l.contains('\0'))?;
        Some(Self {
            task_id,
            lease_id,
            report,
            from,
            // guarded_from promises the outcome does not depend on the attempt counters
            outcome: transition::outcome(report, 0, 1),
            message,
            lease_ttl,
            tier_lease_ttl,
            on_time_per_point,
        })
    }
}

pub enum Guarded {
    /// Applied (or, for the status the task has, renewed).
    Applied {
        worker: WorkerId,
        status: TaskStatus,
        lease_expires_at: Option<DateTime<Utc>>,
    },
    /// The token is the worker's, but the guard matched nothing: take the locking path.
    Missed { worker: WorkerId },
    /// No online worker holds the token (unknown, revoked, or offline and due its
    /// `worker_online` event): authenticate the usual way.
    NoWorker,
}

/// Runs the guarded statement for the worker holding `digest` (guarded.sql).
pub async fn report_guarded(
    db: &Db,
    digest: &[u8; 32],
    g: &GuardedReport<'_>,
) -> StoreResult<Guarded> {
    let from: Vec<&str> = g.from.iter().map(|s| s.as_str()).collect();
    let ttls: Vec<f64> = TrustTier::ALL
        .iter()
        .map(|t| g.tier_lease_ttl.apply(t.level(), g.lease_ttl).as_secs_f64())
        .collect();
    let data = g.message.map(|m| serde_json::json!({ "message": m }));
    let row = sqlx::query_file!(
        "src/store/tasks/guarded.sql",
        &digest[..],
        g.task_id,
        g.lease_id,
        &from as &[&str],
        g.report.as_str(),
        g.outcome.ends_lease,
        g.outcome.frees_slot,
        &ttls,
        data,
        g.on_time_per_point.as_secs_f64(),
        TrustTier::Untrusted.level(),
    )
    .fetch_optional(db)
    .await?;
    let Some(row) = row else {
        return Ok(Guarded::NoWorker);
    };
    let worker = WorkerId(row.worker_id);
    let Some(repeated) = row.repeated else {
        return Ok(Guarded::Missed { worker });
    };
    if repeated {
        crate::metrics::lease_renewed();
    } else {
        let o = &g.outcome;
        crate::metrics::transition(g.report.as_str(), o.ends_lease, o.requeued);
    }
    Ok(Guarded::Applied {
        worker,
        status: g.outcome.status,
        lease_expires_at: row.lease_expires_at,
    })
}
