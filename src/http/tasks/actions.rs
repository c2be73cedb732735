//! Operator actions on tasks: requeue and cancel, one or in bulk, each audited with the
//! admin as actor.

use axum::extract::{Path, State};
use axum::Json;

use crate::app::AppContext;
use crate::domain::ids::TaskId;
use crate::domain::input::Invalid;
use crate::domain::status::TaskStatus;
use crate::error::ApiError;
use crate::http::extract::{ApiJson, AuthAdmin, RepoAdmin};
use crate::http::scope;
use crate::store::admin_actions;
use crate::store::admin_actions::TaskAction;
use crate::wire::actions::{
    BulkRequest, BulkResponse, BulkSkipped, RequeueRequest, TaskActionResponse,
};
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
        task_id: &TaskId,
        admin: &AuthAdmin,
    ) -> Result<TaskAction, ApiError> {
        if task_id.contains('\0') {
            return Ok(TaskAction::NotFound);
        }
        match scope::task_in_scope(app, admin, task_id).await {
            Err(ApiError::NotFound(_)) => return Ok(TaskAction::NotFound),
            other => other?,
        }
        let actor = admin.actor.as_str();
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
    task_id: TaskId,
    admin: &AuthAdmin,
) -> Result<Json<TaskActionResponse>, ApiError> {
    match act.run(app, &task_id, admin).await? {
        TaskAction::Done(status) => {
            // the task is ready again, or its slot and area are free
            app.long_poll.work_ready(1);
            Ok(Json(TaskActionResponse {
                ok: true,
                task_id: task_id.into(),
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
    admin: &AuthAdmin,
) -> Result<Json<BulkResponse>, ApiError> {
    if ids.is_empty() || ids.len() > MAX_BULK {
        return Err(Invalid::new("task_ids", "must hold 1-500 task ids").into());
    }
    let mut out = BulkResponse {
        done: Vec::new(),
        skipped: Vec::new(),
    };
    for id in ids {
        match act.run(app, &TaskId::from(id.clone()), admin).await? {
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
    RepoAdmin(admin): RepoAdmin,
    Path(task_id): Path<TaskId>,
    ApiJson(req): ApiJson<RequeueRequest>,
) -> Result<Json<TaskActionResponse>, ApiError> {
    let act = Act::Requeue {
        reset_attempts: req.reset_attempts.unwrap_or(false),
    };
    one(&app, act, task_id, &admin).await
}

/// To the terminal `cancelled`, from any status that is not terminal; the holder's next
/// report gets `lease_lost`; slot and area are freed.
#[utoipa::path(post, path = "/v1/tasks/{task_id}/cancel", tag = "admin", security(("admin" = [])),
    params(("task_id" = String, Path, description = "The task's id")),
    responses((status = 200, body = TaskActionResponse), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel_task(
    State(app): State<AppContext>,
    RepoAdmin(admin): RepoAdmin,
    Path(task_id): Path<TaskId>,
) -> Result<Json<TaskActionResponse>, ApiError> {
    one(&app, Act::Cancel, task_id, &admin).await
}

/// Requeues up to 500 tasks, each in its own transaction.
#[utoipa::path(post, path = "/v1/tasks/requeue", tag = "admin", security(("admin" = [])), request_body = BulkRequest,
    responses((status = 200, body = BulkResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn requeue_tasks(
    State(app): State<AppContext>,
    RepoAdmin(admin): RepoAdmin,
    ApiJson(req): ApiJson<BulkRequest>,
) -> Result<Json<BulkResponse>, ApiError> {
    let act = Act::Requeue {
        reset_attempts: req.reset_attempts.unwrap_or(false),
    };
    bulk(&app, act, req.task_ids, &admin).await
}

/// Cancels up to 500 tasks, each in its own transaction.
#[utoipa::path(post, path = "/v1/tasks/cancel", tag = "admin", security(("admin" = [])), request_body = BulkRequest,
    responses((status = 200, body = BulkResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn cancel_tasks(
    State(app): State<AppContext>,
    RepoAdmin(admin): RepoAdmin,
    ApiJson(req): ApiJson<BulkRequest>,
) -> Result<Json<BulkResponse>, ApiError> {
    bulk(&app, Act::Cancel, req.task_ids, &admin).await
}
