//! The pool overview: `GET /v1/admin/state`, and the same object as Server-Sent Events.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures::Stream;

use super::extract::AuthAdmin;
use crate::app::AppContext;
use crate::domain::status::TaskStatus;
use crate::error::ApiError;
use crate::store::{leader_record, overview};
use crate::wire::overview::{RepoStateOut, SchedulerOut, StateResponse};
use crate::wire::ErrorBody;

/// How often a stream re-reads the state to look for a change.
const STREAM_POLL: Duration = Duration::from_secs(1);
/// Unchanged state is sent again this often, as the protocol's keep-alive.
const STREAM_HEARTBEAT: Duration = Duration::from_secs(15);

/// Counts of workers and tasks, repo budgets in use, and the scheduler leader.
#[utoipa::path(get, path = "/v1/admin/state", tag = "admin", security(("admin" = [])),
    responses((status = 200, body = StateResponse), (status = 401, body = ErrorBody)))]
pub async fn get_state(
    State(app): State<AppContext>,
    _admin: AuthAdmin,
) -> Result<Json<StateResponse>, ApiError> {
    read_overview(&app).await.map(Json)
}

/// The overview as one consistent read of the database, with the leader record.
async fn read_overview(app: &AppContext) -> Result<StateResponse, ApiError> {
    let s = overview::read_overview(&app.pool, app.settings.heartbeat_timeout).await?;
    let leader = leader_record::read_leader_record(&app.pool).await?;
    let count = |st: TaskStatus| s.tasks(st);
    Ok(StateResponse {
        workers_online: s.workers_online,
        workers_total: s.workers_total,
        tasks_ready: count(TaskStatus::Ready),
        tasks_queued: count(TaskStatus::Ready),
        tasks_leased: count(TaskStatus::Leased),
        tasks_in_progress: count(TaskStatus::InProgress),
        tasks_blocked: count(TaskStatus::Blocked),
        tasks_pr_opened: count(TaskStatus::PrOpened),
        tasks_merged: count(TaskStatus::Merged),
        tasks_completed: count(TaskStatus::Completed),
        tasks_failed: count(TaskStatus::Failed),
        repositories: s
            .repositories
            .into_iter()
            .map(|r| RepoStateOut {
                repo: r.repo,
                max_open_prs: r.max_open_prs,
                current_open_prs: r.current_open_prs,
                area_locks_enabled: r.area_locks_enabled,
            })
            .collect(),
        scheduler: SchedulerOut {
            leader: leader.leader,
            last_sweep_at: leader.last_sweep_at,
        },
    })
}

/// The state as Server-Sent Events (`event: state`, JSON data): sent at once, then whenever
/// it changes (checked every second), and at least every 15 s even when unchanged. While
/// the database is unreachable the stream sends `event: error` with the error body.
#[utoipa::path(get, path = "/v1/admin/state/stream", tag = "admin", security(("admin" = [])),
    responses((status = 200, content_type = "text/event-stream", description = "`event: state` with a StateResponse as data", body = StateResponse),
              (status = 401, body = ErrorBody)))]
pub async fn stream_state(
    State(app): State<AppContext>,
    _admin: AuthAdmin,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let events = futures::stream::unfold(
        (app, None::<StateResponse>, None::<Instant>),
        |(app, last, sent_at)| async move {
            loop {
                if sent_at.is_some() {
                    tokio::time::sleep(STREAM_POLL).await;
                }
                let due = sent_at.is_none_or(|t| t.elapsed() >= STREAM_HEARTBEAT);
                match read_overview(&app).await {
                    Ok(now) if due || last.as_ref() != Some(&now) => {
                        let event = Event::default().event("state").json_data(&now);
                        let event = event.unwrap_or_else(|_| Event::default().event("error"));
                        return Some((Ok(event), (app, Some(now), Some(Instant::now()))));
                    }
                    Ok(_) => {}
                    Err(e) if due => {
                        let body =
                            serde_json::json!({"code": e.code(), "message": "state unavailable"});
                        let event = Event::default().event("error").data(body.to_string());
                        return Some((Ok(event), (app, last, Some(Instant::now()))));
                    }
                    Err(_) => {}
                }
            }
        },
    );
    // comment lines keep idle proxies from closing the connection between events
    Sse::new(events).keep_alive(KeepAlive::new().interval(STREAM_HEARTBEAT))
}
