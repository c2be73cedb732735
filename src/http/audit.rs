//! The audit log: every change, newest first, filtered and paged.

use axum::extract::State;
use axum::Json;

use crate::app::AppContext;
use crate::domain::compat;
use crate::domain::input;
use crate::domain::input::Invalid;
use crate::error::ApiError;
use crate::http::extract::{ApiQuery, RepoAdmin};
use crate::http::paging::{decode_cursor, next_cursor, page_limit};
use crate::http::scope;
use crate::store::views;
use crate::store::views::AuditFilter;
use crate::wire::views::{AuditList, AuditQuery};
use crate::wire::ErrorBody;

/// The audit log, newest first, filtered; `total` counts every match. Page with `cursor`
/// (cheap at any depth) or `offset` (for clients that need it).
#[utoipa::path(get, path = "/v1/audit/events", tag = "admin", params(AuditQuery), security(("admin" = [])),
    responses((status = 200, body = AuditList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_events(
    State(app): State<AppContext>,
    RepoAdmin(admin): RepoAdmin,
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
    // v0.1's event names select this service's events
    let alias = event_type.as_deref().and_then(compat::audit_alias);
    let actor = input::optional_text("actor", q.actor.as_deref(), 200)?;
    let target = input::optional_text("target", q.target.as_deref(), 200)?;
    let repo = input::optional_text("repo", q.repo.as_deref(), 200)?;
    // a scoped admin reads its repositories' events only (worker events name none)
    let repos = scope::repos_filter(&admin, repo)?;
    let (events, total) = views::list_events(
        &app.pool,
        &AuditFilter {
            event_type: alias.map(|a| a.kind).or(event_type.as_deref()),
            to_status: alias.and_then(|a| a.to_status),
            actor: actor.as_deref(),
            target: target.as_deref(),
            repos: repos.as_deref(),
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
