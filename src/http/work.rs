//! Polling for work: claim up to free capacity, answer with every live lease.

use std::time::Instant;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiQuery, AuthWorker};
use crate::app::AppState;
use crate::domain::input;
use crate::error::ApiError;
use crate::store::claim::{self, ClaimRequest, LeaseView};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WorkParams {
    /// Cap on new claims in this call (0-100).
    #[param(minimum = 0, maximum = 100)]
    pub max: Option<i64>,
    /// Long poll: seconds to hold the request until work appears (0-60). This server
    /// answers at once; clients poll again after `poll_interval_seconds`.
    #[param(minimum = 0, maximum = 60)]
    pub wait: Option<i64>,
}

#[derive(Serialize, ToSchema)]
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
    pub status: String,
    /// Failed attempts so far.
    pub attempt: i32,
    pub lease_expires_at: DateTime<Utc>,
}

impl From<LeaseView> for Lease {
    fn from(l: LeaseView) -> Self {
        Self {
            task_id: l.task_id,
            lease_id: l.lease_id,
            repo: l.repo,
            title: l.title,
            description: l.description,
            estimate_points: l.estimate_points,
            priority: l.priority,
            area: l.area,
            tier: l.tier,
            required_skills: l.required_skills,
            status: l.status,
            attempt: l.attempt,
            lease_expires_at: l.lease_expires_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct WorkResponse {
    pub worker_id: String,
    /// All of the caller's live leases, old and new.
    pub leases: Vec<Lease>,
}

/// Claim new leases up to free capacity; returns all of the caller's live leases.
#[utoipa::path(get, path = "/v1/work", tag = "work", params(WorkParams), security(("worker" = [])),
    responses((status = 200, body = WorkResponse), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub async fn claim_work(
    State(app): State<AppState>,
    worker: AuthWorker,
    ApiQuery(params): ApiQuery<WorkParams>,
) -> Result<Json<WorkResponse>, ApiError> {
    let max_new = input::int_in("max", params.max, 100, 0, 100)?;
    input::int_in("wait", params.wait, 0, 0, 60)?;
    let started = Instant::now();
    let claimed = claim::claim_leases(
        &app.pool,
        &ClaimRequest {
            worker_id: worker.id.as_str(),
            max_new: Some(u32::try_from(max_new).expect("range checked: 0..=100")),
            lease_ttl_secs: app.settings.lease_ttl.as_secs_f64(),
        },
    )
    .await?;
    crate::metrics::claim_duration(started.elapsed());
    Ok(Json(WorkResponse {
        worker_id: worker.id.0,
        leases: claimed.leases.into_iter().map(Lease::from).collect(),
    }))
}

/// The same call as `GET /v1/work`.
#[utoipa::path(post, path = "/v1/work", tag = "work", params(WorkParams), security(("worker" = [])),
    responses((status = 200, body = WorkResponse), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub async fn claim_work_post(
    state: State<AppState>,
    worker: AuthWorker,
    params: ApiQuery<WorkParams>,
) -> Result<Json<WorkResponse>, ApiError> {
    claim_work(state, worker, params).await
}
