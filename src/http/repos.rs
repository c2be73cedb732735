//! Repositories, the resource: register or update one (its review budget and policy),
//! and list them with their open slots.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use crate::app::AppContext;
use crate::domain::input;
use crate::error::ApiError;
use crate::http::extract::{ApiJson, RepoAdmin};
use crate::store::repos::{RepoSettings, Upserted};
use crate::store::{repos, views};
use crate::wire::admin::{RepoRequest, RepoResponse};
use crate::wire::views::RepoList;
use crate::wire::ErrorBody;

/// Create a repository, or update its settings if it exists.
#[utoipa::path(post, path = "/v1/admin/repos", tag = "admin", request_body = RepoRequest, security(("admin" = [])),
    responses((status = 201, description = "created", body = RepoResponse), (status = 200, description = "updated", body = RepoResponse),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 409, description = "details: areas_open_twice: <areas> (area locks cannot be turned on yet)", body = ErrorBody)))]
pub async fn upsert_repo(
    State(app): State<AppContext>,
    RepoAdmin(admin): RepoAdmin,
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
        allow_workers: match worker_ids("allow_workers", req.allow_workers.as_deref())? {
            None => None,
            Some(ids) if ids.is_empty() => Some(None),
            Some(ids) => Some(Some(ids)),
        },
        deny_workers: worker_ids("deny_workers", req.deny_workers.as_deref())?,
        min_trust_tier: req
            .min_trust_tier
            .as_ref()
            .map(|t| input::trust_tier("min_trust_tier", t).map(|t| t.level()))
            .transpose()?,
        claim_approval: req.claim_approval,
        fair_share: req
            .fair_share
            .map(|w| input::int_in("fair_share", Some(i64::from(w)), 1, 1, 1000))
            .transpose()?,
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
    admin.may(&settings.repo)?;
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

/// Up to 1,000 worker ids; `None` when the field was omitted.
fn worker_ids(field: &str, ids: Option<&[String]>) -> input::Checked<Option<Vec<String>>> {
    ids.map(|ids| input::text_list(field, ids, 1000, 100))
        .transpose()
}

/// Every repository with its settings, open slots, ready tasks, held areas and stale PRs.
#[utoipa::path(get, path = "/v1/admin/repos", tag = "admin", security(("admin" = [])),
    responses((status = 200, body = RepoList), (status = 401, body = ErrorBody)))]
pub async fn list_repos(
    State(app): State<AppContext>,
    RepoAdmin(admin): RepoAdmin,
) -> Result<Json<RepoList>, ApiError> {
    let stale = app.settings.pr_stale_after.as_secs_f64();
    let mut repositories = views::list_repos(&app.pool, stale).await?;
    repositories.retain(|r| admin.scope.admits(&r.repo));
    Ok(Json(RepoList { repositories }))
}
