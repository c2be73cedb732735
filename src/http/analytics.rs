//! `GET /v1/analytics/repositories/{owner}/{repo}`: how a repo's contributions flow.

use axum::extract::{Path, State};
use axum::Json;

use super::extract::{ApiQuery, AuthAdmin, RepoAdmin};
use crate::app::AppContext;
use crate::domain::analytics::{bottlenecks, Period, Signals};
use crate::domain::input::Invalid;
use crate::error::ApiError;
use crate::store::analytics;
use crate::wire::analytics::{AnalyticsQuery, RepoAnalytics, RepoMetrics};
use crate::wire::ErrorBody;

fn rate(part: i64, whole: i64) -> f64 {
    if whole <= 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Throughput, timings, review wait and bottlenecks of one repository over a period.
#[utoipa::path(get, path = "/v1/analytics/repositories/{owner}/{repo}", tag = "admin",
    security(("admin" = [])),
    params(("owner" = String, Path, description = "First part of the repo name"),
           ("repo" = String, Path, description = "Second part of the repo name"),
           AnalyticsQuery),
    responses((status = 200, body = RepoAnalytics), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn repo_analytics(
    State(app): State<AppContext>,
    RepoAdmin(admin): RepoAdmin,
    Path((owner, name)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<AnalyticsQuery>,
) -> Result<Json<RepoAnalytics>, ApiError> {
    analytics_of(&app, &admin, format!("{owner}/{name}"), q).await
}

/// The same, for a repo named by one path segment (percent-encoded, e.g. `acme%2Fwidgets`
/// or a name without a slash such as `awesome-project`).
#[utoipa::path(get, path = "/v1/analytics/repositories/{repo}", tag = "admin",
    security(("admin" = [])),
    params(("repo" = String, Path, description = "The repo name, percent-encoded"), AnalyticsQuery),
    responses((status = 200, body = RepoAnalytics), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn repo_analytics_by_name(
    State(app): State<AppContext>,
    RepoAdmin(admin): RepoAdmin,
    Path(repo): Path<String>,
    ApiQuery(q): ApiQuery<AnalyticsQuery>,
) -> Result<Json<RepoAnalytics>, ApiError> {
    analytics_of(&app, &admin, repo, q).await
}

async fn analytics_of(
    app: &AppContext,
    admin: &AuthAdmin,
    repo: String,
    q: AnalyticsQuery,
) -> Result<Json<RepoAnalytics>, ApiError> {
    admin.may(&repo)?;
    let period = match q.period.as_deref() {
        None => Period::Month,
        Some(p) => p.parse().map_err(|e| Invalid::new("period", e))?,
    };
    if repo.contains('\0') {
        return Err(ApiError::NotFound("repo"));
    }
    let f = analytics::repo_figures(&app.pool, &repo, period.duration())
        .await?
        .ok_or(ApiError::NotFound("repo"))?;
    let lease_expiry_rate = rate(f.leases_expired, f.leases_ended);
    let signals = Signals {
        work_p50_s: f.p50_completion_time_s,
        review_wait_p50_s: f.review_wait_p50_s,
        queue_wait_p50_s: f.queue_wait_p50_s,
        budget_full_with_ready: f.budget_full_with_ready,
        lease_expiry_rate,
        unclear_rejections: f.unclear_rejections,
        rejections: f.rejections,
    };
    let window_s = period.duration().as_secs_f64();
    let worker_utilization = if f.workers > 0 {
        f.held_s / (f.workers as f64 * window_s)
    } else {
        0.0
    };
    Ok(Json(RepoAnalytics {
        repo,
        period: period.as_str().into(),
        metrics: RepoMetrics {
            tasks_created: f.tasks_created,
            tasks_completed: f.tasks_completed,
            tasks_merged: f.tasks_merged,
            tasks_failed: f.tasks_failed,
            avg_completion_time_s: f.avg_completion_time_s,
            p50_completion_time_s: f.p50_completion_time_s,
            p90_completion_time_s: f.p90_completion_time_s,
            pr_merge_rate: rate(f.prs_merged, f.prs_merged + f.prs_closed),
            lease_expiry_rate,
            worker_utilization,
            review_wait_p50_s: f.review_wait_p50_s,
            queue_wait_p50_s: f.queue_wait_p50_s,
            bottlenecks: bottlenecks(&signals)
                .into_iter()
                .map(String::from)
                .collect(),
        },
    }))
}
