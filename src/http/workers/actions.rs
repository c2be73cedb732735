//! Operator actions on workers: pause, resume, revoke, rotate the token, set the trust
//! tier. Each is audited with the admin as actor.

use axum::extract::{Path, State};
use axum::Json;

use crate::app::AppContext;
use crate::auth;
use crate::domain::ids::WorkerId;
use crate::domain::input;
use crate::error::ApiError;
use crate::http::extract::{ApiJson, AuthAdmin};
use crate::store::admin_actions;
use crate::store::admin_actions::WorkerAction;
use crate::wire::actions::{
    TokenResponse, TrustTierRequest, TrustTierResponse, WorkerActionResponse,
};
use crate::wire::ErrorBody;

/// Maps a worker action's outcome to the API's answers.
fn worker_done(a: WorkerAction) -> Result<(), ApiError> {
    match a {
        WorkerAction::Done => Ok(()),
        WorkerAction::NotFound => Err(ApiError::NotFound("worker")),
        WorkerAction::Revoked => Err(ApiError::Conflict("worker_revoked")),
    }
}

fn worker_ok(worker_id: String) -> Json<WorkerActionResponse> {
    Json(WorkerActionResponse {
        ok: true,
        worker_id,
    })
}

fn checked_id(id: &str) -> Result<(), ApiError> {
    if id.contains('\0') {
        return Err(ApiError::NotFound("worker"));
    }
    Ok(())
}

/// Pauses a worker: it keeps its leases and gets no new work; its own heartbeats cannot
/// lift the pause.
#[utoipa::path(post, path = "/v1/workers/{worker_id}/pause", tag = "admin", security(("admin" = [])),
    params(("worker_id" = String, Path, description = "The worker's id")),
    responses((status = 200, body = WorkerActionResponse), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "details: worker_revoked", body = ErrorBody)))]
pub async fn pause_worker(
    State(app): State<AppContext>,
    admin: AuthAdmin,
    Path(worker_id): Path<WorkerId>,
) -> Result<Json<WorkerActionResponse>, ApiError> {
    checked_id(&worker_id)?;
    let a = admin_actions::set_paused(&app.pool, &worker_id, true, &admin.actor).await?;
    worker_done(a)?;
    Ok(worker_ok(worker_id.into()))
}

/// Lifts an admin's pause.
#[utoipa::path(post, path = "/v1/workers/{worker_id}/resume", tag = "admin", security(("admin" = [])),
    params(("worker_id" = String, Path, description = "The worker's id")),
    responses((status = 200, body = WorkerActionResponse), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "details: worker_revoked", body = ErrorBody)))]
pub async fn resume_worker(
    State(app): State<AppContext>,
    admin: AuthAdmin,
    Path(worker_id): Path<WorkerId>,
) -> Result<Json<WorkerActionResponse>, ApiError> {
    checked_id(&worker_id)?;
    let a = admin_actions::set_paused(&app.pool, &worker_id, false, &admin.actor).await?;
    worker_done(a)?;
    app.long_poll.work_ready(1);
    Ok(worker_ok(worker_id.into()))
}

/// Revokes a worker for good: its token stops working at once on every replica, its live
/// leases are requeued (not counted as failed attempts); its opened PRs keep their slots.
#[utoipa::path(post, path = "/v1/workers/{worker_id}/revoke", tag = "admin", security(("admin" = [])),
    params(("worker_id" = String, Path, description = "The worker's id")),
    responses((status = 200, body = WorkerActionResponse), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "details: worker_revoked", body = ErrorBody)))]
pub async fn revoke_worker(
    State(app): State<AppContext>,
    admin: AuthAdmin,
    Path(worker_id): Path<WorkerId>,
) -> Result<Json<WorkerActionResponse>, ApiError> {
    checked_id(&worker_id)?;
    let a = admin_actions::revoke(&app.pool, &worker_id, &admin.actor).await?;
    worker_done(a)?;
    Ok(worker_ok(worker_id.into()))
}

/// Rotates a worker's token: the new one is shown once, the old one stops working.
#[utoipa::path(post, path = "/v1/workers/{worker_id}/token", tag = "admin", security(("admin" = [])),
    params(("worker_id" = String, Path, description = "The worker's id")),
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "details: worker_revoked", body = ErrorBody)))]
pub async fn rotate_token(
    State(app): State<AppContext>,
    admin: AuthAdmin,
    Path(worker_id): Path<WorkerId>,
) -> Result<Json<TokenResponse>, ApiError> {
    checked_id(&worker_id)?;
    let token = auth::generate_token();
    let a = admin_actions::rotate_token(&app.pool, &worker_id, &auth::digest(&token), &admin.actor)
        .await?;
    worker_done(a)?;
    Ok(Json(TokenResponse {
        worker_id: worker_id.into(),
        token,
    }))
}

/// Sets a worker's trust tier: it may then hold tasks whose `tier` is at most the tier's
/// level. Audited with the reason.
#[utoipa::path(post, path = "/v1/workers/{worker_id}/trust-tier", tag = "admin", security(("admin" = [])),
    params(("worker_id" = String, Path, description = "The worker's id")), request_body = TrustTierRequest,
    responses((status = 200, body = TrustTierResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn set_trust_tier(
    State(app): State<AppContext>,
    admin: AuthAdmin,
    Path(worker_id): Path<WorkerId>,
    ApiJson(req): ApiJson<TrustTierRequest>,
) -> Result<Json<TrustTierResponse>, ApiError> {
    checked_id(&worker_id)?;
    let tier = input::trust_tier("tier", &req.tier)?;
    let reason = input::text("reason", &req.reason, 1, 500)?;
    let a =
        admin_actions::set_trust_tier(&app.pool, &worker_id, tier.level(), &reason, &admin.actor)
            .await?;
    worker_done(a)?;
    app.long_poll.work_ready(1);
    Ok(Json(TrustTierResponse {
        worker_id: worker_id.into(),
        trust_tier: tier,
        trust_level: tier.level(),
    }))
}
