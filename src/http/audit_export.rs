//! The audit log as a download: every event matching the list's filters, newest first, as
//! CSV or JSON lines, streamed page by page (a page per query, so the export holds no
//! transaction open and no more than a page in memory).

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::app::AppContext;
use crate::domain::compat;
use crate::domain::input::{self, Invalid};
use crate::error::ApiError;
use crate::http::extract::{ApiQuery, RepoAdmin};
use crate::http::scope;
use crate::store::views::{self, AuditFilter};
use crate::wire::views::{AuditEvent, AuditExportQuery};
use crate::wire::ErrorBody;

/// The most events one export carries; narrow the filters (`since`) for more.
pub const MAX_EXPORT: usize = 100_000;
const PAGE: i64 = 1_000;

#[derive(Clone, Copy)]
enum Format {
    Csv,
    Ndjson,
}

/// The filters of `GET /v1/audit/events`, owned: the stream outlives the request's borrow.
struct Filters {
    event_type: Option<String>,
    to_status: Option<&'static str>,
    actor: Option<String>,
    target: Option<String>,
    repos: Option<Vec<String>>,
    since: Option<chrono::DateTime<chrono::Utc>>,
}

/// Every event matching the filters (`GET /v1/audit/events`' own, less the paging), newest
/// first, up to 100,000, as a file.
#[utoipa::path(get, path = "/v1/audit/export", tag = "admin", params(AuditExportQuery), security(("admin" = [])),
    responses((status = 200, description = "the events as an attachment, in the format asked for",
                content((String = "application/x-ndjson"), (String = "text/csv"))),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn export_events(
    State(app): State<AppContext>,
    RepoAdmin(admin): RepoAdmin,
    ApiQuery(q): ApiQuery<AuditExportQuery>,
) -> Result<Response, ApiError> {
    let format = match q.format.as_deref() {
        None | Some("ndjson") => Format::Ndjson,
        Some("csv") => Format::Csv,
        Some(_) => return Err(Invalid::new("format", "csv or ndjson").into()),
    };
    let event_type = input::optional_text("event_type", q.event_type.as_deref(), 100)?;
    let alias = event_type.as_deref().and_then(compat::audit_alias);
    let filters = Filters {
        event_type: alias.map(|a| a.kind.to_string()).or(event_type),
        to_status: alias.and_then(|a| a.to_status),
        actor: input::optional_text("actor", q.actor.as_deref(), 200)?,
        target: input::optional_text("target", q.target.as_deref(), 200)?,
        repos: scope::repos_filter(
            &admin,
            input::optional_text("repo", q.repo.as_deref(), 200)?,
        )?,
        since: q.since,
    };
    let (mime, name) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "owp-audit.csv"),
        Format::Ndjson => ("application/x-ndjson", "owp-audit.ndjson"),
    };
    let head = match format {
        Format::Csv => Some(Ok::<_, std::io::Error>(
            "id,timestamp,event_type,actor,target,details\n".to_string(),
        )),
        Format::Ndjson => None,
    };
    let pages = pages(app, filters, format);
    let body = futures::StreamExt::chain(futures::stream::iter(head), pages);
    Ok((
        [
            (header::CONTENT_TYPE, mime.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// The matching events as text, a page (one query) at a time, up to [`MAX_EXPORT`].
fn pages(
    app: AppContext,
    filters: Filters,
    format: Format,
) -> impl futures::Stream<Item = Result<String, std::io::Error>> {
    futures::stream::unfold(
        (app, filters, None::<i64>, 0usize, false),
        move |(app, f, before, sent, done)| async move {
            if done || sent >= MAX_EXPORT {
                return None;
            }
            let page = views::events_page(
                &app.pool,
                &AuditFilter {
                    event_type: f.event_type.as_deref(),
                    to_status: f.to_status,
                    actor: f.actor.as_deref(),
                    target: f.target.as_deref(),
                    repos: f.repos.as_deref(),
                    since: f.since,
                    before,
                    offset: 0,
                    limit: PAGE.min((MAX_EXPORT - sent) as i64),
                },
            )
            .await;
            match page {
                Err(e) => {
                    // the answer has started: a failure can only cut the file short
                    tracing::warn!(error = %e, "audit export stopped");
                    Some((
                        Err(std::io::Error::other("the database went away")),
                        (app, f, before, sent, true),
                    ))
                }
                Ok(events) if events.is_empty() => None,
                Ok(events) => {
                    let last = events.last().map(|e| e.id);
                    let full = events.len() as i64 == PAGE;
                    let text: String = events.iter().map(|e| line(format, e)).collect();
                    let n = sent + events.len();
                    Some((Ok(text), (app, f, last, n, !full)))
                }
            }
        },
    )
}

fn line(format: Format, e: &AuditEvent) -> String {
    match format {
        Format::Ndjson => {
            let mut s = serde_json::to_string(e).unwrap_or_default();
            s.push('\n');
            s
        }
        Format::Csv => {
            let cells = [
                e.id.to_string(),
                e.timestamp.to_rfc3339(),
                e.event_type.clone(),
                e.actor.clone().unwrap_or_default(),
                e.target.clone().unwrap_or_default(),
                e.details.to_string(),
            ];
            let mut s = cells
                .iter()
                .map(|c| csv_cell(c))
                .collect::<Vec<_>>()
                .join(",");
            s.push('\n');
            s
        }
    }
}

/// One CSV cell: quoted when it holds a separator, quote or line break, and never read as a
/// formula by a spreadsheet (a worker's message is a stranger's text: `=HYPERLINK(…)`).
fn csv_cell(raw: &str) -> String {
    let guarded = if raw.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{raw}")
    } else {
        raw.to_string()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn csv_cells_are_quoted_and_never_formulas() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("-1"), "'-1");
        assert_eq!(csv_cell("two\nlines"), "\"two\nlines\"");
    }
}
