//! Operator actions: requeue and cancel tasks (one or in bulk); pause, resume and revoke
//! workers, rotate their tokens. Each is audited with the admin as actor.

use axum::extract::{Path, State};
use axum::Json;

use super::extract::{ApiJson, AuthAdmin};
use crate::app::AppContext;
use crate::auth;
use crate::domain::input;
use crate::domain::input::Invalid;
use crate::domain::status::TaskStatus;
use crate::domain::trust::TrustTier;
use crate::error::ApiError;
use crate::store::admin_actions::{self, Edited, TaskAction, TaskEdit, WorkerAction};
use crate::store::views;
use crate::wire::actions::{
    BulkRequest, BulkResponse, BulkSkipped, RequeueRequest, TaskActionResponse, TaskPatch,
    TokenResponse, TrustTierRequest, TrustTierResponse, WorkerActionResponse,
};
use crate::wire::views::TaskView;
use crate::wire::ErrorBody;

const MAX_BULK: usize = 500;

#[derive(Clone, Copy)]
enum Act {
    Requeue { reset_attempts: bool },
    Cancel,
}

impl Act {
    fn target(self) -> TaskStatus {
        match self {
            Self::Requeue { .. } => TaskStatus::Ready,
            Self::Cancel => TaskStatus::Cancelled,
        }
    }

    async fn run(
        self,
        app: &AppContext,
        task_id: &str,
        actor: &str,
    ) -> Result<TaskAction, ApiError> {
        if task_id.contains('\0') {
            return Ok(TaskAction::NotFound);
        }
        Ok(match self {
            Self::Requeue { reset_attempts } => {
                admin_actions::requeue(&app.pool, task_id, reset_attempts, actor).await?
            }
            Self::Cancel => admin_actions::cancel(&app.pool, task_id, actor).await?,
        })
    }
}

async fn one(
    app: &AppContext,
    act: Act,
    task_id: String,
    actor: &str,
) -> Result<Json<TaskActionResponse>, ApiError> {
    match act.run(app, &task_id, actor).await? {
        TaskAction::Done(status) => {
            // the task is ready again, or its slot and area are free
            app.long_poll.work_ready(1);
            Ok(Json(TaskActionResponse {
                ok: true,
                task_id,
                status,
            }))
        }
        TaskAction::NotFound => Err(ApiError::NotFound("task")),
        TaskAction::NotFrom(from) => Err(ApiError::InvalidTransition {
            from,
            to: crate::domain::status::Report::Rest(act.target()),
        }),
    }
}

async fn bulk(
    app: &AppContext,
    act: Act,
    ids: Vec<String>,
    actor: &str,
) -> Result<Json<BulkResponse>, ApiError> {
    if ids.is_empty() || ids.len() > MAX_BULK {
        return Err(Invalid::new("task_ids", "must hold 1-500 task ids").into());
    }
    let mut out = BulkResponse {
        done: Vec::new(),
        skipped: Vec::new(),
    };
    for id in ids {
        match act.run(app, &id, actor).await? {
            TaskAction::Done(_) => out.done.push(id),
            TaskAction::NotFound => out.skipped.push(BulkSkipped {
                task_id: id,
                reason: "not_found".into(),
            }),
            TaskAction::NotFrom(from) => out.skipped.push(BulkSkipped {
                task_id: id,
                reason: format!("invalid_transition: {from} -> {}", act.target()),
            }),
        }
    }
    app.long_poll.work_ready(out.done.len());
    Ok(Json(out))
}

/// Back to `ready` at once: the holder's next report gets `lease_lost`; slot and area are
/// freed. From any status but `completed` and `merged` (a `failed` or `cancelled` task gets
/// another try).
#[utoipa::path(post, path = "/v1/tasks/{task_id}/requeue", tag = "admin", security(("admin" = [])),
    params(("task_id" = String, Path, description = "The task's id")),
    request_body(content = Option<RequeueRequest>, description = "optional"),
    responses((status = 200, body = TaskActionResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn requeue_task(
    State(app): State<AppContext>,
    admin: AuthAdmin,
    Path(task_id): Path<String>,
    ApiJson(req): ApiJson<RequeueRequest>,
) -> Result<Json<TaskActionResponse>, ApiError> {
    let act = Act::Requeue {
        reset_attempts: req.reset_attempts.unwrap_or(false),
    };
    one(&app, act, task_id, &admin.actor).await
}

/// To the terminal `cancelled`, from any status that is not terminal; the holder's next
/// report gets `lease_lost`; slot and area are freed.
#[utoipa::path(post, path = "/v1/tasks/{task_id}/cancel", tag = "admin", security(("admin" = [])),
    params(("task_id" = String, Path, description = "The task's id")),
    responses((status = 200, body = TaskActionResponse), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel_task(
    State(app): State<AppContext>,
    admin: AuthAdmin,
    Path(task_id): Path<String>,
) -> Result<Json<TaskActionResponse>, ApiError> {
    one(&app, Act::Cancel, task_id, &admin.actor).await
}

/// Requeues up to 500 tasks, each in its own transaction.
#[utoipa::path(post, path = "/v1/tasks/requeue", tag = "admin", security(("admin" = [])), request_body = BulkRequest,
    responses((status = 200, body = BulkResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn requeue_tasks(
    State(app): State<AppContext>,
    admin: AuthAdmin,
    ApiJson(req): ApiJson<BulkRequest>,
) -> Result<Json<BulkResponse>, ApiError> {
    let act = Act::Requeue {
        reset_attempts: req.reset_attempts.unwrap_or(false),
    };
    bulk(&app, act, req.task_ids, &admin.actor).await
}

/// Cancels up to 500 tasks, each in its own transaction.
#[utoipa::path(post, path = "/v1/tasks/cancel", tag = "admin", security(("admin" = [])), request_body = BulkRequest,
    responses((status = 200, body = BulkResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn cancel_tasks(
    State(app): State<AppContext>,
    admin: AuthAdmin,
    ApiJson(req): ApiJson<BulkRequest>,
) -> Result<Json<BulkResponse>, ApiError> {
    bulk(&app, Act::Cancel, req.task_ids, &admin.actor).await
}

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
    Path(worker_id): Path<String>,
) -> Result<Json<WorkerActionResponse>, ApiError> {
    checked_id(&worker_id)?;
    let a = admin_actions::set_paused(&app.pool, &worker_id, true, &admin.actor).await?;
    worker_done(a)?;
    Ok(worker_ok(worker_id))
}

/// Lifts an admin's pause.
#[utoipa::path(post, path = "/v1/workers/{worker_id}/resume", tag = "admin", security(("admin" = [])),
    params(("worker_id" = String, Path, description = "The worker's id")),
    responses((status = 200, body = WorkerActionResponse), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "details: worker_revoked", body = ErrorBody)))]
pub async fn resume_worker(
    State(app): State<AppContext>,
    admin: AuthAdmin,
    Path(worker_id): Path<String>,
) -> Result<Json<WorkerActionResponse>, ApiError> {
    checked_id(&worker_id)?;
    let a = admin_actions::set_paused(&app.pool, &worker_id, false, &admin.actor).await?;
    worker_done(a)?;
    app.long_poll.work_ready(1);
    Ok(worker_ok(worker_id))
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
    Path(worker_id): Path<String>,
) -> Result<Json<WorkerActionResponse>, ApiError> {
    checked_id(&worker_id)?;
    let a = admin_actions::revoke(&app.pool, &worker_id, &admin.actor).await?;
    worker_done(a)?;
    Ok(worker_ok(worker_id))
}

/// Rotates a worker's token: the new one is shown once, the old one stops working.
#[utoipa::path(post, path = "/v1/workers/{worker_id}/token", tag = "admin", security(("admin" = [])),
    params(("worker_id" = String, Path, description = "The worker's id")),
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "details: worker_revoked", body = ErrorBody)))]
pub async fn rotate_token(
    State(app): State<AppContext>,
    admin: AuthAdmin,
    Path(worker_id): Path<String>,
) -> Result<Json<TokenResponse>, ApiError> {
    checked_id(&worker_id)?;
    let token = auth::generate_token();
    let a = admin_actions::rotate_token(&app.pool, &worker_id, &auth::digest(&token), &admin.actor)
        .await?;
    worker_done(a)?;
    Ok(Json(TokenResponse { worker_id, token }))
}

fn checked_edit(p: TaskPatch) -> Result<TaskEdit, Invalid> {
    let text =
        |f: &str, v: Option<&str>, min, max| v.map(|v| input::text(f, v, min, max)).transpose();
    let int = |f: &str, v: Option<i64>, min: i64, max: i64| {
        v.map(|v| input::int_in(f, Some(v), 0, min, max))
            .transpose()
    };
    Ok(TaskEdit {
        title: text("title", p.title.as_deref(), 1, 300)?,
        description: input::optional_text("description", p.description.as_deref(), 20_000)?
            .or_else(|| p.description.as_ref().map(|_| String::new())),
        required_skills: p
            .required_skills
            .as_deref()
            .map(|s| input::skills("required_skills", s))
            .transpose()?,
        estimate_points: int("estimate_points", p.estimate_points, 1, 100)?,
        priority: int("priority", p.priority, i32::MIN.into(), i32::MAX.into())?,
        area: match p.area.as_deref() {
            None => None,
            Some("") => Some(None),
            Some(a) => Some(input::optional_text("area", Some(a), 100)?),
        },
        tier: int("tier", p.tier, 0, 3)?.map(|t| t as i16),
        min_reputation: int("min_reputation", p.min_reputation, 0, 100)?.map(|r| r as i16),
        max_attempts: int("max_attempts", p.max_attempts, 1, 100)?,
    })
}

/// Changes a task's priority, skills, estimate, area, tier, max attempts, title or
/// description. Refused (409, `details: "live_lease: <field>"`) when the change would
/// invalidate the live lease (skills, estimate, tier while leased) or move the area lock
/// an open task holds.
#[utoipa::path(patch, path = "/v1/tasks/{task_id}", tag = "admin", security(("admin" = [])),
    params(("task_id" = String, Path, description = "The task's id")),
    request_body(content = Option<TaskPatch>, description = "the fields to change; absent ones stay (no body: no change)"),
    responses((status = 200, body = TaskView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "details: live_lease: <field>", body = ErrorBody)))]
pub async fn patch_task(
    State(app): State<AppContext>,
    admin: AuthAdmin,
    Path(task_id): Path<String>,
    ApiJson(req): ApiJson<TaskPatch>,
) -> Result<Json<TaskView>, ApiError> {
    if task_id.contains('\0') {
        return Err(ApiError::NotFound("task"));
    }
    let edit = checked_edit(req)?;
    match admin_actions::edit(&app.pool, &task_id, &edit, &admin.actor).await? {
        Edited::Done => {}
        Edited::NotFound => return Err(ApiError::NotFound("task")),
        Edited::Forbidden { field, status } => {
            return Err(ApiError::ChangeRefused { field, status })
        }
        Edited::TooFewAttempts { attempt } => {
            return Err(Invalid::new(
                "max_attempts",
                format!("must be at least {attempt}: the attempts already made"),
            )
            .into())
        }
    }
    let detail = views::task_detail(&app.pool, &task_id, views::Reader::Admin, 1)
        .await?
        .ok_or(ApiError::NotFound("task"))?;
    // new skills, tier or area may make it claimable for someone waiting
    app.long_poll.work_ready(1);
    Ok(Json(detail.task))
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
    Path(worker_id): Path<String>,
    ApiJson(req): ApiJson<TrustTierRequest>,
) -> Result<Json<TrustTierResponse>, ApiError> {
    checked_id(&worker_id)?;
    // exactly as the document says: a lower-case name, or an integer level 0-3
    let tier = match &req.tier {
        serde_json::Value::String(s) => TrustTier::ALL.into_iter().find(|t| t.as_str() == s),
        serde_json::Value::Number(n) => n
            .as_f64()
            .filter(|f| f.fract() == 0.0)
            .and_then(|f| TrustTier::from_level(f as i64)),
        _ => None,
    }
    .ok_or_else(|| {
        Invalid::new(
            "tier",
            "must be untrusted, basic, trusted or core, or a level 0-3",
        )
    })?;
    let reason = input::text("reason", &req.reason, 1, 500)?;
    let a =
        admin_actions::set_trust_tier(&app.pool, &worker_id, tier.level(), &reason, &admin.actor)
            .await?;
    worker_done(a)?;
    app.long_poll.work_ready(1);
    Ok(Json(TrustTierResponse {
        worker_id,
        trust_tier: tier,
        trust_level: tier.level(),
    }))
}
