//! Polling for work: claim up to free capacity, answer with every live lease; long polls
//! wait for a wake-up between claims (`long_poll` owns the waiting).

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::Json;

use super::extract::{ApiQuery, AuthWorker};
use crate::app::AppContext;
use crate::domain::input;
use crate::error::ApiError;
use crate::long_poll::{wait_until, Attempt, Poll};
use crate::store::claim::{self, ClaimRequest, Grant};
use crate::wire::work::Lease;
use crate::wire::work::{WorkParams, WorkResponse};
use crate::wire::ErrorBody;

/// Claim new leases up to free capacity; returns all of the caller's live leases. With
/// `wait`, a poll that finds nothing to claim waits (holding no connection) until work may
/// be there or `wait` seconds pass.
#[utoipa::path(get, path = "/v1/work", tag = "work", params(WorkParams), security(("worker" = [])),
    responses((status = 200, body = WorkResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn claim_work(
    State(app): State<AppContext>,
    worker: AuthWorker,
    ApiQuery(params): ApiQuery<WorkParams>,
) -> Result<Json<WorkResponse>, ApiError> {
    let max_new = input::int_in("max", params.max, 100, 0, 100)?;
    let wait = input::int_in("wait", params.wait, 0, 0, 60)?;
    let req = ClaimRequest {
        worker_id: &worker.id,
        max_new: u32::try_from(max_new).expect("range checked: 0..=100"),
        grant: Grant::Lease {
            ttl: app.settings.lease_ttl,
        },
        caps: &app.claim_caps,
    };
    let long = wait > 0 && max_new > 0;
    let poll = Poll {
        worker_id: worker.id.as_str(),
        wait_until: long.then(|| wait_until(Duration::from_secs(u64::from(wait.unsigned_abs())))),
    };
    let leases = app
        .long_poll
        .poll(
            poll,
            app.stopped(),
            || async { Ok(claim::poll_without_claim(&app.pool, &worker.id).await?) },
            || claim(&app, &req),
        )
        .await?;
    Ok(Json(WorkResponse {
        worker_id: worker.id.0,
        leases,
    }))
}

async fn claim(app: &AppContext, req: &ClaimRequest<'_>) -> Result<Attempt<Vec<Lease>>, ApiError> {
    let started = Instant::now();
    let claimed = claim::claim_leases(&app.pool, req).await?;
    crate::metrics::claim_duration(started.elapsed());
    Ok(Attempt {
        answer: claimed.leases,
        new: claimed.new,
        can_take_more: claimed.can_take_more,
        rank: Some(claimed.score),
    })
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
