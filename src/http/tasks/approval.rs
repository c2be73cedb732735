//! A maintainer's decision on an untrusted worker's claim in a repository with
//! `claim_approval` (PROTOCOL.md "Claim approval"); a repository-scoped admin decides on
//! its own repositories' claims.

use axum::extract::{Path, State};
use axum::Json;

use crate::app::AppContext;
use crate::domain::ids::TaskId;
use crate::domain::status::TaskStatus;
use crate::error::ApiError;
use crate::http::extract::{AuthAdmin, RepoAdmin};
use crate::http::scope;
use crate::store::approvals::{self, Decided};
use crate::wire::actions::TaskActionResponse;
use crate::wire::ErrorBody;

/// Approves the claim awaiting approval: its holder may start (the poll shows
/// `awaiting_approval: false`). 409 `not_awaiting_approval` when none awaits.
#[utoipa::path(post, path = "/v1/tasks/{task_id}/approve", tag = "admin", security(("admin" = [])),
    params(("task_id" = String, Path, description = "The task's id")),
    responses((status = 200, body = TaskActionResponse), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "details: not_awaiting_approval", body = ErrorBody)))]
pub async fn approve_claim(
    State(app): State<AppContext>,
    RepoAdmin(admin): RepoAdmin,
    Path(task_id): Path<TaskId>,
) -> Result<Json<TaskActionResponse>, ApiError> {
    decide(&app, &admin, task_id, Decision::Approve).await
}

/// Denies the claim awaiting approval: the task is `ready` again at once, for anyone but
/// that worker. 409 `not_awaiting_approval` when none awaits.
#[utoipa::path(post, path = "/v1/tasks/{task_id}/deny", tag = "admin", security(("admin" = [])),
    params(("task_id" = String, Path, description = "The task's id")),
    responses((status = 200, body = TaskActionResponse), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, description = "details: not_awaiting_approval", body = ErrorBody)))]
pub async fn deny_claim(
    State(app): State<AppContext>,
    RepoAdmin(admin): RepoAdmin,
    Path(task_id): Path<TaskId>,
) -> Result<Json<TaskActionResponse>, ApiError> {
    let answer = decide(&app, &admin, task_id, Decision::Deny).await?;
    // the task is ready again, its slot and area free
    app.long_poll.work_ready(1);
    Ok(answer)
}

#[derive(Clone, Copy)]
enum Decision {
    Approve,
    Deny,
}

async fn decide(
    app: &AppContext,
    admin: &AuthAdmin,
    task_id: TaskId,
    decision: Decision,
) -> Result<Json<TaskActionResponse>, ApiError> {
    if task_id.contains('\0') {
        return Err(ApiError::NotFound("task"));
    }
    scope::task_in_scope(app, admin, &task_id).await?;
    let (decided, after) = match decision {
        Decision::Approve => (
            approvals::approve(&app.pool, &task_id, &admin.actor).await?,
            TaskStatus::Leased,
        ),
        Decision::Deny => (
            approvals::deny(&app.pool, &task_id, &admin.actor).await?,
            TaskStatus::Ready,
        ),
    };
    match decided {
        Decided::Done { .. } => Ok(Json(TaskActionResponse {
            ok: true,
            task_id: task_id.into(),
            status: after,
        })),
        Decided::NotFound => Err(ApiError::NotFound("task")),
        Decided::NotAwaiting(_) => Err(ApiError::Conflict("not_awaiting_approval")),
    }
}
