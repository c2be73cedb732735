//! Offers, an alternative to claiming: ask for offers, then accept or reject each.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::extract::{ApiJson, ApiQuery, AuthWorker};
use crate::app::AppContext;
use crate::domain::ids::OfferId;
use crate::domain::input::{self, Invalid};
use crate::domain::status::RejectReason;
use crate::error::ApiError;
use crate::store::claim::{self, ClaimRequest, Grant};
use crate::store::offers::{self, Answered};
use crate::wire::offers::{
    AcceptResponse, OfferParams, OffersResponse, RejectRequest, RejectResponse,
};
use crate::wire::ErrorBody;

/// Offers up to the caller's free capacity, by the same eligibility rules as a claim; each
/// reserves its task for the caller until it is accepted, rejected or expires.
#[utoipa::path(post, path = "/v1/work/offers", tag = "work", params(OfferParams), security(("worker" = [])),
    responses((status = 200, body = OffersResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody)))]
pub async fn make_offers(
    State(app): State<AppContext>,
    worker: AuthWorker,
    ApiQuery(params): ApiQuery<OfferParams>,
) -> Result<Json<OffersResponse>, ApiError> {
    let max_new = input::int_in("max", params.max, 100, 0, 100)?;
    let ids = claim::make_offers(
        &app.pool,
        &ClaimRequest {
            worker_id: &worker.id,
            max_new: u32::try_from(max_new).expect("range checked: 0..=100"),
            grant: Grant::Offer {
                ttl: app.settings.offer_ttl,
            },
            caps: &app.claim_caps,
        },
    )
    .await?;
    crate::metrics::offers_made(ids.len());
    let offers = offers::offers_by_id(&app.pool, &ids).await?;
    Ok(Json(OffersResponse { offers }))
}

/// The answer to an offer that cannot be answered, as the protocol's error.
fn refused(a: Answered) -> ApiError {
    match a {
        Answered::NotFound => ApiError::NotFound("offer"),
        Answered::Foreign => ApiError::Forbidden("this offer was made to another worker"),
        Answered::Expired => ApiError::Conflict("offer_expired"),
        Answered::AlreadyAnswered("accepted") => ApiError::Conflict("offer_accepted"),
        Answered::AlreadyAnswered(_) => ApiError::Conflict("offer_rejected"),
        Answered::Paused => {
            ApiError::Forbidden("this worker is paused by an admin: it takes no new work")
        }
        Answered::Accepted { .. } | Answered::Rejected { .. } => ApiError::Internal,
    }
}

fn checked_offer_id(offer_id: &str) -> Result<(), ApiError> {
    if offer_id.contains('\0') {
        // no id has one, and PostgreSQL text cannot hold it
        return Err(ApiError::NotFound("offer"));
    }
    Ok(())
}

/// Accepts an offer made to the caller: its task is leased to the caller.
#[utoipa::path(post, path = "/v1/work/offers/{offer_id}/accept", tag = "work", security(("worker" = [])),
    params(("offer_id" = String, Path, description = "o_ id")),
    responses((status = 201, body = AcceptResponse), (status = 401, body = ErrorBody),
              (status = 403, description = "another worker's offer, or the worker is paused by an admin", body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, description = "details: offer_expired, offer_accepted or offer_rejected", body = ErrorBody)))]
pub async fn accept_offer(
    State(app): State<AppContext>,
    worker: AuthWorker,
    Path(offer_id): Path<OfferId>,
) -> Result<(StatusCode, Json<AcceptResponse>), ApiError> {
    checked_offer_id(&offer_id)?;
    match offers::accept(
        &app.pool,
        &offer_id,
        &worker.id,
        app.settings.lease_ttl,
        &app.settings.tier_lease_ttl,
    )
    .await?
    {
        Answered::Accepted {
            lease_id,
            task_id,
            lease_expires_at,
        } => Ok((
            StatusCode::CREATED,
            Json(AcceptResponse {
                ok: true,
                offer_id: offer_id.into(),
                task_id,
                lease_id,
                lease_expires_at,
            }),
        )),
        other => Err(refused(other)),
    }
}

/// Rejects an offer made to the caller: its task is ready again, and is not offered to the
/// caller again.
#[utoipa::path(post, path = "/v1/work/offers/{offer_id}/reject", tag = "work", security(("worker" = [])),
    params(("offer_id" = String, Path, description = "o_ id")),
    request_body = RejectRequest,
    responses((status = 200, body = RejectResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody),
              (status = 403, description = "another worker's offer", body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, description = "details: offer_expired, offer_accepted or offer_rejected", body = ErrorBody)))]
pub async fn reject_offer(
    State(app): State<AppContext>,
    worker: AuthWorker,
    Path(offer_id): Path<OfferId>,
    ApiJson(req): ApiJson<RejectRequest>,
) -> Result<Json<RejectResponse>, ApiError> {
    checked_offer_id(&offer_id)?;
    let reason: RejectReason = req.reason.trim().parse().map_err(|_| {
        Invalid::new(
            "reason",
            "one of insufficient_time, unclear_requirements, skill_mismatch, too_large, other",
        )
    })?;
    match offers::reject(&app.pool, &offer_id, &worker.id, reason).await? {
        Answered::Rejected { task_id } => {
            app.long_poll.work_ready(1);
            Ok(Json(RejectResponse {
                ok: true,
                offer_id: offer_id.into(),
                task_id,
                status: "ready".into(),
            }))
        }
        other => Err(refused(other)),
    }
}
