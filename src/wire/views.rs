//! What an operator reads: tasks, workers, repos and audit events, one page at a time.
//! Lists are keyset-paginated: pass the answer's `next_cursor` as `cursor` for the next
//! page; it is null on the last one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::status::{TaskStatus, WorkerStatus};
use crate::domain::trust::TrustTier;

#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskListQuery {
    /// Comma-separated statuses, e.g. `ready,leased`.
    pub status: Option<String>,
    #[param(max_length = 200)]
    pub repo: Option<String>,
    /// The holder (live tasks), the PR opener, or the last holder.
    #[param(max_length = 100)]
    pub worker_id: Option<String>,
    #[param(max_length = 100)]
    pub area: Option<String>,
    /// Tasks that ask for this skill (compared lower-cased, as skills are stored).
    #[param(max_length = 50)]
    pub skill: Option<String>,
    /// 1-200, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// The previous page's `next_cursor`, as returned (opaque).
    #[param(max_length = 200, pattern = "^[A-Za-z0-9_-]*$")]
    pub cursor: Option<String>,
}

/// A task as an operator sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct TaskView {
    pub task_id: String,
    pub repo: String,
    pub title: String,
    pub status: TaskStatus,
    pub priority: i32,
    pub area: Option<String>,
    pub tier: i16,
    /// Claimable only by workers whose reputation score is at least this (0-100).
    pub min_reputation: i16,
    pub required_skills: Vec<String>,
    pub estimate_points: i32,
    /// Failed attempts so far.
    pub attempt: i32,
    pub max_attempts: i32,
    /// The holder (live), the PR opener (pr_opened), or the last holder (terminal).
    pub worker_id: Option<String>,
    pub lease_id: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub pr_url: Option<String>,
    /// While backing off after a lost attempt: claimable from then.
    pub retry_at: Option<DateTime<Utc>>,
    /// The task's key in the system it came from (e.g. `github:owner/repo#42`), if any.
    pub external_id: Option<String>,
    /// Not claimable before this time.
    pub not_before: Option<DateTime<Utc>>,
    /// Not claimable until each of these tasks is merged or completed.
    pub depends_on: Vec<String>,
    /// Claimable only by this worker until `reserved_until`.
    pub reserved_for: Option<String>,
    pub reserved_until: Option<DateTime<Utc>>,
    /// Its live lease waits for a maintainer's approval (the repo's `claim_approval`).
    pub awaiting_approval: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TaskList {
    pub tasks: Vec<TaskView>,
    pub next_cursor: Option<String>,
}

/// One lease of a task, live or ended.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct LeaseView {
    pub lease_id: String,
    pub worker_id: String,
    /// Failed attempts before this lease.
    pub attempt: i32,
    pub granted_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// How it ended: the status its holder reported, `lease_expired`, `worker_offline`,
    /// `requeued`, `cancelled` or `worker_revoked`; null while live.
    pub end_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ArtifactView {
    pub worker_id: Option<String>,
    pub lease_id: Option<String>,
    pub pr_url: Option<String>,
    pub commit_sha: Option<String>,
    pub patch_url: Option<String>,
    pub extra: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

/// `GET /v1/tasks/{task_id}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TaskDetail {
    #[serde(flatten)]
    pub task: TaskView,
    pub description: String,
    pub current_lease: Option<LeaseView>,
    /// The newest leases (`limit`, default 100), oldest first; a worker sees only its own.
    pub leases: Vec<LeaseView>,
    /// How many leases there are in all (of the worker's own, for a worker).
    pub leases_total: i64,
    /// The newest artifacts (`limit`), oldest first; a worker sees only its own.
    pub artifacts: Vec<ArtifactView>,
    pub artifacts_total: i64,
    /// The task's audit trail, oldest first (the newest 500).
    pub events: Vec<AuditEvent>,
    /// How often workers rejected offers of this task, by reason (see `RejectReason`).
    pub offer_rejections: std::collections::BTreeMap<String, i64>,
}

#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskDetailQuery {
    /// Most leases and most artifacts in the answer, the newest: 1-500, default 100.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WorkerListQuery {
    pub online: Option<bool>,
    /// The worker's own status: idle, working or paused.
    pub status: Option<WorkerStatus>,
    /// 1-200, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// The previous page's `next_cursor`, as returned (opaque).
    #[param(max_length = 200, pattern = "^[A-Za-z0-9_-]*$")]
    pub cursor: Option<String>,
}

/// A worker as an operator sees it; never its token or the token's digest.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct WorkerView {
    pub worker_id: String,
    pub name: String,
    pub github_handle: Option<String>,
    pub skills: Vec<String>,
    pub capacity_points: i32,
    pub max_concurrent_tasks: i32,
    /// Estimate points of its live leases and open offers (its capacity in use).
    pub used_points: i64,
    pub live_leases: i64,
    /// Its own status, from its heartbeats.
    pub status: WorkerStatus,
    pub note: Option<String>,
    pub online: bool,
    pub last_heartbeat: DateTime<Utc>,
    /// untrusted, basic, trusted or core: it may hold tasks whose `tier` is at most this.
    pub trust_tier: TrustTier,
    /// Paused by an admin: keeps its leases, gets no new work.
    pub paused: bool,
    pub revoked: bool,
    pub created_at: DateTime<Utc>,
    /// Its reputation score, 0-100 (50 with no history; PROTOCOL.md "Reputation").
    pub reputation_score: i16,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WorkerList {
    pub workers: Vec<WorkerView>,
    pub next_cursor: Option<String>,
}

/// `GET /v1/workers/{id}`: the worker with its live leases.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WorkerDetail {
    #[serde(flatten)]
    pub worker: WorkerView,
    pub leases: Vec<TaskView>,
}

/// `GET /v1/admin/repos`: one repo's settings and what it holds.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct RepoView {
    pub repo: String,
    pub max_open_prs: i32,
    pub area_locks_enabled: bool,
    pub pr_url_prefix: Option<String>,
    /// Progress is written back to the GitHub issues the repo's tasks came from.
    pub github_write_back: bool,
    /// The repository's own cap on one worker's open tasks (null: the server's
    /// OWP_MAX_OPEN_PRS_PER_WORKER applies).
    pub max_open_prs_per_worker: Option<i32>,
    /// Only these workers may take work here (null: every worker).
    pub allow_workers: Option<Vec<String>>,
    /// These workers may never take work here.
    pub deny_workers: Vec<String>,
    /// The lowest trust tier admitted.
    pub min_trust_tier: TrustTier,
    /// An untrusted worker's claim waits for a maintainer's approval.
    pub claim_approval: bool,
    /// Claims waiting for that approval now.
    pub awaiting_approval: i64,
    /// Its weight when repositories share the pool's workers.
    pub fair_share: i32,
    /// Open slots in use: leased, in_progress, blocked or pr_opened tasks.
    pub open_slots: i64,
    pub ready: i64,
    /// Areas held by an open task (with area locks on).
    pub held_areas: Vec<String>,
    pub stale_prs: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RepoList {
    pub repositories: Vec<RepoView>,
}

#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// An event kind; v0.1's `task_assigned` (`lease_granted`), `task_completed`
    /// (`task_status_changed` to `completed`) and `trust_tier_changed`
    /// (`worker_trust_tier_changed`) select the same events.
    #[param(max_length = 100)]
    pub event_type: Option<String>,
    /// `admin:<name>`, `admin`, `worker:<id>`, `system`.
    #[param(max_length = 200)]
    pub actor: Option<String>,
    /// A task id, worker id or repo.
    #[param(max_length = 200)]
    pub target: Option<String>,
    /// Events about this repository: its tasks' and its settings'.
    #[param(max_length = 200)]
    pub repo: Option<String>,
    /// Only events at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// 1-200, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// Skip this many (for clients that page by offset; `cursor` is cheaper).
    #[param(minimum = 0, maximum = 100000)]
    pub offset: Option<i64>,
    /// The previous page's `next_cursor`, as returned (opaque).
    #[param(max_length = 200, pattern = "^[A-Za-z0-9_-]*$")]
    pub cursor: Option<String>,
}

/// `GET /v1/audit/export`: the list's filters, and the file's format.
#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditExportQuery {
    /// As for the list (v0.1 names included).
    #[param(max_length = 100)]
    pub event_type: Option<String>,
    #[param(max_length = 200)]
    pub actor: Option<String>,
    #[param(max_length = 200)]
    pub target: Option<String>,
    #[param(max_length = 200)]
    pub repo: Option<String>,
    pub since: Option<DateTime<Utc>>,
    /// `ndjson` (one event per line, as the list shows it; the default) or `csv` (id,
    /// timestamp, event_type, actor, target, details as JSON).
    #[param(pattern = "^(csv|ndjson)$")]
    pub format: Option<String>,
}

/// One audit event, in the product plan's shape.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct AuditEvent {
    pub id: i64,
    pub timestamp: DateTime<Utc>,
    pub event_type: String,
    /// `admin:<name>`, `admin`, `worker:<id>` or `system`.
    pub actor: Option<String>,
    /// The task, else the worker, else the repo.
    pub target: Option<String>,
    /// Everything else recorded: statuses, lease, reason, data.
    pub details: serde_json::Value,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditList {
    /// Newest first.
    pub events: Vec<AuditEvent>,
    /// Events matching the filters (all pages), counted up to 10,000: beyond that, 10,000
    /// with `total_exact` false.
    pub total: i64,
    pub total_exact: bool,
    pub next_cursor: Option<String>,
}
