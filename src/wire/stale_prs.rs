//! Stale PRs: `pr_opened` tasks with no merge or close for `OWP_PR_STALE_AFTER`, which
//! hold their repo's review slot (and area) until someone ends them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StalePrsQuery {
    /// Only this repo's.
    #[param(max_length = 200)]
    pub repo: Option<String>,
    /// 1-500, default 100; the oldest first.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct StalePr {
    pub task_id: String,
    pub repo: String,
    pub pr_url: Option<String>,
    /// The worker that opened the PR.
    pub worker_id: Option<String>,
    pub pr_opened_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StalePrsResponse {
    /// OWP_PR_STALE_AFTER, in seconds.
    pub stale_after_seconds: u64,
    pub tasks: Vec<StalePr>,
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct CloseStaleRequest {
    /// Tasks to close (1-500). Omitted: the (up to 500) oldest stale PRs, optionally of `repo`.
    #[schema(min_items = 1, max_items = 500)]
    pub task_ids: Option<Vec<String>>,
    pub repo: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Skipped {
    pub task_id: String,
    /// `not_stale` (not pr_opened, or not for long enough) or `not_found`.
    pub reason: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CloseStaleResponse {
    /// Closed as `closed` (a failed attempt: requeued, or failed at max_attempts).
    pub closed: Vec<String>,
    pub skipped: Vec<Skipped>,
}
