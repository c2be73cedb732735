//! Polling for work: claim up to free capacity, answer with every live lease; long polls
//! wait for a wake-up (`wakeups`) between claims.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::Json;

use super::extract::{ApiQuery, AuthWorker};
use crate::app::AppContext;
use crate::domain::input;
use crate::error::ApiError;
use crate::store::claim::{self, ClaimRequest, Grant};
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
        worker_id: worker.id.as_str(),
        max_new: u32::try_from(max_new).expect("range checked: 0..=100"),
        grant: Grant::Lease {
            ttl: app.settings.lease_ttl,
        },
        caps: &app.claim_caps,
    };
    let deadline = Instant::now() + Duration::from_secs(u64::from(wait.unsigned_abs()));
    let long = wait > 0 && max_new > 0;
    let me = worker.id.as_str();
    // queued before any claim, so a wake that comes while it runs is not missed
    let mut waiter = long.then(|| app.wakeups.wait());
    // nothing could have become claimable since this worker's last empty claim here (an
    // idle fleet re-polling after each `wait`): skip the claim transaction
    let mut unclaimed = None;
    if long && app.nothing_new_for(me) {
        unclaimed = claim::poll_without_claim(&app.pool, me).await?;
    }
    // once woken: how many more times a wake that finds nothing may be passed on
    let mut relays_left: Option<u8> = None;
    let leases = loop {
        let leases = match unclaimed.take() {
            Some(leases) => leases,
            None => {
                let epoch = app.work_epoch();
                let claimed = claim(&app, &req).await?;
                if !long {
                    break claimed.leases;
                }
                if claimed.new > 0 || !claimed.can_take_more {
                    app.claimed_something(me);
                    if claimed.new > 0 && relays_left.is_some() {
                        // more may be there: the next waiting poll looks too
                        app.wake_waiters(1, "relay");
                    }
                    break claimed.leases;
                }
                app.claimed_nothing(me, epoch);
                if let Some(r) = relays_left.filter(|r| *r > 0) {
                    // the work may be for someone else: pass the wake on, a few times at most
                    let woken = app.wakeups.wake(1, r - 1);
                    app.count_wakes("relay", woken);
                }
                claimed.leases
            }
        };
        let Some(w) = waiter.as_mut() else {
            break leases;
        };
        let wake = tokio::select! {
            wake = w.woken() => wake,
            () = tokio::time::sleep_until(deadline.into()) => None,
            () = app.stopped() => None,
        };
        let Some(wake) = wake else {
            break leases;
        };
        waiter = Some(app.wakeups.wait());
        relays_left = Some(wake.relays_left);
    };
    Ok(Json(WorkResponse {
        worker_id: worker.id.0,
        leases,
    }))
}

async fn claim(app: &AppContext, req: &ClaimRequest<'_>) -> Result<claim::Claimed, ApiError> {
    let started = Instant::now();
    let claimed = claim::claim_leases(&app.pool, req).await?;
    crate::metrics::claim_duration(started.elapsed());
    Ok(claimed)
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
