//! Operator reads: `GET /v1/tasks`, `/v1/tasks/{id}`, `/v1/workers`, `/v1/workers/{id}`,
//! `/v1/admin/repos`, `/v1/audit/events`. Thin: parse filters and cursors, call the store.

use axum::extract::{Path, State};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::extract::{ApiQuery, AuthAdmin, Caller};
use crate::app::AppContext;
use crate::domain::input::{self, Invalid};
use crate::domain::status::TaskStatus;
use crate::error::ApiError;
use crate::store::views::{self, AuditFilter, TaskFilter, WorkerFilter};
use crate::wire::views::{
    AuditList, AuditQuery, RepoList, TaskDetail, TaskDetailQuery, TaskList, TaskListQuery,
    WorkerDetail, WorkerList, WorkerListQuery,
};
use crate::wire::ErrorBody;

/// An opaque cursor: the last key of a page, encoded so clients do not build their own.
pub fn encode_cursor(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("k:{key}"))
}

fn decode_cursor(cursor: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(c) = cursor.filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("k:").map(str::to_string))
        .filter(|k| !k.contains('\0'))
        .map(Some)
        .ok_or_else(|| Invalid::new("cursor", "not a cursor this API returned").into())
}

fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    Ok(i64::from(input::int_in("limit", limit, 50, 1, 200)?))
}

/// The next cursor when the page is full (a full page may be the last: the next one is
/// then empty, with a null cursor).
fn next_cursor<T>(page: &[T], limit: i64, key: impl Fn(&T) -> String) -> Option<String> {
    (page.len() as i64 == limit)
        .then(|| page.last().map(|t| encode_cursor(&key(t))))
        .flatten()
}

/// Tasks in creation order, filtered; keyset pages.
#[utoipa::path(get, path = "/v1/tasks", tag = "admin", params(TaskListQuery), security(("admin" = [])),
    responses((status = 200, body = TaskList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_tasks(
    State(app): State<AppContext>,
    _admin: AuthAdmin,
    ApiQuery(q): ApiQuery<TaskListQuery>,
) -> Result<Json<TaskList>, ApiError> {
    let statuses = match q.status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(list) => Some(
            list.split(',')
                .map(|s| {
                    s.trim()
                        .parse::<TaskStatus>()
                        .map(|s| s.as_str().to_string())
                        .map_err(|_| Invalid::new("status", format!("unknown status: {s}")))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let limit = page_limit(q.limit)?;
    let after = decode_cursor(q.cursor.as_deref())?;
    let repo = input::optional_text("repo", q.repo.as_deref(), 200)?;
    let worker_id = input::optional_text("worker_id", q.worker_id.as_deref(), 100)?;
    let area = input::optional_text("area", q.area.as_deref(), 100)?;
    let tasks = views::list_tasks(
        &app.pool,
        &TaskFilter {
            statuses,
            repo: repo.as_deref(),
            worker_id: worker_id.as_deref(),
            area: area.as_deref(),
            after: after.as_deref(),
            limit,
        },
    )
    .await?;
    let next_cursor = next_cursor(&tasks, limit, |t| t.task_id.clone());
    Ok(Json(TaskList { tasks, next_cursor }))
}

/// One task with its current lease, lease history, artifacts and audit trail. Admins may
/// read any task; a worker, the tasks it holds or held.
#[utoipa::path(get, path = "/v1/tasks/{task_id}", tag = "tasks", security(("admin" = []), ("worker" = [])),
    params(("task_id" = String, Path, description = "The task's id"), TaskDetailQuery),
    responses((status = 200, body = TaskDetail), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_task(
    State(app): State<AppContext>,
    caller: Caller,
    Path(task_id): Path<String>,
    ApiQuery(q): ApiQuery<TaskDetailQuery>,
) -> Result<Json<TaskDetail>, ApiError> {
    if task_id.contains('\0') {
        return Err(ApiError::NotFound("task"));
    }
    let limit = i64::from(input::int_in("limit", q.limit, 100, 1, 500)?);
    if let Caller::Worker(w) = &caller {
        if !views::worker_knows_task(&app.pool, w.id.as_str(), &task_id).await? {
            // the same answer for a task that does not exist: ids are not probed
            return Err(ApiError::Forbidden("you never held this task"));
        }
    }
    let reader = match &caller {
        Caller::Admin(_) => views::Reader::Admin,
        Caller::Worker(w) => views::Reader::Worker(w.id.as_str()),
    };
    let r = views::task_detail(&app.pool, &task_id, reader, limit)
        .await?
        .ok_or(ApiError::NotFound("task"))?;
    let mut task = r.task;
    if let Caller::Worker(w) = &caller {
        if task.worker_id.as_deref() != Some(w.id.as_str()) {
            // a former holder does not learn who holds the task now, nor that lease's id
            task.worker_id = None;
            task.lease_id = None;
            task.lease_expires_at = None;
        }
    }
    let current_lease = task
        .lease_id
        .as_ref()
        .and_then(|id| r.leases.iter().find(|l| &l.lease_id == id).cloned());
    Ok(Json(TaskDetail {
        task,
        description: r.description,
        current_lease,
        leases: r.leases,
        leases_total: r.leases_total,
        artifacts: r.artifacts,
        artifacts_total: r.artifacts_total,
        events: r.events,
        offer_rejections: r.offer_rejections.into_iter().collect(),
    }))
}

/// Workers in registration order, filtered; keyset pages.
#[utoipa::path(get, path = "/v1/workers", tag = "admin", params(WorkerListQuery), security(("admin" = [])),
    responses((status = 200, body = WorkerList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_workers(
    State(app): State<AppContext>,
    _admin: AuthAdmin,
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
    _admin: AuthAdmin,
    Path(worker_id): Path<String>,
) -> Result<Json<WorkerDetail>, ApiError> {
    if worker_id.contains('\0') {
        return Err(ApiError::NotFound("worker"));
    }
    let timeout = app.settings.heartbeat_timeout.as_secs_f64();
    let (worker, leases) = views::worker_detail(&app.pool, &worker_id, timeout)
        .await?
        .ok_or(ApiError::NotFound("worker"))?;
    Ok(Json(WorkerDetail { worker, leases }))
}

/// Every repository with its settings, open slots, ready tasks, held areas and stale PRs.
#[utoipa::path(get, path = "/v1/admin/repos", tag = "admin", security(("admin" = [])),
    responses((status = 200, body = RepoList), (status = 401, body = ErrorBody)))]
pub async fn list_repos(
    State(app): State<AppContext>,
    _admin: AuthAdmin,
) -> Result<Json<RepoList>, ApiError> {
    let stale = app.settings.pr_stale_after.as_secs_f64();
    let repositories = views::list_repos(&app.pool, stale).await?;
    Ok(Json(RepoList { repositories }))
}

/// The audit log, newest first, filtered; `total` counts every match. Page with `cursor`
/// (cheap at any depth) or `offset` (for clients that need it).
#[utoipa::path(get, path = "/v1/audit/events", tag = "admin", params(AuditQuery), security(("admin" = [])),
    responses((status = 200, body = AuditList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_events(
    State(app): State<AppContext>,
    _admin: AuthAdmin,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditList>, ApiError> {
    let limit = page_limit(q.limit)?;
    let offset = i64::from(input::int_in("offset", q.offset, 0, 0, 100_000)?);
    let before = match decode_cursor(q.cursor.as_deref())? {
        None => None,
        Some(k) => Some(
            k.parse::<i64>()
                .map_err(|_| Invalid::new("cursor", "not a cursor this API returned"))?,
        ),
    };
    let event_type = input::optional_text("event_type", q.event_type.as_deref(), 100)?;
    let actor = input::optional_text("actor", q.actor.as_deref(), 200)?;
    let target = input::optional_text("target", q.target.as_deref(), 200)?;
    let (events, total) = views::list_events(
        &app.pool,
        &AuditFilter {
            event_type: event_type.as_deref(),
            actor: actor.as_deref(),
            target: target.as_deref(),
            since: q.since,
            before,
            offset,
            limit,
        },
    )
    .await?;
    let next_cursor = next_cursor(&events, limit, |e| e.id.to_string());
    Ok(Json(AuditList {
        events,
        total: total.min(views::TOTAL_CAP),
        total_exact: total <= views::TOTAL_CAP,
        next_cursor,
    }))
}
