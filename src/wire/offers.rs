//! Offers: `POST /v1/work/offers`, `/v1/work/offers/{offer_id}/accept` and `/reject`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OfferParams {
    /// At most this many new offers (0-100, default 100); free capacity caps it too.
    #[param(minimum = 0, maximum = 100)]
    pub max: Option<i64>,
}

/// A task reserved for the worker until `expires_at`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct OfferView {
    pub offer_id: String,
    pub task_id: String,
    pub repo: String,
    pub title: String,
    pub description: String,
    pub estimate_points: i32,
    pub priority: i32,
    pub required_skills: Vec<String>,
    pub area: Option<String>,
    pub tier: i16,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OffersResponse {
    /// The offers made by this call (none when the worker has no free capacity or nothing
    /// it may take is ready).
    pub offers: Vec<OfferView>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AcceptResponse {
    pub ok: bool,
    pub offer_id: String,
    pub task_id: String,
    pub lease_id: String,
    pub lease_expires_at: DateTime<Utc>,
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct RejectRequest {
    /// insufficient_time, unclear_requirements, skill_mismatch, too_large or other.
    #[schema(value_type = RejectReasonName)]
    pub reason: String,
}

/// The reasons a rejection may give, read from `domain::status::RejectReason`.
pub struct RejectReasonName;

impl utoipa::PartialSchema for RejectReasonName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let names = crate::domain::status::RejectReason::ALL
            .iter()
            .map(|r| r.as_str());
        super::enum_schema(names, "why the offer is rejected")
    }
}

impl ToSchema for RejectReasonName {}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RejectResponse {
    pub ok: bool,
    pub offer_id: String,
    pub task_id: String,
    /// `ready`: the task is back in the queue (not offered to this worker again).
    pub status: String,
}
