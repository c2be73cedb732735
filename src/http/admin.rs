//! Maintainer endpoints: repositories with review budgets, tasks, and the pool overview.

use super::extract::{parse_value, ApiJson, ApiJsonAny, AuthAdmin};
use crate::app::AppContext;
use crate::domain::ids::TaskId;
use crate::domain::input::{self, Checked, Invalid};
use crate::error::ApiError;
use crate::store::repos::{self, RepoSettings, Upserted};
use crate::store::tasks::{self, Created, NewTask};
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
    };
    let status = match repos::upsert_repo(&app.pool, &settings, &admin.actor).await? {
        Upserted::Created => StatusCode::CREATED,
        Upserted::Updated => StatusCode::OK,
        Upserted::AreasOpenTwice(areas) => return Err(ApiError::AreasOpenTwice(areas)),
    };
    // a larger budget or area locks turned off may free slots
    app.work_ready(settings.max_open_prs.max(1) as usize);
    Ok((
        status,
        Json(RepoResponse {
            ok: true,
            repo: settings.repo,
        }),
    ))
}

fn new_task(req: TaskRequest) -> Checked<NewTask> {
    Ok(NewTask {
        id: TaskId::generate(),
        repo: input::text("repo", &req.repo, 1, 200)?,
        title: input::text("title", &req.title, 1, 300)?,
        description: input::optional_text("description", req.description.as_deref(), 20_000)?
            .unwrap_or_default(),
        required_skills: input::skills(
            "required_skills",
            req.required_skills.as_deref().unwrap_or_default(),
        )?,
        estimate_points: input::int_in("estimate_points", req.estimate_points, 1, 1, 100)?,
        priority: input::int_in(
            "priority",
            req.priority,
            10,
            i32::MIN.into(),
            i32::MAX.into(),
        )?,
        area: input::optional_text("area", req.area.as_deref(), 100)?,
        tier: input::int_in("tier", req.tier, 0, 0, 3)?,
        min_reputation: input::int_in("min_reputation", req.min_reputation, 0, 0, 100)?,
        max_attempts: input::int_in("max_attempts", req.max_attempts, 3, 1, 100)?,
    })
}

/// Create one task, or (with a JSON array) many in one transaction.
#[utoipa::path(post, path = "/v1/admin/tasks", tag = "admin", security(("admin" = [])),
    request_body(content = TasksBody, description = "one task, or a JSON array of them (bulk import, all or nothing)"),
    responses((status = 201, description = "one task created, or `{ok, task_ids}` for an array", body = TasksCreatedBody),
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
            }),
        )
            .into_response());
    }
    let tasks = requests
        .into_iter()
        .enumerate()
        .map(|(i, r)| new_task(r).map_err(|e| if bulk { e.at_index(i) } else { e }))
        .collect::<Checked<Vec<_>>>()?;
    let ids = match tasks::insert_tasks(&app.pool, &tasks, &admin.actor).await? {
        Created::Ok(ids) => ids,
        Created::UnknownRepo(_) => return Err(ApiError::NotFound("repo")),
    };
    crate::metrics::tasks_created(ids.len());
    app.work_ready(ids.len());
    let mut ids: Vec<String> = ids.into_iter().map(|t| t.0).collect();
    Ok(if bulk {
        (
            StatusCode::CREATED,
            Json(TasksCreated {
                ok: true,
                task_ids: ids,
            }),
        )
            .into_response()
    } else {
        let task_id = ids.pop().expect("exactly one task was created");
        (StatusCode::CREATED, Json(TaskCreated { ok: true, task_id })).into_response()
    })
}
