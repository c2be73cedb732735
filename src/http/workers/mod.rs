//! Workers, the resource: registration and heartbeats (the worker's own), the list and
//! one worker (operators, or a worker reading itself), and reputation. The operator's
//! pause, resume, revoke, token and tier actions are `actions`.

pub mod actions;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use chrono::Utc;

use crate::app::AppContext;
use crate::auth;
use crate::auth::Registration;
use crate::domain::ids::WorkerId;
use crate::domain::input;
use crate::domain::input::{Checked, Invalid};
use crate::domain::status::WorkerStatus;
use crate::domain::trust::TrustTier;
use crate::error::ApiError;
use crate::http::extract::{
    header_str, ApiJson, ApiQuery, AuthWorker, Caller, RepoAdmin, WorkerToken, REGISTRATION_HEADER,
};
use crate::http::paging::{decode_cursor, next_cursor, page_limit};
use crate::store::views::WorkerFilter;
use crate::store::workers::NewWorker;
use crate::store::{reputation, views, workers};
use crate::wire::reputation::{Reputation, ReputationMetrics};
use crate::wire::views::{WorkerDetail, WorkerList, WorkerListQuery};
use crate::wire::workers::{
    HeartbeatRequest, HeartbeatResponse, RegisterRequest, RegisterResponse, WorkerPatch,
    WorkerSettings,
};
use crate::wire::ErrorBody;

fn new_worker(
    req: RegisterRequest,
    id: WorkerId,
    token_digest: [u8; 32],
    trust_tier: i16,
) -> Checked<NewWorker> {
    Ok(NewWorker {
        id,
        name: input::text("name", &req.name, 1, 120)?,
        github_handle: input::github_handle("github_handle", req.github_handle.as_deref())?,
        token_digest,
        skills: input::skills("skills", req.skills.as_deref().unwrap_or_default())?,
        capacity_points: input::int_in("capacity_points", req.capacity_points, 5, 1, 1000)?,
        max_concurrent_tasks: input::int_in(
            "max_concurrent_tasks",
            req.max_concurrent_tasks,
            2,
            1,
            100,
        )?,
        trust_tier,
    })
}

/// Register a worker and receive its token (shown once).
#[utoipa::path(post, path = "/v1/workers/register", tag = "workers",
    request_body = RegisterRequest,
    params(("X-Registration-Token" = Option<String>, Header, description = "needed when the server gates registration")),
    responses((status = 201, body = RegisterResponse), (status = 400, body = ErrorBody),
              (status = 401, description = "registration needs a valid X-Registration-Token", body = ErrorBody),
              (status = 403, description = "registration is closed on this server", body = ErrorBody)))]
pub async fn register_worker(
    State(app): State<AppContext>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<RegisterResponse>), ApiError> {
    match &app.registration {
        Registration::Open => {}
        Registration::Token(gate) => {
            if !header_str(&headers, REGISTRATION_HEADER).is_some_and(|t| gate.verify(t)) {
                crate::metrics::auth_failure("registration");
                return Err(ApiError::Auth(
                    "registration needs a valid X-Registration-Token",
                ));
            }
        }
        Registration::Closed => return Err(ApiError::RegistrationClosed),
    }
    let token = auth::generate_token();
    let tier = app.settings.default_trust_tier;
    let worker = new_worker(req, WorkerId::generate(), auth::digest(&token), tier)?;
    workers::insert_worker(&app.pool, &worker).await?;
    // the new token authenticated by being issued: its limits are its own from now on
    app.limits.authenticated(&worker.token_digest);
    crate::metrics::registration();
    let s = &app.settings;
    Ok((
        StatusCode::CREATED,
        Json(RegisterResponse {
            worker_id: worker.id.0,
            token,
            heartbeat_interval_seconds: s.heartbeat_interval.as_secs(),
            poll_interval_seconds: s.poll_interval.as_secs(),
            lease_ttl_seconds: s.tier_lease_ttl.apply(tier, s.lease_ttl).as_secs(),
            heartbeat_timeout_seconds: s.heartbeat_timeout.as_secs(),
        }),
    ))
}

/// Change the worker's own skills, capacity and the repositories it takes work from,
/// without registering again. Applies from the next poll on; leases held stay.
#[utoipa::path(patch, path = "/v1/workers/me", tag = "workers",
    request_body(content = Option<WorkerPatch>, description = "optional: an empty body changes nothing and answers the settings"),
    security(("worker" = [])),
    responses((status = 200, body = WorkerSettings), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody),
              (status = 409, description = "details: capacity_in_use: the worker holds more than the new capacity or lease count", body = ErrorBody)))]
pub async fn patch_me(
    State(app): State<AppContext>,
    worker: AuthWorker,
    ApiJson(req): ApiJson<WorkerPatch>,
) -> Result<Json<WorkerSettings>, ApiError> {
    let own = own_settings(req)?;
    match workers::update_own(&app.pool, &worker.id, &own).await? {
        workers::OwnUpdate::Applied(settings) => {
            // new skills or repos may match work that is ready now
            app.long_poll.work_ready(1);
            Ok(Json(settings))
        }
        workers::OwnUpdate::InUse(points, leases) => Err(ApiError::CapacityInUse(points, leases)),
    }
}

fn own_settings(req: WorkerPatch) -> Checked<workers::OwnSettings> {
    let int = |field: &str, v: Option<i64>, max: i64| {
        v.map(|n| input::int_in(field, Some(n), 1, 1, max))
            .transpose()
    };
    let repos = match req.repos {
        None => None,
        Some(list) if list.is_empty() => Some(None),
        Some(list) => Some(Some(input::text_list("repos", &list, 100, 200)?)),
    };
    Ok(workers::OwnSettings {
        skills: req
            .skills
            .as_deref()
            .map(|s| input::skills("skills", s))
            .transpose()?,
        capacity_points: int("capacity_points", req.capacity_points, 1000)?,
        max_concurrent_tasks: int("max_concurrent_tasks", req.max_concurrent_tasks, 100)?,
        repos,
    })
}

/// Exactly one of the documented values (or none: idle), as the OpenAPI enum says.
fn heartbeat_status(s: Option<&str>) -> Checked<WorkerStatus> {
    match s {
        None => Ok(WorkerStatus::Idle),
        Some(s) => s
            .parse()
            .map_err(|_| Invalid::new("status", "must be one of idle, working, paused")),
    }
}

/// Report liveness and the worker's own status.
#[utoipa::path(post, path = "/v1/workers/heartbeat", tag = "workers",
    request_body(content = Option<HeartbeatRequest>, description = "optional: an empty body is an idle heartbeat"),
    security(("worker" = [])),
    responses((status = 200, body = HeartbeatResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody)))]
pub async fn heartbeat(
    State(app): State<AppContext>,
    token: WorkerToken,
    ApiJson(req): ApiJson<HeartbeatRequest>,
) -> Result<Json<HeartbeatResponse>, ApiError> {
    let status = heartbeat_status(req.status.as_deref())?;
    let note = input::optional_text("note", req.note.as_deref(), 500)?;
    // one statement: the token's check, the sign of life and the status
    let beat = workers::heartbeat(&app.pool, &token.key, status, note.as_deref()).await?;
    let Some((id, active)) = beat else {
        return Err(token.refused(&app));
    };
    let worker = token.accepted(&app, id);
    Ok(Json(HeartbeatResponse {
        ok: true,
        server_time: Utc::now(),
        worker_id: worker.id.0,
        active_leases: active,
    }))
}

/// Workers in registration order, filtered; keyset pages.
#[utoipa::path(get, path = "/v1/workers", tag = "admin", params(WorkerListQuery), security(("admin" = [])),
    responses((status = 200, body = WorkerList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_workers(
    State(app): State<AppContext>,
    // a scoped admin too: maintainers name workers in their allow and deny lists
    _admin: RepoAdmin,
    ApiQuery(q): ApiQuery<WorkerListQuery>,
) -> Result<Json<WorkerList>, ApiError> {
    let limit = page_limit(q.limit)?;
    let after = decode_cursor(q.cursor.as_deref())?;
    let workers = views::list_workers(
        &app.pool,
        &WorkerFilter {
            id: None,
            online: q.online,
            status: q.status,
            after: after.as_deref(),
            limit,
            heartbeat_timeout_secs: app.settings.heartbeat_timeout.as_secs_f64(),
        },
    )
    .await?;
    let next_cursor = next_cursor(&workers, limit, |w| w.worker_id.clone());
    Ok(Json(WorkerList {
        workers,
        next_cursor,
    }))
}

/// One worker with its live leases; never its token or the token's digest.
#[utoipa::path(get, path = "/v1/workers/{worker_id}", tag = "admin", security(("admin" = [])),
    params(("worker_id" = String, Path, description = "The worker's id")),
    responses((status = 200, body = WorkerDetail), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_worker(
    State(app): State<AppContext>,
    RepoAdmin(admin): RepoAdmin,
    Path(worker_id): Path<WorkerId>,
) -> Result<Json<WorkerDetail>, ApiError> {
    if worker_id.contains('\0') {
        return Err(ApiError::NotFound("worker"));
    }
    let timeout = app.settings.heartbeat_timeout.as_secs_f64();
    let (worker, mut leases) = views::worker_detail(&app.pool, &worker_id, timeout)
        .await?
        .ok_or(ApiError::NotFound("worker"))?;
    // a scoped admin sees the worker's leases on its own repositories only
    leases.retain(|t| admin.scope.admits(&t.repo));
    Ok(Json(WorkerDetail { worker, leases }))
}

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
    Path(worker_id): Path<WorkerId>,
) -> Result<Json<Reputation>, ApiError> {
    if let Caller::Worker(w) = &caller {
        if w.id != worker_id {
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
        worker_id: worker_id.into(),
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
