//! GitHub: webhook answers, sync results, and the write-back outbox as admins see it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `POST /webhooks/github`: what the delivery did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookAnswer {
    pub ok: bool,
    /// The `X-GitHub-Event`.
    pub event: String,
    /// What the pool did (`merged t_…`, `cancelled t_…`, `imported t_…`, `pong`), or why
    /// it did nothing (`ignored: …`, `duplicate delivery`).
    pub outcome: String,
}

/// `POST /v1/github/repos/{owner}/{repo}/sync`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SyncAnswer {
    pub repo: String,
    /// `pr_opened` tasks whose PR was looked up on GitHub (at most 100 per call, oldest
    /// first).
    pub prs_checked: usize,
    /// Tasks found merged on GitHub, now `merged`.
    pub merged: Vec<String>,
    /// Tasks whose PR was closed unmerged, now `closed` (a failed attempt).
    pub closed: Vec<String>,
    /// `pr_opened` tasks left to check by another call.
    pub prs_remaining: usize,
    /// Open issues with the import label made into tasks now.
    pub imported: Vec<String>,
    /// Open labelled issues that were tasks already.
    pub already_imported: usize,
    /// What could not be read from GitHub (a PR, the issue list), per item.
    pub errors: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OutboxQuery {
    /// `pending` (default: not delivered yet), `failed` (given up) or `delivered`.
    #[param(pattern = "^(pending|failed|delivered)$")]
    pub state: Option<String>,
    /// 1-500, default 100.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

/// One written-back task event and how its delivery stands.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OutboxEntry {
    pub id: i64,
    pub task_id: String,
    /// `owner/repo#number`
    pub issue: String,
    /// leased, pr_opened, merged or failed
    pub event: String,
    pub attempts: i32,
    /// GitHub calls of this event already accepted (a comment, then labels).
    pub steps_done: i32,
    pub created_at: DateTime<Utc>,
    /// While pending: not before this.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub gave_up_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OutboxList {
    pub entries: Vec<OutboxEntry>,
}
