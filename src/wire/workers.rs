//! `POST /v1/workers/register` and `POST /v1/workers/heartbeat`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::status::WorkerStatus;

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// 1-120 characters, not blank.
    #[schema(min_length = 1, max_length = 120, pattern = r"[^\s\u0085]")]
    pub name: String,
    /// GitHub login: letters, digits, single inner hyphens; up to 39 characters.
    #[schema(max_length = 39, pattern = r"^$|^[A-Za-z0-9](-?[A-Za-z0-9])*$")]
    pub github_handle: Option<String>,
    /// 0-50 tags of 1-50 characters; trimmed, lower-cased, de-duplicated.
    #[serde(default)]
    #[schema(value_type = Option<Vec<super::SkillTag>>, max_items = 50)]
    pub skills: Option<Vec<String>>,
    /// 1-1000, default 5.
    #[serde(default, deserialize_with = "super::lenient_int")]
    #[schema(minimum = 1, maximum = 1000)]
    pub capacity_points: Option<i64>,
    /// 1-100, default 2.
    #[serde(default, deserialize_with = "super::lenient_int")]
    #[schema(minimum = 1, maximum = 100)]
    pub max_concurrent_tasks: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RegisterResponse {
    pub worker_id: String,
    /// Shown once; the server keeps only its SHA-256 digest.
    pub token: String,
    pub heartbeat_interval_seconds: u64,
    pub poll_interval_seconds: u64,
    pub lease_ttl_seconds: u64,
    pub heartbeat_timeout_seconds: u64,
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatRequest {
    /// Default idle. A paused worker keeps its leases but gets no new work. Read as text
    /// so that an unknown value is a validation error naming the field.
    #[schema(value_type = Option<WorkerStatus>)]
    pub status: Option<String>,
    /// Up to 500 characters.
    #[schema(max_length = 500)]
    pub note: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatResponse {
    pub ok: bool,
    pub server_time: DateTime<Utc>,
    pub worker_id: String,
    pub active_leases: i64,
}

/// `PATCH /v1/workers/me`: the worker's own settings; each field omitted stays as it is.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct WorkerPatch {
    /// 0-50 tags of 1-50 characters; trimmed, lower-cased, de-duplicated. Replaces them.
    #[serde(default)]
    #[schema(value_type = Option<Vec<super::SkillTag>>, max_items = 50)]
    pub skills: Option<Vec<String>>,
    /// 1-1000.
    #[serde(default, deserialize_with = "super::lenient_int")]
    #[schema(minimum = 1, maximum = 1000)]
    pub capacity_points: Option<i64>,
    /// 1-100 (the worker's trust tier may cap what counts: OWP_TIER_MAX_CONCURRENT).
    #[serde(default, deserialize_with = "super::lenient_int")]
    #[schema(minimum = 1, maximum = 100)]
    pub max_concurrent_tasks: Option<i64>,
    /// The repositories (owner/name) to take work from, up to 100; `[]` takes work from
    /// every repository again.
    #[serde(default)]
    #[schema(value_type = Option<Vec<super::RepoItem>>, max_items = 100)]
    pub repos: Option<Vec<String>>,
}

/// The worker's own settings after `PATCH /v1/workers/me`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WorkerSettings {
    pub worker_id: String,
    pub skills: Vec<String>,
    pub capacity_points: i32,
    pub max_concurrent_tasks: i32,
    /// null: every repository.
    pub repos: Option<Vec<String>>,
}
