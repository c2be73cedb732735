//! `ApiError`: the one place where failures become HTTP answers in PROTOCOL.md's format.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::domain::input::Invalid;
use crate::domain::status::{Report, TaskStatus};
use crate::store::StoreError;
use crate::wire::ErrorBody;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("validation error: {0}")]
    Validation(String),
    #[error("authentication required")]
    Auth(&'static str),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// Neither `OWP_REGISTRATION_TOKEN` nor `OWP_OPEN_REGISTRATION` is set.
    /// The caller's claim waits for a maintainer's approval (the repo's `claim_approval`).
    #[error("forbidden: awaiting_approval")]
    AwaitingApproval,
    #[error("registration closed")]
    RegistrationClosed,
    #[error("not found: {0}")]
    NotFound(&'static str),
    /// The write conflicts with existing state (`details` names how, e.g. `duplicate`).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The caller's lease expired or the task moved on without it: stop working on it.
    #[error("conflict: lease_lost")]
    LeaseLost,
    /// Another task holds this pull request: a PR earns credit for one task.
    #[error("conflict: pr_url_taken")]
    PrUrlTaken { task_id: String },
    /// The transition table does not allow this report from the task's status.
    #[error("conflict: invalid_transition: {from} -> {to}")]
    InvalidTransition { from: TaskStatus, to: Report },
    /// An edit would invalidate the task's live lease or move the area lock it holds.
    #[error("conflict: live_lease")]
    ChangeRefused {
        field: &'static str,
        status: TaskStatus,
    },
    /// Area locks cannot be turned on while these areas have more than one open task.
    #[error("conflict: areas_open_twice")]
    AreasOpenTwice(Vec<String>),
    /// A worker's new capacity is below what it holds: (points held, leases held).
    #[error("conflict: capacity_in_use")]
    CapacityInUse(i64, i64),
    #[error("payload too large")]
    PayloadTooLarge { limit: usize },
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    #[error("database unavailable")]
    Unavailable,
    /// This replica is at a limit (a request ran past OWP_REQUEST_TIMEOUT, the stream
    /// cap is reached): retry, here or on another replica.
    #[error("busy: {0}")]
    Busy(&'static str),
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) => StatusCode::BAD_REQUEST,
            Self::Auth(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::RegistrationClosed | Self::AwaitingApproval => {
                StatusCode::FORBIDDEN
            }
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_)
            | Self::LeaseLost
            | Self::PrUrlTaken { .. }
            | Self::InvalidTransition { .. }
            | Self::ChangeRefused { .. }
            | Self::AreasOpenTwice(_)
            | Self::CapacityInUse(..) => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable | Self::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation(_) => "validation_error",
            Self::Auth(_) => "auth_error",
            Self::Forbidden(_) | Self::RegistrationClosed | Self::AwaitingApproval => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_)
            | Self::LeaseLost
            | Self::PrUrlTaken { .. }
            | Self::InvalidTransition { .. }
            | Self::ChangeRefused { .. }
            | Self::AreasOpenTwice(_)
            | Self::CapacityInUse(..) => "conflict",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable | Self::Busy(_) => "unavailable",
            Self::Internal => "internal_error",
        }
    }

    fn body(&self) -> ErrorBody {
        let (message, details, suggestion): (String, Option<String>, Option<&str>) = match self {
            Self::Validation(details) => (
                "the request is not valid".into(),
                Some(details.clone()),
                Some("fix the named field and send the request again"),
            ),
            Self::Auth(what) => ((*what).into(), None, Some("send valid credentials")),
            Self::Forbidden(why) => ((*why).into(), None, None),
            Self::AwaitingApproval => (
                "this repository's maintainers approve an untrusted worker's claim before work starts".into(),
                Some("awaiting_approval".into()),
                Some("wait: the poll shows awaiting_approval false once approved (or report released to hand the task back)"),
            ),
            Self::RegistrationClosed => (
                "worker registration is closed on this server".into(),
                None,
                Some(
                    "ask the operator for a registration token (send it in X-Registration-Token); \
                     operators admit workers with OWP_REGISTRATION_TOKEN or OWP_OPEN_REGISTRATION=true",
                ),
            ),
            Self::NotFound(what) => (format!("{what} not found"), None, None),
            Self::Conflict(what) => (
                "the request conflicts with existing state".into(),
                Some((*what).into()),
                None,
            ),
            Self::PrUrlTaken { task_id } => (
                "another task holds this pull request".into(),
                Some(format!("pr_url_taken: {task_id}")),
                Some("report the pull request you opened for this task"),
            ),
            Self::LeaseLost => (
                "your lease on this task is gone; stop working on it".into(),
                Some("lease_lost".into()),
                Some("drop this task and poll for new work"),
            ),
            Self::ChangeRefused { field, status } => (
                format!("{field} cannot change while the task is {status}"),
                Some(format!("live_lease: {field}")),
                Some("requeue or cancel the task first, or wait until it is no longer held"),
            ),
            Self::AreasOpenTwice(areas) => (
                "area locks cannot be turned on while an area has more than one open task".into(),
                Some(format!("areas_open_twice: {}", areas.join(", "))),
                Some("let all but one open task of each named area finish, then try again"),
            ),
            Self::CapacityInUse(points, leases) => (
                "the worker holds more work than the new capacity allows".into(),
                Some(format!("capacity_in_use: {points} points in {leases} leases")),
                Some("finish or release leases first (or pause the worker: status paused), then lower it"),
            ),
            Self::InvalidTransition { from, to } => (
                "this status change is not allowed from the task's current status".into(),
                Some(format!("invalid_transition: {from} -> {to}")),
                None,
            ),
            Self::PayloadTooLarge { limit } => (
                format!("the request body is larger than {limit} bytes"),
                None,
                Some("split bulk requests into smaller batches"),
            ),
            Self::RateLimited { retry_after_secs } => (
                "too many requests".into(),
                None,
                Some(if *retry_after_secs > 0 {
                    "retry after the Retry-After delay"
                } else {
                    "retry later"
                }),
            ),
            Self::Unavailable => (
                "the service cannot reach its database".into(),
                None,
                Some("retry with exponential backoff and jitter"),
            ),
            Self::Busy(why) => (
                (*why).into(),
                None,
                Some("retry after the Retry-After delay"),
            ),
            Self::Internal => (
                "an internal error occurred; it has been logged with this request's x-request-id"
                    .into(),
                None,
                None,
            ),
        };
        ErrorBody {
            code: self.code().into(),
            message,
            details,
            suggestion: suggestion.map(str::to_string),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        crate::metrics::count_error(self.code());
        let mut resp = (self.status(), Json(self.body())).into_response();
        match self {
            Self::RateLimited { retry_after_secs } => {
                resp.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_secs.max(1)),
                );
            }
            Self::Unavailable | Self::Busy(_) => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::Auth(_) => {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        resp
    }
}

impl From<crate::report_batch::QueueFull> for ApiError {
    fn from(_: crate::report_batch::QueueFull) -> Self {
        Self::Busy("this replica's report queue is full (OWP_REPORT_QUEUE)")
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        Self::Validation(e.details())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                Self::Unavailable
            }
            StoreError::BadText(cause) => {
                tracing::info!(error = %cause, "refused text the database cannot store");
                Self::Validation("body: text must not contain NUL (\\u0000) characters".into())
            }
            StoreError::Conflict(what) => Self::Conflict(what),
            StoreError::Internal(cause) => {
                // logged once, inside the request span; never sent to the client
                tracing::error!(error = %cause, "store error");
                Self::Internal
            }
        }
    }
}
