//! Worker registration and heartbeats.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{header_str, ApiJson, AuthWorker, REGISTRATION_HEADER};
use crate::app::AppState;
use crate::auth;
use crate::domain::ids::WorkerId;
use crate::domain::input::{self, Checked, Invalid};
use crate::error::ApiError;
use crate::store::workers::{self, NewWorker};

#[derive(Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// 1-120 characters, not blank.
    #[schema(min_length = 1, max_length = 120, pattern = r"\S")]
    pub name: String,
    /// GitHub login: letters, digits, single inner hyphens; up to 39 characters.
    #[schema(max_length = 39, pattern = r"^$|^[A-Za-z0-9](-?[A-Za-z0-9])*$")]
    pub github_handle: Option<String>,
    /// 0-50 tags of 1-50 characters; trimmed, lower-cased, de-duplicated.
    #[serde(default)]
    #[schema(value_type = Option<Vec<super::SkillTag>>, max_items = 50)]
    pub skills: Option<Vec<String>>,
    /// 1-1000, default 5.
    #[serde(default, deserialize_with = "super::extract::lenient_int")]
    #[schema(minimum = 1, maximum = 1000)]
    pub capacity_points: Option<i64>,
    /// 1-100, default 2.
    #[serde(default, deserialize_with = "super::extract::lenient_int")]
    #[schema(minimum = 1, maximum = 100)]
    pub max_concurrent_tasks: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct RegisterResponse {
    pub worker_id: String,
    /// Shown once; the server keeps only its SHA-256 digest.
    pub token: String,
    pub heartbeat_interval_seconds: u64,
    pub poll_interval_seconds: u64,
    pub lease_ttl_seconds: u64,
    pub heartbeat_timeout_seconds: u64,
}

impl RegisterRequest {
    fn validate(self, id: WorkerId, token_digest: [u8; 32]) -> Checked<NewWorker> {
        Ok(NewWorker {
            id,
            name: input::text("name", &self.name, 1, 120)?,
            github_handle: input::github_handle("github_handle", self.github_handle.as_deref())?,
            token_digest,
            skills: input::skills("skills", self.skills.as_deref().unwrap_or_default())?,
            capacity_points: input::int_in("capacity_points", self.capacity_points, 5, 1, 1000)?,
            max_concurrent_tasks: input::int_in(
                "max_concurrent_tasks",
                self.max_concurrent_tasks,
                2,
                1,
                100,
            )?,
        })
    }
}

/// Register a worker and receive its token (shown once).
#[utoipa::path(post, path = "/v1/workers/register", tag = "workers",
    request_body = RegisterRequest,
    params(("X-Registration-Token" = Option<String>, Header, description = "needed when the server gates registration")),
    responses((status = 201, body = RegisterResponse), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody)))]
pub async fn register_worker(
    State(app): State<AppState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<RegisterResponse>), ApiError> {
    if let Some(gate) = &app.registration {
        if !header_str(&headers, REGISTRATION_HEADER).is_some_and(|t| gate.verify(t)) {
            crate::metrics::auth_failure("registration");
            return Err(ApiError::Auth(
                "registration needs a valid X-Registration-Token",
            ));
        }
    }
    let token = auth::generate_token();
    let worker = req.validate(WorkerId::generate(), auth::digest(&token))?;
    workers::insert_worker(&app.pool, &worker).await?;
    crate::metrics::registration();
    let s = &app.settings;
    Ok((
        StatusCode::CREATED,
        Json(RegisterResponse {
            worker_id: worker.id.0,
            token,
            heartbeat_interval_seconds: s.heartbeat_interval.as_secs(),
            poll_interval_seconds: s.poll_interval.as_secs(),
            lease_ttl_seconds: s.lease_ttl.as_secs(),
            heartbeat_timeout_seconds: s.heartbeat_timeout.as_secs(),
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct HeartbeatRequest {
    /// Default idle. A paused worker keeps its leases but gets no new work.
    #[schema(value_type = Option<HeartbeatStatus>)]
    pub status: Option<String>,
    /// Up to 500 characters.
    #[schema(max_length = 500)]
    pub note: Option<String>,
}

/// The worker's own status, as a heartbeat reports it.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // documents the accepted values; the handler checks them
pub enum HeartbeatStatus {
    Idle,
    Working,
    Paused,
}

#[derive(Serialize, ToSchema)]
pub struct HeartbeatResponse {
    pub ok: bool,
    pub server_time: DateTime<Utc>,
    pub worker_id: String,
    pub active_leases: i64,
}

fn heartbeat_status(s: Option<&str>) -> Checked<&'static str> {
    match s.map(str::trim) {
        None | Some("") | Some("idle") => Ok("idle"),
        Some("working") => Ok("working"),
        Some("paused") => Ok("paused"),
        Some(_) => Err(Invalid::new(
            "status",
            "must be one of idle, working, paused",
        )),
    }
}

/// Report liveness and the worker's own status.
#[utoipa::path(post, path = "/v1/workers/heartbeat", tag = "workers",
    request_body(content = Option<HeartbeatRequest>, description = "optional: an empty body is an idle heartbeat"),
    security(("worker" = [])),
    responses((status = 200, body = HeartbeatResponse), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody)))]
pub async fn heartbeat(
    State(app): State<AppState>,
    worker: AuthWorker,
    ApiJson(req): ApiJson<HeartbeatRequest>,
) -> Result<Json<HeartbeatResponse>, ApiError> {
    let status = heartbeat_status(req.status.as_deref())?;
    let note = input::optional_text("note", req.note.as_deref(), 500)?;
    let active = workers::heartbeat(&app.pool, &worker.id, status, note.as_deref()).await?;
    Ok(Json(HeartbeatResponse {
        ok: true,
        server_time: Utc::now(),
        worker_id: worker.id.0,
        active_leases: active,
    }))
}
