//! Stale PRs over the API: list them, and close them in bulk, so a PR nobody merges or
//! closes cannot hold its repo's review slot forever. A repository-scoped admin sees and
//! closes its own repositories' only (another's task is skipped as `not_stale`, as a task that does not exist is).

use axum::extract::State;
use axum::Json;

use super::extract::{ApiJson, ApiQuery, RepoAdmin};
use super::scope;
use crate::app::AppContext;
use crate::domain::ids::TaskId;
use crate::domain::input::{self, Invalid};
use crate::domain::status::Report;
use crate::domain::transition::Actor;
use crate::error::ApiError;
use crate::store::stale_prs;
use crate::store::tasks::{self, Artifact, StatusResult, StatusUpdate};
use crate::wire::stale_prs::{
    CloseStaleRequest, CloseStaleResponse, Skipped, StalePrsQuery, StalePrsResponse,
};
use crate::wire::ErrorBody;

/// Most tasks one call lists or closes.
const MAX_BATCH: i64 = 500;

/// `pr_opened` tasks with no merge or close for `OWP_PR_STALE_AFTER`, oldest first.
#[utoipa::path(get, path = "/v1/admin/stale-prs", tag = "admin", params(StalePrsQuery), security(("admin" = [])),
    responses((status = 200, body = StalePrsResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_stale_prs(
    State(app): State<AppContext>,
    RepoAdmin(admin): RepoAdmin,
    ApiQuery(q): ApiQuery<StalePrsQuery>,
) -> Result<Json<StalePrsResponse>, ApiError> {
    let limit = input::int_in("limit", q.limit, 100, 1, MAX_BATCH)?;
    let repo = input::optional_text("repo", q.repo.as_deref(), 200)?;
    let repos = scope::repos_filter(&admin, repo)?;
    let stale_after = app.settings.pr_stale_after;
    let tasks = stale_prs::list(&app.pool, stale_after, repos.as_deref(), i64::from(limit)).await?;
    Ok(Json(StalePrsResponse {
        stale_after_seconds: stale_after.as_secs(),
        tasks,
    }))
}

/// Closes stale PRs as `closed` (a failed attempt, audited with the admin as actor): the
/// named ones, or the oldest up to 500. A task that is not (or no longer) a stale PR is
/// skipped, never changed.
#[utoipa::path(post, path = "/v1/admin/stale-prs/close", tag = "admin", request_body(content = Option<CloseStaleRequest>, description = "optional: no body closes the oldest 500 stale PRs"), security(("admin" = [])),
    responses((status = 200, body = CloseStaleResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn close_stale_prs(
    State(app): State<AppContext>,
    RepoAdmin(admin): RepoAdmin,
    ApiJson(req): ApiJson<CloseStaleRequest>,
) -> Result<Json<CloseStaleResponse>, ApiError> {
    let stale_after = app.settings.pr_stale_after;
    // (wanted, the stale ones among them): the listed ones are stale by construction
    let (wanted, stale): (Vec<String>, Vec<String>) = match req.task_ids {
        Some(ids) if ids.is_empty() || ids.len() > MAX_BATCH as usize => {
            return Err(Invalid::new("task_ids", "must hold 1-500 task ids").into());
        }
        Some(ids) => {
            let in_scope = admin.scope.repos();
            let stale = stale_prs::which_are_stale(&app.pool, stale_after, &ids, in_scope).await?;
            (ids, stale)
        }
        None => {
            let repo = input::optional_text("repo", req.repo.as_deref(), 200)?;
            let repos = scope::repos_filter(&admin, repo)?;
            let listed: Vec<String> =
                stale_prs::list(&app.pool, stale_after, repos.as_deref(), MAX_BATCH)
                    .await?
                    .into_iter()
                    .map(|t| t.task_id)
                    .collect();
            (listed.clone(), listed)
        }
    };
    let message = format!(
        "stale: no merge or close for {}",
        humantime::format_duration(stale_after)
    );
    let mut out = CloseStaleResponse {
        closed: Vec::new(),
        skipped: Vec::new(),
    };
    for id in wanted {
        if !stale.contains(&id) {
            out.skipped.push(Skipped {
                task_id: id,
                reason: "not_stale".into(),
            });
            continue;
        }
        let gh_host = app.settings.github.web_host();
        let update = StatusUpdate {
            task_id: &TaskId::from(id.clone()),
            actor: Actor::Admin,
            report: Report::Closed,
            lease_id: None,
            message: Some(&message),
            artifact: Artifact::default(),
            lease_ttl: app.settings.lease_ttl,
            backoff: app.backoff(),
            audit_actor: &admin.actor,
            quality: None,
            on_time_per_point: app.settings.on_time_per_point,
            github_host: &gh_host,
            tier_lease_ttl: &app.settings.tier_lease_ttl,
            max_artifacts_per_lease: app.settings.max_artifacts_per_lease,
            pr_evidence: None,
        };
        // each in its own short transaction; one merged meanwhile is skipped, not closed
        match tasks::update_status(&app.pool, &update).await? {
            StatusResult::Updated { .. } => out.closed.push(id),
            StatusResult::NotFound => out.skipped.push(Skipped {
                task_id: id,
                reason: "not_found".into(),
            }),
            _ => out.skipped.push(Skipped {
                task_id: id,
                reason: "not_stale".into(),
            }),
        }
    }
    app.long_poll.work_ready(out.closed.len());
    Ok(Json(out))
}
