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
use crate::store::{Db, StoreError, StoreResult};

/// A report that qualifies for the guarded statement. It owns its text, so a batch of them
/// can wait in the report queue (`report_batch`).
pub struct GuardedReport {
    pub task_id: String,
    /// The lease the report names.
    pub lease_id: String,
    pub report: Report,
    /// The statuses it applies from (or repeats).
    from: Vec<TaskStatus>,
    outcome: transition::Outcome,
    pub message: Option<String>,
}

/// The pool's settings a guarded report applies: lease TTLs and the on-time limit.
#[derive(Clone, Debug)]
pub struct GuardedRules {
    pub lease_ttl: Duration,
    pub tier_lease_ttl: TierCaps<Duration>,
    pub on_time_per_point: Duration,
}

impl GuardedRules {
    /// The lease TTL (s) per trust tier, indexed by level + 1 in SQL.
    fn ttls(&self) -> Vec<f64> {
        TrustTier::ALL
            .iter()
            .map(|t| {
                self.tier_lease_ttl
                    .apply(t.level(), self.lease_ttl)
                    .as_secs_f64()
            })
            .collect()
    }
}

impl GuardedReport {
    /// The report, if it may take the guarded statement: it names its lease and the domain
    /// lists the statuses it applies from.
    pub fn new(
        task_id: &str,
        lease_id: Option<&str>,
        report: Report,
        message: Option<&str>,
    ) -> Option<Self> {
        let from = transition::guarded_from(report)?;
        // a lease id is compared, never stored: one PostgreSQL text cannot hold (NUL) is
        // no lease's, and the locking path answers it without sending it
        let lease_id = lease_id.filter(|l| !l.contains('\0'))?;
        Some(Self {
            task_id: task_id.to_string(),
            lease_id: lease_id.to_string(),
            report,
            from,
            // guarded_from promises the outcome does not depend on the attempt counters
            outcome: transition::outcome(report, 0, 1),
            message: message.map(str::to_string),
        })
    }

    /// The statuses it applies from, as the batch statement takes them (comma-separated).
    fn applies_from(&self) -> String {
        let from: Vec<&str> = self.from.iter().map(|s| s.as_str()).collect();
        from.join(",")
    }

    /// What an applied report answers, and counts.
    fn applied(
        &self,
        worker: WorkerId,
        repeated: bool,
        lease_expires_at: Option<DateTime<Utc>>,
    ) -> Guarded {
        if repeated {
            crate::metrics::lease_renewed();
        } else {
            let o = &self.outcome;
            crate::metrics::transition(self.report.as_str(), o.ends_lease, o.requeued);
        }
        Guarded::Applied {
            worker,
            status: self.outcome.status,
            lease_expires_at,
        }
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
    g: &GuardedReport,
    rules: &GuardedRules,
) -> StoreResult<Guarded> {
    let from: Vec<&str> = g.from.iter().map(|s| s.as_str()).collect();
    let data = g
        .message
        .as_ref()
        .map(|m| serde_json::json!({ "message": m }));
    let row = sqlx::query_file!(
        "src/store/tasks/guarded.sql",
        &digest[..],
        g.task_id,
        g.lease_id,
        &from as &[&str],
        g.report.as_str(),
        g.outcome.ends_lease,
        g.outcome.frees_slot,
        &rules.ttls(),
        data,
        rules.on_time_per_point.as_secs_f64(),
        TrustTier::Untrusted.level(),
    )
    .fetch_optional(db)
    .await?;
    let Some(row) = row else {
        return Ok(Guarded::NoWorker);
    };
    let worker = WorkerId(row.worker_id);
    Ok(match row.repeated {
        None => Guarded::Missed { worker },
        Some(repeated) => g.applied(worker, repeated, row.lease_expires_at),
    })
}

/// Runs the guarded statement once for many reports, each of its own worker's token
/// (guarded_batch.sql): one round trip and one commit for them all. The task ids must
/// differ (the queue defers a repeat to the next batch); the answers come in input order.
pub async fn report_guarded_many(
    db: &Db,
    reports: &[(&[u8; 32], &GuardedReport)],
    rules: &GuardedRules,
) -> StoreResult<Vec<Guarded>> {
    let digests: Vec<&[u8]> = reports.iter().map(|(d, _)| &d[..]).collect();
    let column = |f: fn(&GuardedReport) -> String| -> Vec<String> {
        reports.iter().map(|(_, g)| f(g)).collect()
    };
    let ends: Vec<bool> = reports.iter().map(|(_, g)| g.outcome.ends_lease).collect();
    let frees: Vec<bool> = reports.iter().map(|(_, g)| g.outcome.frees_slot).collect();
    let messages: Vec<Option<String>> = reports.iter().map(|(_, g)| g.message.clone()).collect();
    let rows = sqlx::query_file!(
        "src/store/tasks/guarded_batch.sql",
        &digests as &[&[u8]],
        &column(|g| g.task_id.clone()),
        &column(|g| g.lease_id.clone()),
        &column(GuardedReport::applies_from),
        &column(|g| g.report.as_str().to_string()),
        &ends,
        &frees,
        &messages as &[Option<String>],
        &rules.ttls(),
        rules.on_time_per_point.as_secs_f64(),
        TrustTier::Untrusted.level(),
    )
    .fetch_all(db)
    .await?;
    if rows.len() != reports.len() {
        return Err(StoreError::Internal(sqlx::Error::Protocol(format!(
            "the report batch answered {} rows for {} reports",
            rows.len(),
            reports.len()
        ))));
    }
    let mut answers = Vec::with_capacity(reports.len());
    for (row, (_, g)) in rows.into_iter().zip(reports) {
        answers.push(match (row.worker_id, row.repeated) {
            (None, _) => Guarded::NoWorker,
            (Some(w), None) => Guarded::Missed {
                worker: WorkerId(w),
            },
            (Some(w), Some(repeated)) => g.applied(WorkerId(w), repeated, row.lease_expires_at),
        });
    }
    Ok(answers)
}
