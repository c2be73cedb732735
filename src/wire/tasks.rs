//! `POST /v1/tasks/{task_id}/status`: progress and outcome reports.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::status::{Report, TaskStatus};

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
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

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
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
    /// Required when the caller holds the task again after the server ended an earlier
    /// lease of its on it (expired, or offline).
    pub lease_id: Option<String>,
    /// An admin's rating of the merged PR, 1 (poor) to 5 (excellent): only with `merged`,
    /// only by an admin; it feeds the PR author's `avg_pr_quality`.
    #[schema(minimum = 1, maximum = 5)]
    pub quality: Option<i64>,
}

impl StatusRequest {
    /// A bare report of `status`.
    pub fn to(status: impl Into<String>) -> Self {
        Self {
            status: status.into(),
            ..Self::default()
        }
    }
}

/// Statuses a report may name, for the OpenAPI document: read from `domain::status`, so
/// the document cannot drift from what the server parses.
pub struct ReportedStatus;

impl utoipa::PartialSchema for ReportedStatus {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let names = TaskStatus::ALL
            .iter()
            .filter(|s| !matches!(s, TaskStatus::Cancelled | TaskStatus::Offered))
            .map(|s| s.as_str())
            .chain([Report::Released.as_str(), Report::Closed.as_str()]);
        super::enum_schema(
            names,
            "`released` hands the task back; `closed` means the PR was closed unmerged; \
             naming the current status renews the lease",
        )
    }
}

impl ToSchema for ReportedStatus {}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StatusResponse {
    pub ok: bool,
    pub task_id: String,
    /// The task's status after the update (`ready` after a requeue). For a retried report
    /// that was already applied to a task the caller no longer holds, the reported status.
    #[schema(value_type = ReportedStatus)]
    pub status: String,
    /// The renewed lease's expiry; null once the lease has ended.
    pub lease_expires_at: Option<DateTime<Utc>>,
}
