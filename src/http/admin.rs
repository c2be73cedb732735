//! Maintainer endpoints: repositories with review budgets and tasks (the pool overview is
//! `overview.rs`).

use super::extract::{parse_value, ApiJson, ApiJsonAny, AuthAdmin};
use crate::app::AppContext;
use crate::domain::input::{self, Invalid};
use crate::domain::new_task::{self, NewTask};
use crate::error::ApiError;
use crate::store::repos::{self, RepoSettings, Upserted};
use crate::store::tasks::{self, Created};
use crate::wire::admin::{
    RepoRequest, RepoResponse, TaskCreated, TaskRequest, TasksBody, TasksCreated, TasksCreatedBody,
    MAX_BULK,
};
use crate::wire::ErrorBody;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// Create a repository, or update its settings if it exists.
#[utoipa::path(post, path = "/v1/admin/repos", tag = "admin", request_body = RepoRequest, security(("admin" = [])),
    responses((status = 201, description = "created", body = RepoResponse), (status = 200, description = "updated", body = RepoResponse),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 409, description = "details: areas_open_twice: <areas> (area locks cannot be turned on yet)", body = ErrorBody)))]
pub async fn upsert_repo(
    State(app): State<AppContext>,
    admin: AuthAdmin,
    ApiJson(req): ApiJson<RepoRequest>,
) -> Result<(StatusCode, Json<RepoResponse>), ApiError> {
    let settings = RepoSettings {
        repo: input::text("repo", &req.repo, 1, 200)?,
        max_open_prs: input::int_in("max_open_prs", req.max_open_prs, 3, 0, 10_000)?,
        area_locks_enabled: req.area_locks_enabled.unwrap_or(true),
        pr_url_prefix: match req.pr_url_prefix.as_deref() {
            None => None,
            Some("") => Some(None),
            Some(p) => Some(Some(input::pr_url_prefix("pr_url_prefix", p)?)),
        },
        github_write_back: req.github_write_back,
        max_open_prs_per_worker: match req.max_open_prs_per_worker {
            None => None,
            Some(0) => Some(None),
            Some(n) => Some(Some(input::int_in(
                "max_open_prs_per_worker",
                Some(n),
                0,
                0,
                10_000,
            )?)),
        },
    };
    let status = match repos::upsert_repo(&app.pool, &settings, &admin.actor).await? {
        Upserted::Created => StatusCode::CREATED,
        Upserted::Updated => StatusCode::OK,
        Upserted::AreasOpenTwice(areas) => return Err(ApiError::AreasOpenTwice(areas)),
    };
    // a larger budget or area locks turned off may free slots
    app.long_poll
        .work_ready(settings.max_open_prs.max(1) as usize);
    Ok((
        status,
        Json(RepoResponse {
            ok: true,
            repo: settings.repo,
        }),
    ))
}

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
    admin: AuthAdmin,
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
    let ids = match tasks::insert_tasks(&app.pool, &tasks, &admin.actor).await? {
        Created::Ok(ids) => ids,
        Created::UnknownRepo(_) => return Err(ApiError::NotFound("repo")),
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
