//! Status reports on a task: the lease holder moves it along the transition table.

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{ApiJson, Caller};
use crate::app::AppState;
use crate::domain::input::{self, Checked, Invalid};
use crate::domain::status::Report;
use crate::error::ApiError;
use crate::store::tasks::{self, Artifact, StatusResult, StatusUpdate};

#[derive(Deserialize, ToSchema)]
pub struct ArtifactIn {
    /// https URL of the pull request.
    #[schema(format = "uri", max_length = 2000, pattern = "^https://")]
    pub pr_url: Option<String>,
    #[schema(max_length = 100)]
    pub commit_sha: Option<String>,
    #[schema(format = "uri", max_length = 2000, pattern = "^https://")]
    pub patch_url: Option<String>,
    /// Anything else the client wants kept with the artifact.
    pub extra: Option<serde_json::Value>,
}

#[derive(Deserialize, ToSchema)]
pub struct StatusRequest {
    /// The status to move to; see the transition table in PROTOCOL.md.
    #[schema(value_type = ReportedStatus)]
    pub status: String,
    /// Up to 2,000 characters, kept in the audit log.
    #[schema(max_length = 2000)]
    pub message: Option<String>,
    pub artifact: Option<ArtifactIn>,
    /// Synonym for `artifact.pr_url`; required with `pr_opened`.
    #[schema(format = "uri", max_length = 2000, pattern = "^https://")]
    pub pr_url: Option<String>,
    /// When given and not the task's current lease, the update is refused with `lease_lost`.
    pub lease_id: Option<String>,
}

/// Statuses a report may name, for the OpenAPI document: read from `domain::status`, so
/// the document cannot drift from what the server parses.
pub struct ReportedStatus;

impl utoipa::PartialSchema for ReportedStatus {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use crate::domain::status::TaskStatus;
        let names = TaskStatus::ALL
            .iter()
            .map(|s| s.as_str())
            .chain([Report::Released.as_str(), Report::Closed.as_str()]);
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(names))
            .description(Some(
                "`released` hands the task back; `closed` means the PR was closed unmerged; \
                 naming the current status renews the lease",
            ))
            .into()
    }
}

impl ToSchema for ReportedStatus {}

#[derive(Serialize, ToSchema)]
pub struct StatusResponse {
    pub ok: bool,
    pub task_id: String,
    /// The task's status after the update (`ready` after a requeue). For a retried report
    /// that was already applied to a task the caller no longer holds, the reported status.
    pub status: String,
    /// The renewed lease's expiry; null once the lease has ended.
    pub lease_expires_at: Option<DateTime<Utc>>,
}

struct ValidReport {
    report: Report,
    message: Option<String>,
    artifact: Artifact,
}

impl StatusRequest {
    fn validate(self) -> Checked<ValidReport> {
        let report: Report = self.status.trim().parse().map_err(|_| {
            Invalid::new(
                "status",
                "unknown status; one of in_progress, blocked, pr_opened, completed, failed, released, merged, closed",
            )
        })?;
        let art = self.artifact.unwrap_or(ArtifactIn {
            pr_url: None,
            commit_sha: None,
            patch_url: None,
            extra: None,
        });
        let pr_url = match (art.pr_url.as_deref(), self.pr_url.as_deref()) {
            (Some(u), _) => Some(input::https_url("artifact.pr_url", u)?),
            (None, Some(u)) => Some(input::https_url("pr_url", u)?),
            (None, None) => None,
        };
        if report == Report::Rest(crate::domain::status::TaskStatus::PrOpened) && pr_url.is_none() {
            return Err(Invalid::new("pr_url", "required when status is pr_opened"));
        }
        Ok(ValidReport {
            report,
            message: input::optional_text("message", self.message.as_deref(), 2000)?,
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
                extra: art.extra.filter(|v| !v.is_null()),
            },
        })
    }
}

/// Report progress or an outcome on a task the caller holds (an admin may merge or close an opened PR).
#[utoipa::path(post, path = "/v1/tasks/{task_id}/status", tag = "tasks",
    params(("task_id" = String, Path, description = "t_ id")),
    request_body = StatusRequest, security(("worker" = []), ("admin" = [])),
    responses((status = 200, body = StatusResponse), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody),
              (status = 409, description = "details: lease_lost, or invalid_transition: <from> -> <to>", body = crate::error::ErrorBody)))]
pub async fn report_status(
    State(app): State<AppState>,
    Path(task_id): Path<String>,
    caller: Caller,
    ApiJson(req): ApiJson<StatusRequest>,
) -> Result<Json<StatusResponse>, ApiError> {
    if task_id.contains('\0') {
        // no id has one, and PostgreSQL text cannot hold it
        return Err(ApiError::NotFound("task"));
    }
    let lease_id = req.lease_id.clone().filter(|l| !l.trim().is_empty());
    let c = req.validate()?;
    let update = StatusUpdate {
        task_id: &task_id,
        actor: caller.actor(),
        report: c.report,
        lease_id: lease_id.as_deref(),
        message: c.message.as_deref(),
        artifact: c.artifact,
        lease_ttl_secs: app.settings.lease_ttl.as_secs_f64(),
    };
    match tasks::update_status(&app.pool, &update).await? {
        StatusResult::Updated {
            status,
            lease_expires_at,
        } => Ok(Json(StatusResponse {
            ok: true,
            task_id,
            status,
            lease_expires_at,
        })),
        StatusResult::NotFound => Err(ApiError::NotFound("task")),
        StatusResult::LeaseLost => Err(ApiError::lease_lost()),
        StatusResult::Forbidden => Err(ApiError::Forbidden(match caller {
            Caller::Admin => "admins may only merge or close an opened PR",
            Caller::Worker(_) => "this task is not leased to you",
        })),
        StatusResult::Invalid { from } => Err(ApiError::invalid_transition(
            from.as_str(),
            c.report.as_str(),
        )),
    }
}
