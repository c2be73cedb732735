//! `GET /v1/workers/{worker_id}/reputation`: an admin reads any worker's, a worker its own.

use axum::extract::{Path, State};
use axum::Json;

use super::extract::Caller;
use crate::app::AppContext;
use crate::domain::trust::TrustTier;
use crate::error::ApiError;
use crate::store::reputation;
use crate::wire::reputation::{Reputation, ReputationMetrics};
use crate::wire::ErrorBody;

/// A worker's reputation score, trust tier and the metrics the score is made of.
#[utoipa::path(get, path = "/v1/workers/{worker_id}/reputation", tag = "workers",
    security(("admin" = []), ("worker" = [])),
    params(("worker_id" = String, Path, description = "The worker's id")),
    responses((status = 200, body = Reputation), (status = 401, body = ErrorBody),
              (status = 403, description = "a worker asking for another worker's", body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn get_reputation(
    State(app): State<AppContext>,
    caller: Caller,
    Path(worker_id): Path<String>,
) -> Result<Json<Reputation>, ApiError> {
    if let Caller::Worker(w) = &caller {
        if w.id.as_str() != worker_id {
            return Err(ApiError::Forbidden(
                "a worker may read only its own reputation",
            ));
        }
    }
    if worker_id.contains('\0') {
        return Err(ApiError::NotFound("worker"));
    }
    let s = reputation::standing(&app.pool, &worker_id)
        .await?
        .ok_or(ApiError::NotFound("worker"))?;
    let m = s.counts.metrics();
    Ok(Json(Reputation {
        worker_id,
        reputation_score: s.counts.score(),
        trust_tier: TrustTier::from_level(i64::from(s.trust_tier)).unwrap_or(TrustTier::Untrusted),
        metrics: ReputationMetrics {
            completion_rate: m.completion_rate,
            on_time_delivery: m.on_time_delivery,
            pr_merge_rate: m.pr_merge_rate,
            expiry_rate: m.expiry_rate,
            total_tasks: m.total_tasks,
            avg_pr_quality: m.avg_pr_quality,
        },
    }))
}
