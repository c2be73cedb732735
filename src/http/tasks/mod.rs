//! Tasks, the resource: create (one or a batch), list, read, edit. The worker's status
//! report is `status`, the operator's requeue and cancel are `actions`.

pub mod actions;
pub mod approval;
pub mod status;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::app::AppContext;
use crate::domain::ids::TaskId;
use crate::domain::input::Invalid;
use crate::domain::new_task::NewTask;
use crate::domain::status::TaskStatus;
use crate::domain::{input, new_task};
use crate::error::ApiError;
use crate::http::extract::{parse_value, ApiJson, ApiJsonAny, ApiQuery, Caller, RepoAdmin};
use crate::http::paging::{decode_cursor, next_cursor, page_limit};
use crate::http::scope;
use crate::store::admin_actions::{Edited, Reservation, TaskEdit};
use crate::store::tasks::Created;
use crate::store::views::TaskFilter;
use crate::store::{admin_actions, tasks, views};
use crate::wire::actions::TaskPatch;
use crate::wire::admin::{
    TaskCreated, TaskRequest, TasksBody, TasksCreated, TasksCreatedBody, MAX_BULK,
};
use crate::wire::views::{TaskDetail, TaskDetailQuery, TaskList, TaskListQuery, TaskView};
use crate::wire::ErrorBody;

/// Create one task, or (with a JSON array) many in one transaction.
#[utoipa::path(post, path = "/v1/admin/tasks", tag = "admin", security(("admin" = [])),
    request_body(content = TasksBody, description = "one task, or a JSON array of them (bulk import, all or nothing)"),
    responses((status = 201, description = "one task created, or `{ok, task_ids, created}` for an array", body = TasksCreatedBody),
              (status = 200, description = "one task sent whose repo and external_id exist: nothing created, the existing id", body = TaskCreated),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, description = "the repo does not exist", body = ErrorBody),
              (status = 413, body = ErrorBody)))]
pub async fn create_tasks(
    State(app): State<AppContext>,
    RepoAdmin(admin): RepoAdmin,
    ApiJsonAny(body): ApiJsonAny,
) -> Result<Response, ApiError> {
    let bulk = body.is_array();
    let requests: Vec<TaskRequest> = if bulk {
        parse_value(body)?
    } else {
        vec![parse_value(body)?]
    };
    if requests.len() > MAX_BULK {
        return Err(Invalid::new("body", format!("send at most {MAX_BULK} tasks at once")).into());
    }
    if requests.is_empty() {
        // an empty import is a valid no-op
        return Ok((
            StatusCode::CREATED,
            Json(TasksCreated {
                ok: true,
                task_ids: vec![],
                created: 0,
            }),
        )
            .into_response());
    }
    let tasks = if bulk {
        new_task::check_batch(requests.iter().map(TaskRequest::fields))?
    } else {
        let one = requests.first().expect("one task request");
        vec![NewTask::check(one.fields())?]
    };
    for t in &tasks {
        admin.may(&t.repo)?;
    }
    let ids = match tasks::insert_tasks(&app.pool, &tasks, &admin.actor).await? {
        Created::Ok(ids) => ids,
        Created::UnknownRepo(_) => return Err(ApiError::NotFound("repo")),
        Created::UnknownDependency((i, j, id)) => {
            let field = if bulk {
                format!("[{i}].depends_on[{j}]")
            } else {
                format!("depends_on[{j}]")
            };
            return Err(Invalid::new(field, format!("no task {id}")).into());
        }
    };
    let created = ids.iter().filter(|(_, new)| *new).count();
    crate::metrics::tasks_created(created);
    app.long_poll.work_ready(created);
    Ok(if bulk {
        let task_ids = ids.into_iter().map(|(t, _)| t.0).collect();
        (
            StatusCode::CREATED,
            Json(TasksCreated {
                ok: true,
                task_ids,
                created,
            }),
        )
            .into_response()
    } else {
        let (task_id, created) = ids.into_iter().next().expect("one task was sent");
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        let body = TaskCreated {
            ok: true,
            task_id: task_id.0,
            created,
        };
        (status, Json(body)).into_response()
    })
}

/// Tasks in creation order, filtered; keyset pages.
#[utoipa::path(get, path = "/v1/tasks", tag = "admin", params(TaskListQuery), security(("admin" = [])),
    responses((status = 200, body = TaskList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_tasks(
    State(app): State<AppContext>,
    RepoAdmin(admin): RepoAdmin,
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
    let repos = scope::repos_filter(&admin, repo)?;
    let skill = input::optional_text("skill", q.skill.as_deref(), 50)?.map(|s| s.to_lowercase());
    let worker_id = input::optional_text("worker_id", q.worker_id.as_deref(), 100)?;
    let area = input::optional_text("area", q.area.as_deref(), 100)?;
    let tasks = views::list_tasks(
        &app.pool,
        &TaskFilter {
            statuses,
            repos: repos.as_deref(),
            skill: skill.as_deref(),
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
    Path(task_id): Path<TaskId>,
    ApiQuery(q): ApiQuery<TaskDetailQuery>,
) -> Result<Json<TaskDetail>, ApiError> {
    if task_id.contains('\0') {
        return Err(ApiError::NotFound("task"));
    }
    let limit = i64::from(input::int_in("limit", q.limit, 100, 1, 500)?);
    match &caller {
        Caller::Worker(w) => {
            if !views::worker_knows_task(&app.pool, &w.id, &task_id).await? {
                // the same answer for a task that does not exist: ids are not probed
                return Err(ApiError::Forbidden("you never held this task"));
            }
        }
        Caller::Admin(a) => scope::task_in_scope(&app, a, &task_id).await?,
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
        not_before: match p.not_before.as_deref().map(str::trim) {
            None => None,
            Some("") => Some(None),
            Some(t) => Some(Some(input::timestamp("not_before", t)?)),
        },
        depends_on: p
            .depends_on
            .as_deref()
            .map(|d| input::text_list("depends_on", d, 50, 100))
            .transpose()?,
        reservation: reservation(p.reserved_for.as_deref(), p.reserved_until.as_deref())?,
    })
}

/// `reserved_for` and `reserved_until` change together; `reserved_for: ""` ends it.
fn reservation(worker: Option<&str>, until: Option<&str>) -> Result<Option<Reservation>, Invalid> {
    match (worker.map(str::trim), until) {
        (None, None) => Ok(None),
        (Some(""), until) => {
            // ending a reservation: a time sent beside it must still be a time
            if let Some(t) = until.map(str::trim).filter(|t| !t.is_empty()) {
                input::timestamp("reserved_until", t)?;
            }
            Ok(Some(None))
        }
        (Some(w), Some(t)) => Ok(Some(Some((
            input::text("reserved_for", w, 1, 100)?,
            input::timestamp("reserved_until", t)?,
        )))),
        (Some(_), None) => Err(Invalid::new("reserved_until", "required with reserved_for")),
        (None, Some(_)) => Err(Invalid::new("reserved_for", "required with reserved_until")),
    }
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
    RepoAdmin(admin): RepoAdmin,
    Path(task_id): Path<TaskId>,
    ApiJson(req): ApiJson<TaskPatch>,
) -> Result<Json<TaskView>, ApiError> {
    if task_id.contains('\0') {
        return Err(ApiError::NotFound("task"));
    }
    scope::task_in_scope(&app, &admin, &task_id).await?;
    let edit = checked_edit(req)?;
    match admin_actions::edit(&app.pool, &task_id, &edit, &admin.actor).await? {
        Edited::Done if edit.replans() => app.long_poll.work_ready(1),
        Edited::Done => {}
        Edited::UnknownDependency { index, id } => {
            return Err(Invalid::new(format!("depends_on[{index}]"), format!("no task {id}")).into())
        }
        Edited::DependencyCycle { via } => {
            return Err(Invalid::new(
                "depends_on",
                format!("{via} waits on this task (directly or through others): a cycle would never become ready"),
            )
            .into())
        }
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
