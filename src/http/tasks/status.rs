//! Status reports on a task: the lease holder moves it along the transition table.

use axum::extract::{Path, State};
use axum::Json;

use crate::app::AppContext;
use crate::domain::ids::TaskId;
use crate::domain::input;
use crate::domain::input::{Checked, Invalid};
use crate::domain::status::{Report, TaskStatus};
use crate::error::ApiError;
use crate::http::extract::{ApiJson, Caller, CallerToken};
use crate::store::tasks;
use crate::store::tasks::{Artifact, Guarded, GuardedReport, StatusResult, StatusUpdate};
use crate::wire::tasks::{StatusRequest, StatusResponse};
use crate::wire::ErrorBody;

struct ValidReport {
    report: Report,
    message: Option<String>,
    artifact: Artifact,
    quality: Option<i16>,
}

fn validate(req: StatusRequest, max_extra: usize) -> Checked<ValidReport> {
    let report: Report = req.status.trim().parse().map_err(|_| {
        Invalid::new(
            "status",
            "unknown status; one of in_progress, blocked, pr_opened, completed, failed, released, merged, closed",
        )
    })?;
    let art = req.artifact.unwrap_or_default();
    let pr_url = match (art.pr_url.as_deref(), req.pr_url.as_deref()) {
        (Some(u), _) => Some(input::https_url("artifact.pr_url", u)?),
        (None, Some(u)) => Some(input::https_url("pr_url", u)?),
        (None, None) => None,
    };
    if report == Report::Rest(TaskStatus::PrOpened) && pr_url.is_none() {
        return Err(Invalid::new("pr_url", "required when status is pr_opened"));
    }
    let quality = match req.quality {
        None => None,
        Some(_) if report != Report::Rest(TaskStatus::Merged) => {
            return Err(Invalid::new("quality", "only with status merged"));
        }
        Some(q @ 1..=5) => Some(q as i16),
        Some(_) => return Err(Invalid::new("quality", "must be between 1 and 5")),
    };
    Ok(ValidReport {
        quality,
        report,
        message: input::optional_text("message", req.message.as_deref(), 2000)?,
        artifact: Artifact {
            pr_url,
            commit_sha: input::optional_text(
                "artifact.commit_sha",
                art.commit_sha.as_deref(),
                100,
            )?,
            patch_url: art
                .patch_url
                .as_deref()
                .map(|u| input::https_url("artifact.patch_url", u))
                .transpose()?,
            extra: match art.extra.filter(|v| !v.is_null()) {
                Some(extra) if extra.to_string().len() > max_extra => {
                    return Err(Invalid::new(
                        "artifact.extra",
                        format!("at most {max_extra} bytes of JSON (OWP_MAX_ARTIFACT_EXTRA)"),
                    ))
                }
                extra => extra,
            },
        },
    })
}

/// Report progress or an outcome on a task the caller holds (an admin may merge or close an opened PR).
#[utoipa::path(post, path = "/v1/tasks/{task_id}/status", tag = "tasks",
    params(("task_id" = String, Path, description = "t_ id")),
    request_body = StatusRequest, security(("worker" = []), ("admin" = [])),
    responses((status = 200, body = StatusResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, description = "details: lease_lost, invalid_transition: <from> -> <to>, or pr_url_taken: <task id>", body = ErrorBody)))]
pub async fn report_status(
    State(app): State<AppContext>,
    Path(task_id): Path<TaskId>,
    token: CallerToken,
    ApiJson(req): ApiJson<StatusRequest>,
) -> Result<Json<StatusResponse>, ApiError> {
    if task_id.contains('\0') {
        // no id has one, and PostgreSQL text cannot hold it
        return Err(ApiError::NotFound("task"));
    }
    let lease_id = req.lease_id.clone().filter(|l| !l.trim().is_empty());
    let c = validate(req, app.settings.max_artifact_extra)?;
    let caller = match token {
        CallerToken::Worker(token) => match guarded(&task_id, lease_id.as_deref(), &c) {
            None => Caller::Worker(token.authenticate(&app).await?),
            Some(g) => match app.reports.report(&token.key, g).await?? {
                Guarded::Applied {
                    worker,
                    status,
                    lease_expires_at,
                } => {
                    token.accepted(&app, worker);
                    let status = Report::Rest(status);
                    return Ok(reported(&app, &task_id, c.report, status, lease_expires_at));
                }
                Guarded::Missed { worker } => Caller::Worker(token.accepted(&app, worker)),
                Guarded::NoWorker => Caller::Worker(token.authenticate(&app).await?),
            },
        },
        token => token.authenticate(&app).await?,
    };
    may_report(&app, &caller, &task_id, &c).await?;
    let audit_actor = caller.audit_actor();
    let gh_host = app.settings.github.web_host();
    let update = StatusUpdate {
        task_id: &task_id,
        actor: caller.actor(),
        report: c.report,
        lease_id: lease_id.as_deref(),
        message: c.message.as_deref(),
        artifact: c.artifact,
        lease_ttl: app.settings.lease_ttl,
        backoff: app.backoff(),
        audit_actor: &audit_actor,
        quality: c.quality,
        on_time_per_point: app.settings.on_time_per_point,
        github_host: &gh_host,
        tier_lease_ttl: &app.settings.tier_lease_ttl,
        max_artifacts_per_lease: app.settings.max_artifacts_per_lease,
        pr_evidence: None,
    };
    match tasks::update_status(&app.pool, &update).await? {
        StatusResult::Updated {
            status,
            lease_expires_at,
        } => Ok(reported(&app, &task_id, c.report, status, lease_expires_at)),
        StatusResult::NotFound => Err(ApiError::NotFound("task")),
        StatusResult::LeaseLost => Err(ApiError::LeaseLost),
        StatusResult::LeaseIdRequired => Err(Invalid::new(
            "lease_id",
            "required: the server ended an earlier lease of yours on this task; name the lease this report is about",
        )
        .into()),
        StatusResult::AwaitingApproval => Err(ApiError::AwaitingApproval),
        StatusResult::Forbidden => Err(ApiError::Forbidden(match caller {
            Caller::Admin(_) => "admins may only merge or close an opened PR",
            Caller::Worker(_) => "this task is not leased to you",
        })),
        StatusResult::Invalid { from } => Err(ApiError::InvalidTransition { from, to: c.report }),
        StatusResult::ForeignPrUrl { reason } => Err(Invalid::new("pr_url", reason).into()),
        StatusResult::PrUrlTaken { task_id } => Err(ApiError::PrUrlTaken { task_id }),
        StatusResult::TooManyArtifacts { max } => Err(Invalid::new(
            "artifact",
            format!("this lease has recorded {max} artifacts, the most one lease may (OWP_MAX_ARTIFACTS_PER_LEASE)"),
        )
        .into()),
    }
}

/// A worker's report that may take the one-statement path (through the report queue,
/// `report_batch`): no artifact to check or record, and a report and lease the domain's
/// guard covers (`store::tasks::guarded`).
fn guarded(task_id: &str, lease_id: Option<&str>, c: &ValidReport) -> Option<GuardedReport> {
    if !c.artifact.is_empty() || c.quality.is_some() {
        return None;
    }
    GuardedReport::new(task_id, lease_id, c.report, c.message.as_deref())
}

/// The answer to an applied report; a report that frees capacity, a slot or the task
/// itself wakes this replica's waiting polls.
fn reported(
    app: &AppContext,
    task_id: &str,
    report: Report,
    status: Report,
    lease_expires_at: Option<chrono::DateTime<chrono::Utc>>,
) -> Json<StatusResponse> {
    if !matches!(
        report,
        Report::Rest(TaskStatus::InProgress | TaskStatus::Blocked)
    ) {
        app.long_poll.work_ready(1);
    }
    Json(StatusResponse {
        ok: true,
        task_id: task_id.to_string(),
        status: status.as_str().into(),
        lease_expires_at,
    })
}

/// What the caller may not do whatever the task's state: a worker rates no PR, a scoped
/// admin reaches no other repository's task (404, as for no task).
async fn may_report(
    app: &AppContext,
    caller: &Caller,
    task_id: &str,
    c: &ValidReport,
) -> Result<(), ApiError> {
    match caller {
        Caller::Admin(a) => crate::http::scope::task_in_scope(app, a, task_id).await,
        Caller::Worker(_) if c.quality.is_some() => {
            Err(ApiError::Forbidden("only an admin rates a PR (quality)"))
        }
        Caller::Worker(_) => Ok(()),
    }
}
