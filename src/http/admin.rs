//! Maintainer endpoints: repositories with review budgets, tasks, and the pool overview.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{parse_value, ApiJson, ApiJsonAny, AuthAdmin};
use crate::app::AppState;
use crate::domain::ids::TaskId;
use crate::domain::input::{self, Checked, Invalid};
use crate::error::ApiError;
use crate::store::repos::{self, RepoSettings};
use crate::store::tasks::{self, Created, NewTask};

#[derive(Deserialize, ToSchema)]
pub struct RepoRequest {
    /// 1-200 characters, e.g. owner/name.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub repo: String,
    /// Review budget: most tasks open at once (0-10,000, default 3; 0 pauses the repo).
    #[serde(default, deserialize_with = "super::extract::lenient_int")]
    #[schema(minimum = 0, maximum = 10000)]
    pub max_open_prs: Option<i64>,
    /// At most one open task per (repo, area) when true (default).
    pub area_locks_enabled: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct RepoResponse {
    pub ok: bool,
    pub repo: String,
}

/// Create a repository, or update its settings if it exists.
#[utoipa::path(post, path = "/v1/admin/repos", tag = "admin", request_body = RepoRequest, security(("admin" = [])),
    responses((status = 201, description = "created", body = RepoResponse), (status = 200, description = "updated", body = RepoResponse),
              (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody)))]
pub async fn upsert_repo(
    State(app): State<AppState>,
    _admin: AuthAdmin,
    ApiJson(req): ApiJson<RepoRequest>,
) -> Result<(StatusCode, Json<RepoResponse>), ApiError> {
    let settings = RepoSettings {
        repo: input::text("repo", &req.repo, 1, 200)?,
        max_open_prs: input::int_in("max_open_prs", req.max_open_prs, 3, 0, 10_000)?,
        area_locks_enabled: req.area_locks_enabled.unwrap_or(true),
    };
    let created = repos::upsert_repo(&app.pool, &settings).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(RepoResponse {
            ok: true,
            repo: settings.repo,
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct TaskRequest {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub repo: String,
    /// 1-300 characters.
    #[schema(min_length = 1, max_length = 300, pattern = r"\S")]
    pub title: String,
    /// Up to 20,000 characters.
    #[schema(max_length = 20000)]
    pub description: Option<String>,
    /// Skills a worker needs, all of them (case-insensitive).
    #[serde(default)]
    #[schema(value_type = Option<Vec<super::SkillTag>>, max_items = 50)]
    pub required_skills: Option<Vec<String>>,
    /// 1-100, default 1.
    #[serde(default, deserialize_with = "super::extract::lenient_int")]
    #[schema(minimum = 1, maximum = 100)]
    pub estimate_points: Option<i64>,
    /// Higher is claimed first; default 10.
    #[serde(default, deserialize_with = "super::extract::lenient_int")]
    #[schema(minimum = -2147483648i64, maximum = 2147483647i64)]
    pub priority: Option<i64>,
    /// Up to 100 characters; with area locks on, one open task per area.
    #[schema(max_length = 100)]
    pub area: Option<String>,
    /// 0-3, default 0.
    #[serde(default, deserialize_with = "super::extract::lenient_int")]
    #[schema(minimum = 0, maximum = 3)]
    pub tier: Option<i64>,
    /// 1-100, default 3.
    #[serde(default, deserialize_with = "super::extract::lenient_int")]
    #[schema(minimum = 1, maximum = 100)]
    pub max_attempts: Option<i64>,
}

/// One task, or an array of up to 5,000 created in one transaction.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // the OpenAPI shape of the body; the handler reads JSON values
pub enum TasksBody {
    One(TaskRequest),
    Many(Vec<TaskRequest>),
}

/// `{ok, task_id}` for one task, `{ok, task_ids}` for an array.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum TasksCreatedBody {
    One(TaskCreated),
    Many(TasksCreated),
}

impl TaskRequest {
    fn validate(self) -> Checked<NewTask> {
        Ok(NewTask {
            id: TaskId::generate(),
            repo: input::text("repo", &self.repo, 1, 200)?,
            title: input::text("title", &self.title, 1, 300)?,
            description: input::optional_text("description", self.description.as_deref(), 20_000)?
                .unwrap_or_default(),
            required_skills: input::skills(
                "required_skills",
                self.required_skills.as_deref().unwrap_or_default(),
            )?,
            estimate_points: input::int_in("estimate_points", self.estimate_points, 1, 1, 100)?,
            priority: input::int_in(
                "priority",
                self.priority,
                10,
                i32::MIN.into(),
                i32::MAX.into(),
            )?,
            area: input::optional_text("area", self.area.as_deref(), 100)?,
            tier: input::int_in("tier", self.tier, 0, 0, 3)?,
            max_attempts: input::int_in("max_attempts", self.max_attempts, 3, 1, 100)?,
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct TaskCreated {
    pub ok: bool,
    pub task_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct TasksCreated {
    pub ok: bool,
    pub task_ids: Vec<String>,
}

/// The most tasks one bulk request may create.
pub const MAX_BULK: usize = 5_000;

/// Create one task, or (with a JSON array) many in one transaction.
#[utoipa::path(post, path = "/v1/admin/tasks", tag = "admin", security(("admin" = [])),
    request_body(content = TasksBody, description = "one task, or a JSON array of them (bulk import, all or nothing)"),
    responses((status = 201, description = "one task created, or `{ok, task_ids}` for an array", body = TasksCreatedBody),
              (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 404, description = "the repo does not exist", body = crate::error::ErrorBody),
              (status = 413, body = crate::error::ErrorBody)))]
pub async fn create_tasks(
    State(app): State<AppState>,
    _admin: AuthAdmin,
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
        .map(|(i, r)| {
            r.validate()
                .map_err(|e| if bulk { e.at_index(i) } else { e })
        })
        .collect::<Checked<Vec<_>>>()?;
    let ids = match tasks::insert_tasks(&app.pool, &tasks).await? {
        Created::Ok(ids) => ids,
        Created::UnknownRepo(_) => return Err(ApiError::NotFound("repo")),
    };
    crate::metrics::tasks_created(ids.len());
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
