//! Operator actions on tasks and workers.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::status::TaskStatus;

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct RequeueRequest {
    /// Set `attempt` back to 0 (default: kept, below max_attempts).
    pub reset_attempts: Option<bool>,
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct BulkRequest {
    /// 1-500 task ids; each is acted on in its own transaction.
    #[schema(min_items = 1, max_items = 500)]
    pub task_ids: Vec<String>,
    /// For requeue: set `attempt` back to 0.
    pub reset_attempts: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TaskActionResponse {
    pub ok: bool,
    pub task_id: String,
    pub status: TaskStatus,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BulkSkipped {
    pub task_id: String,
    /// `not_found`, or `invalid_transition: <from> -> <to>`.
    pub reason: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BulkResponse {
    /// Tasks acted on (including those already in the wanted status).
    pub done: Vec<String>,
    pub skipped: Vec<BulkSkipped>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WorkerActionResponse {
    pub ok: bool,
    pub worker_id: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    pub worker_id: String,
    /// Shown once; the old token stopped working.
    pub token: String,
}

/// `PATCH /v1/tasks/{task_id}`: the fields to change; absent ones stay.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct TaskPatch {
    #[schema(min_length = 1, max_length = 300, pattern = r"[^\s\u0085]")]
    pub title: Option<String>,
    #[schema(max_length = 20000)]
    pub description: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<super::SkillTag>>, max_items = 50)]
    pub required_skills: Option<Vec<String>>,
    #[serde(default, deserialize_with = "super::lenient_int")]
    #[schema(minimum = 1, maximum = 100)]
    pub estimate_points: Option<i64>,
    #[serde(default, deserialize_with = "super::lenient_int")]
    #[schema(minimum = -2147483648i64, maximum = 2147483647i64)]
    pub priority: Option<i64>,
    /// Up to 100 characters; `""` removes the area.
    #[schema(max_length = 100)]
    pub area: Option<String>,
    #[serde(default, deserialize_with = "super::lenient_int")]
    #[schema(minimum = 0, maximum = 3)]
    pub tier: Option<i64>,
    /// 0-100; may change at any time (it gates claims from now on).
    #[serde(default, deserialize_with = "super::lenient_int")]
    #[schema(minimum = 0, maximum = 100)]
    pub min_reputation: Option<i64>,
    /// 1-100, and not below the attempts already made.
    #[serde(default, deserialize_with = "super::lenient_int")]
    #[schema(minimum = 1, maximum = 100)]
    pub max_attempts: Option<i64>,
    /// RFC 3339: not claimable before then; `""` removes it.
    #[schema(value_type = Option<super::TimeOrEmpty>)]
    pub not_before: Option<String>,
    /// The task ids (up to 50) this task waits on, replacing the list; `[]` removes them.
    /// Each must exist, and none may lead back to this task (400).
    #[serde(default)]
    #[schema(value_type = Option<Vec<super::IdItem>>, max_items = 50)]
    pub depends_on: Option<Vec<String>>,
    /// Holds the task for this worker until `reserved_until` (sent together); `""` ends the
    /// reservation.
    #[schema(max_length = 100)]
    pub reserved_for: Option<String>,
    /// RFC 3339, with `reserved_for` (ignored when `reserved_for` is `""`).
    #[schema(value_type = Option<super::TimeOrEmpty>)]
    pub reserved_until: Option<String>,
}

/// `POST /v1/workers/{worker_id}/trust-tier`.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct TrustTierRequest {
    /// A name (`untrusted`, `basic`, `trusted`, `core`) or a level (0-3).
    #[schema(value_type = super::TierInput)]
    pub tier: serde_json::Value,
    /// Why (1-500 characters), kept in the audit log.
    #[schema(min_length = 1, max_length = 500, pattern = r"[^\s\u0085]")]
    pub reason: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TrustTierResponse {
    pub worker_id: String,
    pub trust_tier: crate::domain::trust::TrustTier,
    /// The tier's level: the worker may hold tasks whose `tier` is at most this.
    pub trust_level: i16,
}
