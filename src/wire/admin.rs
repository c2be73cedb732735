//! Maintainer bodies: `POST /v1/admin/repos` and `POST /v1/admin/tasks`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::new_task::TaskFields;

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct RepoRequest {
    /// 1-200 characters, e.g. owner/name.
    #[schema(min_length = 1, max_length = 200, pattern = r"[^\s\u0085]")]
    pub repo: String,
    /// Review budget: most tasks open at once (0-10,000, default 3; 0 pauses the repo).
    #[serde(default, deserialize_with = "super::lenient_int")]
    #[schema(minimum = 0, maximum = 10000)]
    pub max_open_prs: Option<i64>,
    /// At most one open task per (repo, area) when true (default).
    pub area_locks_enabled: Option<bool>,
    /// Pins PR links to the repo's forge: a status report whose `pr_url` does not start
    /// with this is refused (400 naming `pr_url`). An https URL, e.g.
    /// `https://github.com/acme/widgets/pull/`; `""` removes it; omitted keeps it as is.
    #[schema(max_length = 300, pattern = r"^(https://[\s\S]+)?$")]
    pub pr_url_prefix: Option<String>,
    /// Comment on and label the GitHub issues this repo's tasks came from as they are
    /// leased, get a PR, are merged or fail for good (needs OWP_GITHUB_TOKEN). Omitted
    /// keeps the current choice (default false).
    pub github_write_back: Option<bool>,
    /// Most open tasks (leased to `pr_opened`) one worker may have here at once, so one
    /// fast contributor cannot fill the whole review budget: 1-10,000; 0 falls back to
    /// the server's OWP_MAX_OPEN_PRS_PER_WORKER; omitted keeps the current value.
    #[serde(default, deserialize_with = "super::lenient_int")]
    #[schema(minimum = 0, maximum = 10000)]
    pub max_open_prs_per_worker: Option<i64>,
    /// Only these workers (ids) may take work here; `[]` removes the list (every worker
    /// may); omitted keeps it. Up to 1,000 ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<super::IdItem>>, max_items = 1000)]
    pub allow_workers: Option<Vec<String>>,
    /// These workers (ids) may never take work here, whatever the allow list says; `[]`
    /// clears it; omitted keeps it. Up to 1,000 ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<super::IdItem>>, max_items = 1000)]
    pub deny_workers: Option<Vec<String>>,
    /// The lowest trust tier admitted: a name or a level (0-3); omitted keeps it (default
    /// `untrusted`: every tier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<super::TierInput>)]
    pub min_trust_tier: Option<serde_json::Value>,
    /// An untrusted worker's claim here waits for a maintainer's approval
    /// (`POST /v1/tasks/{id}/approve` or `/deny`) before work starts; omitted keeps it
    /// (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_approval: Option<bool>,
    /// This repository's weight when repositories share the pool's workers (1-1000;
    /// omitted keeps it, default 1): a claim takes from the repository with the least open
    /// work per unit of weight first (PROTOCOL.md "Fair share").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1000)]
    pub fair_share: Option<i32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RepoResponse {
    pub ok: bool,
    pub repo: String,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, ToSchema)]
pub struct TaskRequest {
    #[schema(min_length = 1, max_length = 200, pattern = r"[^\s\u0085]")]
    pub repo: String,
    /// 1-300 characters.
    #[schema(min_length = 1, max_length = 300, pattern = r"[^\s\u0085]")]
    pub title: String,
    /// Up to 20,000 characters.
    #[schema(max_length = 20000)]
    pub description: Option<String>,
    /// Skills a worker needs, all of them (case-insensitive).
    #[serde(default)]
    #[schema(value_type = Option<Vec<super::SkillTag>>, max_items = 50)]
    pub required_skills: Option<Vec<String>>,
    /// 1-100, default 1.
    #[serde(default, deserialize_with = "super::lenient_int")]
    #[schema(minimum = 1, maximum = 100)]
    pub estimate_points: Option<i64>,
    /// Higher is claimed first; default 10.
    #[serde(default, deserialize_with = "super::lenient_int")]
    #[schema(minimum = -2147483648i64, maximum = 2147483647i64)]
    pub priority: Option<i64>,
    /// Up to 100 characters; with area locks on, one open task per area.
    #[schema(max_length = 100)]
    pub area: Option<String>,
    /// 0-3, default 0.
    #[serde(default, deserialize_with = "super::lenient_int")]
    #[schema(minimum = 0, maximum = 3)]
    pub tier: Option<i64>,
    /// 0-100, default 0: only workers whose reputation score is at least this may claim it.
    #[serde(default, deserialize_with = "super::lenient_int")]
    #[schema(minimum = 0, maximum = 100)]
    pub min_reputation: Option<i64>,
    /// 1-100, default 3.
    #[serde(default, deserialize_with = "super::lenient_int")]
    #[schema(minimum = 1, maximum = 100)]
    pub max_attempts: Option<i64>,
    /// The task's key in the system it came from, e.g. `github:owner/repo#42` (1-200
    /// characters). A task with this repo and key exists already: nothing is created, and
    /// its id is answered (`created: false`), so importing a source twice is harmless.
    #[schema(min_length = 1, max_length = 200, pattern = r"[^\s\u0085]")]
    pub external_id: Option<String>,
    /// Not claimable before this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub not_before: Option<String>,
    /// Task ids (up to 50, existing tasks): not claimable until each is merged or
    /// completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<super::IdItem>>, max_items = 50)]
    pub depends_on: Option<Vec<String>>,
    /// A worker id: only this worker may claim the task until `reserved_until` (both or
    /// neither).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 100, pattern = r"[^\s\u0085]")]
    pub reserved_for: Option<String>,
    /// When the reservation ends (RFC 3339); anyone may claim the task after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub reserved_until: Option<String>,
}

impl TaskRequest {
    /// The fields to check (`domain::new_task`).
    pub fn fields(&self) -> TaskFields<'_> {
        TaskFields {
            repo: &self.repo,
            title: &self.title,
            description: self.description.as_deref(),
            required_skills: self.required_skills.as_deref().unwrap_or_default(),
            estimate_points: self.estimate_points,
            priority: self.priority,
            area: self.area.as_deref(),
            tier: self.tier,
            min_reputation: self.min_reputation,
            max_attempts: self.max_attempts,
            external_id: self.external_id.as_deref(),
            not_before: self.not_before.as_deref(),
            depends_on: self.depends_on.as_deref().unwrap_or_default(),
            reserved_for: self.reserved_for.as_deref(),
            reserved_until: self.reserved_until.as_deref(),
        }
    }
}

/// One task, or an array of up to 5,000 created in one transaction.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum TasksBody {
    One(Box<TaskRequest>),
    Many(Vec<TaskRequest>),
}

/// `{ok, task_id}` for one task, `{ok, task_ids}` for an array.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum TasksCreatedBody {
    One(TaskCreated),
    Many(TasksCreated),
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TaskCreated {
    pub ok: bool,
    pub task_id: String,
    /// False when a task with this repo and `external_id` existed (answered 200, not 201).
    pub created: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TasksCreated {
    pub ok: bool,
    /// One per task sent, in order: new, or the existing task with its repo and `external_id`.
    pub task_ids: Vec<String>,
    /// How many of them this call created.
    pub created: usize,
}

/// The most tasks one bulk request may create.
pub const MAX_BULK: usize = 5_000;
