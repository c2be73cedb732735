//! `GET|POST /v1/work`: the poll and the leases it answers with.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::status::TaskStatus;

#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WorkParams {
    /// Cap on new claims in this call (0-100).
    #[param(minimum = 0, maximum = 100)]
    pub max: Option<i64>,
    /// Long poll: when nothing can be claimed at once, hold the request up to this many
    /// seconds (0-60) until work appears; answers at once when something was claimed or
    /// the worker has no free capacity.
    #[param(minimum = 0, maximum = 60)]
    pub wait: Option<i64>,
}

/// A live lease as its holder sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Lease {
    pub task_id: String,
    pub lease_id: String,
    pub repo: String,
    pub title: String,
    pub description: String,
    pub estimate_points: i32,
    pub priority: i32,
    pub area: Option<String>,
    pub tier: i16,
    pub required_skills: Vec<String>,
    /// leased | in_progress | blocked
    pub status: TaskStatus,
    /// Failed attempts so far.
    pub attempt: i32,
    pub lease_expires_at: DateTime<Utc>,
    /// The repository asks a maintainer to approve an untrusted worker's claim
    /// (`claim_approval`): until approved, the only report accepted is `released`, and the
    /// poll shows this `false` once it is.
    #[serde(default)]
    pub awaiting_approval: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WorkResponse {
    pub worker_id: String,
    /// All of the caller's live leases, old and new.
    pub leases: Vec<Lease>,
}
