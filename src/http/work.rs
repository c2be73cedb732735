//! Polling for work: claim up to free capacity, answer with every live lease.

use std::time::Instant;

use axum::extract::State;
use axum::Json;

use super::extract::{ApiQuery, AuthWorker};
use crate::app::AppContext;
use crate::domain::input;
use crate::error::ApiError;
use crate::store::claim::{self, ClaimRequest, Grant};
use crate::wire::work::{WorkParams, WorkResponse};
use crate::wire::ErrorBody;

/// Claim new leases up to free capacity; returns all of the caller's live leases.
#[utoipa::path(get, path = "/v1/work", tag = "work", params(WorkParams), security(("worker" = [])),
    responses((status = 200, body = WorkResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn claim_work(
    State(app): State<AppContext>,
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
            max_new: u32::try_from(max_new).expect("range checked: 0..=100"),
            grant: Grant::Lease {
                ttl: app.settings.lease_ttl,
            },
        },
    )
    .await?;
    crate::metrics::claim_duration(started.elapsed());
    Ok(Json(WorkResponse {
        worker_id: worker.id.0,
        leases: claimed.leases,
    }))
}

/// The same call as `GET /v1/work`.
#[utoipa::path(post, path = "/v1/work", tag = "work", params(WorkParams), security(("worker" = [])),
    responses((status = 200, body = WorkResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn claim_work_post(
    state: State<AppContext>,
    worker: AuthWorker,
    params: ApiQuery<WorkParams>,
) -> Result<Json<WorkResponse>, ApiError> {
    claim_work(state, worker, params).await
}
