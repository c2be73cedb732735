//! The pool overview: `GET /v1/admin/state`, and the same object as Server-Sent Events.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use chrono::{DateTime, Utc};
use futures::Stream;
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::AuthAdmin;
use crate::app::AppState;
use crate::domain::status::TaskStatus;
use crate::error::ApiError;
use crate::store::{scheduler, state};

/// How often a stream re-reads the state to look for a change.
const STREAM_POLL: Duration = Duration::from_secs(1);
/// Unchanged state is sent again this often, as the protocol's keep-alive.
const STREAM_HEARTBEAT: Duration = Duration::from_secs(15);

#[derive(Serialize, ToSchema, PartialEq)]
pub struct RepoStateOut {
    pub repo: String,
    pub max_open_prs: i32,
    /// Open slots in use: tasks leased, in_progress, blocked or pr_opened.
    pub current_open_prs: i64,
    pub area_locks_enabled: bool,
}

#[derive(Serialize, ToSchema, PartialEq)]
pub struct SchedulerOut {
    /// Replica id of the scheduler leader, if one leads.
    pub leader: Option<String>,
    pub last_sweep_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema, PartialEq)]
pub struct StateResponse {
    pub workers_online: i64,
    pub workers_total: i64,
    pub tasks_ready: i64,
    /// v0.1 name of tasks_ready.
    pub tasks_queued: i64,
    pub tasks_leased: i64,
    pub tasks_in_progress: i64,
    pub tasks_blocked: i64,
    pub tasks_pr_opened: i64,
    pub tasks_merged: i64,
    pub tasks_completed: i64,
    pub tasks_failed: i64,
    pub repositories: Vec<RepoStateOut>,
    pub scheduler: SchedulerOut,
}

/// Counts of workers and tasks, repo budgets in use, and the scheduler leader.
#[utoipa::path(get, path = "/v1/admin/state", tag = "admin", security(("admin" = [])),
    responses((status = 200, body = StateResponse), (status = 401, body = crate::error::ErrorBody)))]
pub async fn get_state(
    State(app): State<AppState>,
    _admin: AuthAdmin,
) -> Result<Json<StateResponse>, ApiError> {
    read_state(&app).await.map(Json)
}

/// The overview as one consistent read of the database.
async fn read_state(app: &AppState) -> Result<StateResponse, ApiError> {
    let s = state::read_state(&app.pool, app.settings.heartbeat_timeout.as_secs_f64()).await?;
    let sched = scheduler::read_state(&app.pool).await?;
    let count = |st: TaskStatus| {
        s.tasks_by_status
            .iter()
            .find(|(name, _)| name == st.as_str())
            .map_or(0, |(_, n)| *n)
    };
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
            leader: sched.leader,
            last_sweep_at: sched.last_sweep_at,
        },
    })
}

/// The state as Server-Sent Events (`event: state`, JSON data): sent at once, then whenever
/// it changes (checked every second), and at least every 15 s even when unchanged. While
/// the database is unreachable the stream sends `event: error` with the error body.
#[utoipa::path(get, path = "/v1/admin/state/stream", tag = "admin", security(("admin" = [])),
    responses((status = 200, content_type = "text/event-stream", description = "`event: state` with a StateResponse as data", body = StateResponse),
              (status = 401, body = crate::error::ErrorBody)))]
pub async fn stream_state(
    State(app): State<AppState>,
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
                match read_state(&app).await {
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
