//! A status report (`POST /v1/tasks/{id}/status`), applied under the task's row lock:
//! the transition table decides, the lease renews, PR provenance is checked, an artifact is
//! recorded, and one audit event says what happened.

use std::time::Duration;

use crate::store::Db;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use crate::config::TierCaps;
use crate::domain::ids::TaskId;
use crate::domain::pr_link::{PrEvidence, PrLink, PrRule};
use crate::domain::retry::Backoff;
use crate::domain::status::{Report, TaskStatus};
use crate::domain::transition::{Actor, PriorLease, TaskView, Verdict};
use crate::domain::trust::TrustTier;
use crate::domain::{pr_link, transition};
use crate::store::StoreResult;

#[derive(Default, Serialize)]
pub struct Artifact {
    pub pr_url: Option<String>,
    pub commit_sha: Option<String>,
    pub patch_url: Option<String>,
    pub extra: Option<serde_json::Value>,
}

impl Artifact {
    pub fn is_empty(&self) -> bool {
        self.pr_url.is_none()
            && self.commit_sha.is_none()
            && self.patch_url.is_none()
            && self.extra.is_none()
    }
}

pub struct StatusUpdate<'a> {
    pub task_id: &'a TaskId,
    pub actor: Actor<'a>,
    pub report: Report,
    pub lease_id: Option<&'a str>,
    pub message: Option<&'a str>,
    pub artifact: Artifact,
    pub lease_ttl: Duration,
    pub backoff: Backoff,
    /// For the audit log: `worker:<id>` or `admin:<name>`.
    pub audit_actor: &'a str,
    /// An admin's rating (1-5) of a PR it reports `merged`.
    pub quality: Option<i16>,
    /// `OWP_ON_TIME_PER_POINT`: a delivery is on time within this per estimate point.
    pub on_time_per_point: Duration,
    /// The GitHub web host PR links of GitHub repositories must be on.
    pub github_host: &'a str,
    /// `OWP_TIER_LEASE_TTL`: a renewed lease lasts at most this for the holder's tier.
    pub tier_lease_ttl: &'a TierCaps<Duration>,
    /// `OWP_MAX_ARTIFACTS_PER_LEASE`.
    pub max_artifacts_per_lease: i64,
    /// GitHub's word on a PR reported `merged` by GitHub (webhook, sync): whether the merge
    /// earns the PR opener credit.
    pub pr_evidence: Option<&'a PrEvidence>,
}

pub enum StatusResult {
    Updated {
        /// The task's status now; for a retried report already applied, the report.
        status: Report,
        lease_expires_at: Option<DateTime<Utc>>,
    },
    NotFound,
    LeaseLost,
    /// The caller holds the task again after the server ended a lease of its on it: the
    /// report must name its lease.
    LeaseIdRequired,
    Forbidden,
    /// The holder's claim waits for a maintainer's approval.
    AwaitingApproval,
    Invalid {
        from: TaskStatus,
    },
    /// The report's `pr_url` is not a pull request of the task's repository (why).
    ForeignPrUrl {
        reason: String,
    },
    /// Another task holds this pull request (its id).
    PrUrlTaken {
        task_id: String,
    },
    /// The lease has recorded `OWP_MAX_ARTIFACTS_PER_LEASE` artifacts already.
    TooManyArtifacts {
        max: i64,
    },
}

/// The task row as locked for a report, with the caller's newest lease on it.
pub(super) struct Locked {
    pub(super) status: TaskStatus,
    pub(super) worker_id: Option<String>,
    pub(super) lease_id: Option<String>,
    pub(super) attempt: i32,
    pub(super) max_attempts: i32,
    pub(super) estimate_points: i32,
    pub(super) repo: String,
    pub(super) pr_url_prefix: Option<String>,
    pub(super) task_pr_url: Option<String>,
    pub(super) caller_tier: Option<i16>,
    pub(super) lease_artifacts: i64,
    /// Earlier attempts of this task handed back with `released`.
    pub(super) releases: i64,
    pub(super) expired: bool,
    pub(super) awaiting_approval: bool,
    pub(super) prior_id: Option<String>,
    pub(super) prior_report: Option<String>,
    pub(super) prior_revoked: bool,
    pub(super) server_ended_earlier: bool,
}

impl Locked {
    /// The task and its previous lease as the transition table sees them.
    fn as_seen(&self) -> (TaskView<'_>, Option<PriorLease<'_>>) {
        let view = TaskView {
            status: self.status,
            holder: self.worker_id.as_deref(),
            lease_id: self.lease_id.as_deref(),
            lease_expired: self.expired,
            awaiting_approval: self.awaiting_approval,
        };
        let prior = self.prior_id.as_deref().map(|id| PriorLease {
            lease_id: id,
            last_report: self.prior_report.as_deref(),
            revoked: self.prior_revoked,
            server_ended_earlier: self.server_ended_earlier,
        });
        (view, prior)
    }
}

/// The answer to a report the transition table does not apply (`None`: it applies or
/// repeats the current status).
fn refused(verdict: Verdict, t: &Locked, u: &StatusUpdate<'_>) -> Option<StatusResult> {
    Some(match verdict {
        Verdict::Apply | Verdict::Repeat => return None,
        Verdict::LeaseLost => StatusResult::LeaseLost,
        Verdict::Forbidden => StatusResult::Forbidden,
        Verdict::Invalid => StatusResult::Invalid { from: t.status },
        Verdict::LeaseIdRequired => StatusResult::LeaseIdRequired,
        Verdict::AwaitingApproval => StatusResult::AwaitingApproval,
        _ => StatusResult::Updated {
            status: u.report,
            lease_expires_at: None,
        },
    })
}

/// The report's PR link, checked (domain::pr_link: a link of this task's repository, in
/// one spelling, held by no other task) and its artifact within the lease's allowance;
/// `Err` is the refusal to answer.
async fn checked_link(
    tx: &mut PgConnection,
    t: &Locked,
    u: &StatusUpdate<'_>,
) -> StoreResult<Result<Option<PrLink>, StatusResult>> {
    let link = match &u.artifact.pr_url {
        None => None,
        Some(raw) => {
            let rule = PrRule::for_repo(&t.repo, t.pr_url_prefix.as_deref(), u.github_host);
            match pr_link::check(raw, rule) {
                Ok(link) => Some(link),
                Err(reason) => return Ok(Err(StatusResult::ForeignPrUrl { reason })),
            }
        }
    };
    if let Some(link) = &link {
        if let Some(other) = pr_holder(tx, &link.key, u.task_id).await? {
            return Ok(Err(StatusResult::PrUrlTaken { task_id: other }));
        }
    }
    if !u.artifact.is_empty() && t.lease_artifacts >= u.max_artifacts_per_lease {
        return Ok(Err(StatusResult::TooManyArtifacts {
            max: u.max_artifacts_per_lease,
        }));
    }
    Ok(Ok(link))
}

/// Whether the lease this report ends counts for nothing in the worker's reputation
/// (PROTOCOL.md "Reputation"): an untrusted worker's `completed` with no PR link to show,
/// or a merge of a PR GitHub says someone else opened, or opened before the lease.
async fn uncredited(
    tx: &mut PgConnection,
    t: &Locked,
    u: &StatusUpdate<'_>,
    has_link: bool,
) -> StoreResult<bool> {
    let unproven_completion = u.report == Report::Rest(TaskStatus::Completed)
        && t.caller_tier == Some(TrustTier::Untrusted.level())
        && !has_link
        && t.task_pr_url.is_none();
    let foreign_merge = match u.pr_evidence {
        Some(ev) if u.report == Report::Rest(TaskStatus::Merged) => {
            let (handle, granted_at) = pr_opener(tx, u.task_id).await?;
            !granted_at.is_some_and(|g| ev.credits(handle.as_deref(), g))
        }
        _ => false,
    };
    Ok(unproven_completion || foreign_merge)
}

/// A release is free once; after that the task waits out the retry backoff like a failed
/// attempt (PROTOCOL.md "Retries"), so claim/release cannot loop.
fn backoff_after(report: Report, releases: i64) -> Option<i32> {
    match report {
        Report::Released if releases > 0 => Some(i32::try_from(releases).unwrap_or(i32::MAX)),
        _ => None,
    }
}

/// Applies one status report: locks the task row, decides with the domain rules, writes the
/// task, its lease, artifact and audit events in one transaction (four round trips).
/// Fires the status triggers (`store` docs: what triggers write).
pub async fn update_status(pool: &Db, u: &StatusUpdate<'_>) -> StoreResult<StatusResult> {
    let worker_id = match u.actor {
        Actor::Worker(w) => Some(w),
        Actor::Admin => None,
    };
    let mut tx = crate::store::begin(pool).await?;
    let Some(t) = lock_task(&mut tx, u.task_id, worker_id).await? else {
        return Ok(StatusResult::NotFound);
    };
    let (view, prior) = t.as_seen();
    let verdict = transition::decide(&view, u.actor, u.report, u.lease_id, prior.as_ref());
    if let Some(result) = refused(verdict, &t, u) {
        crate::store::commit(tx).await?;
        return Ok(result);
    }
    let link = match checked_link(&mut tx, &t, u).await? {
        Ok(link) => link,
        Err(refusal) => return Ok(refusal),
    };
    let ttl = u
        .tier_lease_ttl
        .apply(t.caller_tier.unwrap_or(0), u.lease_ttl);
    let uncredited = uncredited(&mut tx, &t, u, link.is_some()).await?;
    let artifact = Artifact {
        pr_url: link.as_ref().map(|l| l.url.clone()),
        commit_sha: u.artifact.commit_sha.clone(),
        patch_url: u.artifact.patch_url.clone(),
        extra: u.artifact.extra.clone(),
    };
    let written = Written {
        backoff_after: backoff_after(u.report, t.releases),
        ttl,
        pr_key: link.as_ref().map(|l| l.key.as_str()),
        artifact: &artifact,
        uncredited,
    };
    // the outcome of an applied transition, kept for the metrics after commit
    let mut applied = None;
    let (status, expires) = if verdict == Verdict::Repeat {
        let expires = renew_lease(&mut tx, u.task_id, ttl).await?;
        (t.status, expires)
    } else {
        let out = transition::outcome(u.report, t.attempt, t.max_attempts);
        let from = Snapshot {
            status: t.status,
            estimate_points: t.estimate_points,
            repo: &t.repo,
            lease_id: t.lease_id.as_deref(),
        };
        let expires = apply(&mut tx, u, &written, worker_id, &from, &out).await?;
        applied = Some(out);
        (out.status, expires)
    };
    let lease_id = t.lease_id.as_deref();
    record_artifact(&mut tx, u.task_id, &artifact, worker_id, lease_id).await?;
    let result = StatusResult::Updated {
        status: Report::Rest(status),
        lease_expires_at: expires,
    };
    crate::store::commit(tx).await?;
    if let Some(out) = applied {
        crate::metrics::transition(u.report.as_str(), out.ends_lease, out.requeued);
    } else if verdict == Verdict::Repeat && t.status.is_live() {
        crate::metrics::lease_renewed();
    }
    Ok(result)
}

/// The GitHub handle of the worker whose lease opened the task's PR (its newest lease),
/// and when that lease was granted.
pub(super) async fn pr_opener(
    tx: &mut PgConnection,
    task_id: &str,
) -> StoreResult<(Option<String>, Option<DateTime<Utc>>)> {
    let row = sqlx::query!(
        "select w.github_handle, l.granted_at from leases l join workers w on w.id = l.worker_id
         where l.task_id = $1 order by l.seq desc limit 1",
        task_id
    )
    .fetch_optional(tx)
    .await?;
    Ok(row.map_or((None, None), |r| (r.github_handle, Some(r.granted_at))))
}

/// The other task that holds this PR (not back in the queue, not given up), if any. The
/// unique index `tasks_pr_key_held` settles a race between two reports of one link.
pub(super) async fn pr_holder(
    tx: &mut PgConnection,
    key: &str,
    task_id: &str,
) -> StoreResult<Option<String>> {
    let other = sqlx::query_scalar!(
        "select id from tasks
         where pr_key = $1 and id <> $2
           and task_holds_pr(status)
         limit 1",
        key,
        task_id
    )
    .fetch_optional(tx)
    .await?;
    Ok(other)
}

/// Locks the task row, which serialises every report on this task and its requeue by the
/// sweeps; the caller's newest lease on it (if any) tells lease_lost from forbidden.
pub(super) async fn lock_task(
    tx: &mut PgConnection,
    task_id: &str,
    worker_id: Option<&str>,
) -> StoreResult<Option<Locked>> {
    let t = sqlx::query_as!(
        Locked,
        r#"select t.status as "status: TaskStatus", t.worker_id, t.lease_id, t.attempt, t.max_attempts,
                  t.estimate_points, t.repo,
                  (select r.pr_url_prefix from repositories r where r.repo = t.repo) as pr_url_prefix,
                  t.pr_url as task_pr_url,
                  (select w.trust_tier from workers w where w.id = $2) as caller_tier,
                  (select count(*) from artifacts a where a.lease_id = coalesce(t.lease_id, p.id)) as "lease_artifacts!",
                  (select count(*) from leases r where r.task_id = t.id and r.end_reason = 'released') as "releases!",
                  coalesce(t.lease_expires_at < now(), false) as "expired!",
                  coalesce(t.approval_lease = t.lease_id, false) as "awaiting_approval!",
                  p.id as "prior_id?", p.last_report as "prior_report?",
                  coalesce(p.end_reason in ('lease_expired', 'worker_offline', 'requeued', 'cancelled', 'worker_revoked'), false) as "prior_revoked!",
                  coalesce(p.server_ended, false) as "server_ended_earlier!"
           from tasks t
           left join lateral (
               select id, last_report, end_reason,
                      bool_or(end_reason in ('lease_expired', 'worker_offline', 'requeued', 'cancelled', 'worker_revoked')) over () as server_ended
               from leases l
               where l.task_id = t.id and l.worker_id = $2
               order by l.seq desc limit 1) p on true
           where t.id = $1
           for update of t"#,
        task_id,
        worker_id,
    )
    .fetch_optional(tx)
    .await?;
    Ok(t)
}

/// A repeat is a sign of progress: it renews a live lease, nothing else.
pub(super) async fn renew_lease(
    tx: &mut PgConnection,
    task_id: &str,
    ttl: Duration,
) -> StoreResult<Option<DateTime<Utc>>> {
    let expires = sqlx::query_scalar!(
        "update tasks set lease_expires_at = now() + make_interval(secs => $2), updated_at = now()
         where id = $1 and task_is_live(status)
         returning lease_expires_at",
        task_id,
        ttl.as_secs_f64()
    )
    .fetch_optional(tx)
    .await?
    .flatten();
    Ok(expires)
}

/// The task as locked, before the transition.
pub(super) struct Snapshot<'a> {
    pub(super) status: TaskStatus,
    pub(super) estimate_points: i32,
    pub(super) repo: &'a str,
    pub(super) lease_id: Option<&'a str>,
}

/// What a report writes beyond its status, decided after the checks.
pub(super) struct Written<'a> {
    /// A release that waits out the retry backoff as after this many lost attempts.
    pub(super) backoff_after: Option<i32>,
    /// The lease's TTL for the holder's tier.
    pub(super) ttl: Duration,
    /// The PR's key (domain::pr_link), when the report carries a link.
    pub(super) pr_key: Option<&'a str>,
    /// The artifact, its PR link normalised.
    pub(super) artifact: &'a Artifact,
    /// The lease counts for nothing in its worker's reputation.
    pub(super) uncredited: bool,
}

/// Writes an allowed transition in one statement: the task, its lease (the live one, or
/// the one that opened the PR), the status event and, on a requeue, its event (I7).
pub(super) async fn apply(
    tx: &mut PgConnection,
    u: &StatusUpdate<'_>,
    w: &Written<'_>,
    worker_id: Option<&str>,
    from: &Snapshot<'_>,
    out: &transition::Outcome,
) -> StoreResult<Option<DateTime<Utc>>> {
    let message = u.message.map(|m| serde_json::json!({ "message": m }));
    // the attempt just lost is the `out.attempt`-th
    let delay = match w.backoff_after {
        Some(n) => Some(u.backoff.after(n)),
        None => out.backs_off.then(|| u.backoff.after(out.attempt)),
    };
    let expires = sqlx::query_file_scalar!(
        "src/store/tasks/apply.sql",
        u.task_id.as_str(),
        from.status.as_str(),
        out.status.as_str(),
        out.attempt,
        out.ends_lease,
        out.frees_slot,
        w.ttl.as_secs_f64(),
        w.artifact.pr_url,
        u.report.as_str(),
        worker_id,
        from.repo,
        from.lease_id,
        message,
        out.requeued,
        delay.map(|d| d.everyone.as_secs_f64()),
        delay.map(|d| d.same_worker.as_secs_f64()),
        u.audit_actor,
        // on time within estimate_points x OWP_ON_TIME_PER_POINT
        u.on_time_per_point.as_secs_f64() * f64::from(from.estimate_points),
        u.quality,
        w.pr_key,
        w.uncredited,
    )
    .fetch_one(tx)
    .await?;
    Ok(expires)
}

pub(super) async fn record_artifact(
    tx: &mut PgConnection,
    task_id: &str,
    a: &Artifact,
    worker_id: Option<&str>,
    lease_id: Option<&str>,
) -> StoreResult<()> {
    if a.is_empty() {
        return Ok(());
    }
    // a retried or repeated report carries the same artifact again: keep one row (the
    // task row is locked, so two reports cannot both miss each other's row)
    sqlx::query!(
        "insert into artifacts (task_id, worker_id, lease_id, pr_url, commit_sha, patch_url, extra)
         select $1, $2, $3, $4, $5, $6, $7
         where not exists (
             select 1 from artifacts a
             where a.task_id = $1 and a.worker_id is not distinct from $2
               and a.lease_id is not distinct from $3 and a.pr_url is not distinct from $4
               and a.commit_sha is not distinct from $5 and a.patch_url is not distinct from $6
               and a.extra is not distinct from $7)",
        task_id,
        worker_id,
        lease_id,
        a.pr_url,
        a.commit_sha,
        a.patch_url,
        a.extra,
    )
    .execute(tx)
    .await?;
    Ok(())
}
