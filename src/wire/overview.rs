//! `GET /v1/admin/state` (and its stream): the pool overview; and the health answers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct RepoStateOut {
    pub repo: String,
    pub max_open_prs: i32,
    /// Open slots in use: tasks leased, in_progress, blocked or pr_opened.
    pub current_open_prs: i64,
    pub area_locks_enabled: bool,
    /// pr_opened tasks with no merge or close for OWP_PR_STALE_AFTER (default 14 days).
    pub stale_prs: i64,
}

/// The leader record: who leads the scheduler, and when it last swept.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct SchedulerOut {
    /// Replica id of the scheduler leader, if one leads.
    pub leader: Option<String>,
    pub last_sweep_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct StateResponse {
    pub workers_online: i64,
    pub workers_total: i64,
    /// Workers not revoked, by trust tier name (every tier listed).
    pub workers_by_trust_tier: std::collections::BTreeMap<String, i64>,
    pub tasks_ready: i64,
    /// v0.1 name of tasks_ready.
    pub tasks_queued: i64,
    /// Reserved for a worker by an open offer.
    pub tasks_offered: i64,
    pub tasks_leased: i64,
    pub tasks_in_progress: i64,
    pub tasks_blocked: i64,
    pub tasks_pr_opened: i64,
    pub tasks_merged: i64,
    pub tasks_completed: i64,
    pub tasks_failed: i64,
    pub tasks_cancelled: i64,
    /// pr_opened tasks that are stale (sum of the repositories' stale_prs).
    pub tasks_pr_stale: i64,
    pub repositories: Vec<RepoStateOut>,
    pub scheduler: SchedulerOut,
}

/// `GET /v1`: what answers here.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ServiceInfo {
    /// `owp-pool`
    pub name: String,
    /// This build's version.
    pub version: String,
    /// The Open Work Protocol version spoken: `1`.
    pub protocol_version: String,
    /// Earlier protocol versions whose clients are served (docs/PROTOCOL.md,
    /// "Compatibility with v0.1").
    pub compatible_with: Vec<String>,
    /// Where the OpenAPI document is.
    pub openapi: String,
    /// Where the dashboard is.
    pub dashboard: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HealthResponse {
    /// ok (live) or ready
    pub status: String,
}
