//! A status report (`POST /v1/tasks/{id}/status`), applied under the task's row lock:
//! the transition table decides, the lease renews, PR provenance is checked, an artifact is
//! recorded, and one audit event says what happened.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use crate::config::TierCaps;
use crate::domain::pr_link::{PrEvidence, PrRule};
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
    fn is_empty(&self) -> bool {
        self.pr_url.is_none()
            && self.commit_sha.is_none()
            && self.patch_url.is_none()
            && self.extra.is_none()
    }
}

pub struct StatusUpdate<'a> {
    pub task_id: &'a str,
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
    pub(super) prior_id: Option<String>,
    pub(super) prior_report: Option<String>,
    pub(super) prior_revoked: bool,
    pub(super) server_ended_earlier: bool,
}

/// Applies one status report: locks the task row, decides with the domain rules, writes the
/// task, its lease, artifact and audit events in one transaction (four round trips).
/// Fires the status triggers (`store` docs: what triggers write).
pub async fn update_status(pool: &PgPool, u: &StatusUpdate<'_>) -> StoreResult<StatusResult> {
    let worker_id = match u.actor {
        Actor::Worker(w) => Some(w),
        Actor::Admin => None,
    };
    let mut tx = crate::store::begin(pool).await?;
    let Some(t) = lock_task(&mut tx, u.task_id, worker_id).await? else {
        return Ok(StatusResult::NotFound);
    };
    let view = TaskView {
        status: t.status,
        holder: t.worker_id.as_deref(),
        lease_id: t.lease_id.as_deref(),
        lease_expired: t.expired,
    };
    let prior = t.prior_id.as_deref().map(|id| PriorLease {
        lease_id: id,
        last_report: t.prior_report.as_deref(),
        revoked: t.prior_revoked,
        server_ended_earlier: t.server_ended_earlier,
    });
    let verdict = transition::decide(&view, u.actor, u.report, u.lease_id, prior.as_ref());
    if !matches!(verdict, Verdict::Apply | Verdict::Repeat) {
        let result = match verdict {
            Verdict::LeaseLost => StatusResult::LeaseLost,
            Verdict::Forbidden => StatusResult::Forbidden,
            Verdict::Invalid => StatusResult::Invalid { from: t.status },
            Verdict::LeaseIdRequired => StatusResult::LeaseIdRequired,
            _ => StatusResult::Updated {
                status: u.report,
                lease_expires_at: None,
            },
        };
        crate::store::commit(tx).await?;
        return Ok(result);
    }
    // PR provenance (domain::pr_link): a link of this task's repository, in one spelling
    let link = match &u.artifact.pr_url {
        None => None,
        Some(raw) => {
            let rule = PrRule::for_repo(&t.repo, t.pr_url_prefix.as_deref(), u.github_host);
            match pr_link::check(raw, rule) {
                Ok(link) => Some(link),
                Err(reason) => return Ok(StatusResult::ForeignPrUrl { reason }),
            }
        }
    };
    if let Some(link) = &link {
        if let Some(other) = pr_holder(&mut tx, &link.key, u.task_id).await? {
            return Ok(StatusResult::PrUrlTaken { task_id: other });
        }
    }
    if !u.artifact.is_empty() && t.lease_artifacts >= u.max_artifacts_per_lease {
        return Ok(StatusResult::TooManyArtifacts {
            max: u.max_artifacts_per_lease,
        });
    }
    let ttl = u
        .tier_lease_ttl
        .apply(t.caller_tier.unwrap_or(0), u.lease_ttl);
    // an untrusted worker's `completed` with no PR link to show is not evidence of work:
    // it counts toward nothing (PROTOCOL.md "Reputation")
    let unproven_completion = u.report == Report::Rest(TaskStatus::Completed)
        && t.caller_tier == Some(TrustTier::Untrusted.level())
        && link.is_none()
        && t.task_pr_url.is_none();
    let foreign_merge = match u.pr_evidence {
        Some(ev) if u.report == Report::Rest(TaskStatus::Merged) => {
            let (handle, granted_at) = pr_opener(&mut tx, u.task_id).await?;
            !granted_at.is_some_and(|g| ev.credits(handle.as_deref(), g))
        }
        _ => false,
    };
    let uncredited = unproven_completion || foreign_merge;
    let artifact = Artifact {
        pr_url: link.as_ref().map(|l| l.url.clone()),
        commit_sha: u.artifact.commit_sha.clone(),
        patch_url: u.artifact.patch_url.clone(),
        extra: u.artifact.extra.clone(),
    };
    // a release is free once; after that the task waits out the retry backoff like a
    // failed attempt (PROTOCOL.md "Retries"), so claim/release cannot loop
    let backoff_after = match u.report {
        Report::Released if t.releases > 0 => Some(i32::try_from(t.releases).unwrap_or(i32::MAX)),
        _ => None,
    };
    let written = Written {
        backoff_after,
        ttl,
        pr_key: link.as_ref().map(|l| l.key.as_str()),
        artifact: &artifact,
        uncredited,
    };
    // the outcome of an applied transition, kept for the metrics after commit
    let mut applied = None;
    let result = match verdict {
        Verdict::Repeat => {
            let expires = renew_lease(&mut tx, u.task_id, ttl).await?;
            record_artifact(
                &mut tx,
                u.task_id,
                &artifact,
                worker_id,
                t.lease_id.as_deref(),
            )
            .await?;
            StatusResult::Updated {
                status: Report::Rest(t.status),
                lease_expires_at: expires,
            }
        }
        Verdict::Apply => {
            let out = transition::outcome(u.report, t.attempt, t.max_attempts);
            let from = Snapshot {
                status: t.status,
                estimate_points: t.estimate_points,
                repo: &t.repo,
                lease_id: t.lease_id.as_deref(),
            };
            let expires = apply(&mut tx, u, &written, worker_id, &from, &out).await?;
            record_artifact(
                &mut tx,
                u.task_id,
                &artifact,
                worker_id,
                t.lease_id.as_deref(),
            )
            .await?;
            applied = Some(out);
            StatusResult::Updated {
                status: Report::Rest(out.status),
                lease_expires_at: expires,
            }
        }
        _ => unreachable!("every other verdict returned above"),
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
    let expires = sqlx::query_scalar!(
        r#"with t as (
               update tasks set
                   status = $3, attempt = $4,
                   worker_id = case when $3 = 'ready' then null else worker_id end,
                   lease_id = case when $5 then null else lease_id end,
                   lease_expires_at = case when $5 then null else now() + make_interval(secs => $7) end,
                   holds_area_lock = holds_area_lock and not $6,
                   pr_url = coalesce($8, pr_url),
                   pr_key = coalesce($20, pr_key),
                   pr_opened_at = case when $3 = 'pr_opened' then coalesce(pr_opened_at, now()) end,
                   -- retry backoff: withheld_from is the holder before this update
                   retry_at = now() + make_interval(secs => $15),
                   withheld_from = case when $15::float8 is not null then worker_id end,
                   withheld_until = now() + make_interval(secs => $16),
                   updated_at = now()
               where id = $1 and status = $2
               returning lease_expires_at),
           l as (
               update leases set last_report = $9,
                   ended_at = case when ended_at is null and $5 then now() else ended_at end,
                   end_reason = case when ended_at is null and $5 then $9 else end_reason end,
                   -- reputation: delivered within estimate_points x OWP_ON_TIME_PER_POINT
                   on_time = case when ended_at is null and $5 and $9 in ('completed', 'pr_opened')
                       then now() - granted_at <= make_interval(secs => $18)
                       else on_time end,
                   quality = coalesce($19, quality),
                   credited = credited and not $21,
                   -- repository analytics: review wait ends here
                   pr_decided_at = case when $9 in ('merged', 'closed') then now() else pr_decided_at end
               -- the task's current lease by its id; after pr_opened (no current lease) the
               -- newest one, which opened the PR (leases_by_task_worker's prefix)
               where id = coalesce($12, (select id from leases where task_id = $1 order by seq desc limit 1))
                 and exists (select 1 from t)),
           changed as (
               insert into audit_events (kind, task_id, worker_id, repo, lease_id, from_status, to_status, data, actor)
               select 'task_status_changed', $1, $10, $11, $12, $2, $9, $13, $17 from t),
           requeued as (
               insert into audit_events (kind, task_id, worker_id, repo, lease_id, from_status, to_status, reason, data, actor)
               select 'task_requeued', $1, $10, $11, $12, $2, 'ready', $14, jsonb_build_object('attempt', $4::int), $17
               from t where $14::text is not null)
           select lease_expires_at from t"#,
        u.task_id,
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
