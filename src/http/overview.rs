//! The pool overview: `GET /v1/admin/state`, and the same object as Server-Sent Events.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Extension;
use axum::Json;
use futures::Stream;
use futures::StreamExt;
use tokio::sync::{watch, Notify, Semaphore};

use super::extract::AuthAdmin;
use crate::app::AppContext;
use crate::domain::status::TaskStatus;
use crate::domain::trust::TrustTier;
use crate::error::ApiError;
use crate::store::{leader_record, overview};
use crate::wire::overview::{RepoStateOut, SchedulerOut, StateResponse};
use crate::wire::ErrorBody;

/// How often a stream re-reads the state to look for a change.
const STREAM_POLL: Duration = Duration::from_secs(1);
/// After a change is announced, the reader waits this long before it reads: at most ~4
/// reads a second however busy the pool (and none while no stream is open).
const NUDGE_GAP: Duration = Duration::from_millis(200);
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
    let s = overview::read_overview(
        &app.pool,
        app.settings.heartbeat_timeout,
        app.settings.pr_stale_after,
    )
    .await?;
    let leader = leader_record::read_leader_record(&app.pool).await?;
    let count = |st: TaskStatus| s.tasks(st);
    Ok(StateResponse {
        workers_online: s.workers_online,
        workers_total: s.workers_total,
        workers_by_trust_tier: TrustTier::ALL
            .iter()
            .map(|t| {
                let n = s
                    .workers_by_trust_level
                    .iter()
                    .find(|(level, _)| *level == t.level())
                    .map_or(0, |(_, n)| *n);
                (t.as_str().to_string(), n)
            })
            .collect(),
        tasks_ready: count(TaskStatus::Ready),
        tasks_queued: count(TaskStatus::Ready),
        tasks_offered: count(TaskStatus::Offered),
        tasks_leased: count(TaskStatus::Leased),
        tasks_in_progress: count(TaskStatus::InProgress),
        tasks_blocked: count(TaskStatus::Blocked),
        tasks_pr_opened: count(TaskStatus::PrOpened),
        tasks_merged: count(TaskStatus::Merged),
        tasks_completed: count(TaskStatus::Completed),
        tasks_failed: count(TaskStatus::Failed),
        tasks_cancelled: count(TaskStatus::Cancelled),
        tasks_pr_stale: s.repositories.iter().map(|r| r.stale_prs).sum(),
        repositories: s
            .repositories
            .into_iter()
            .map(|r| RepoStateOut {
                repo: r.repo,
                max_open_prs: r.max_open_prs,
                current_open_prs: r.current_open_prs,
                area_locks_enabled: r.area_locks_enabled,
                stale_prs: r.stale_prs,
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
/// the database is unreachable the stream sends `event: error` with the error body. At
/// most `OWP_SSE_MAX_STREAMS` per replica (503 beyond); every stream ends when the replica
/// shuts down.
#[utoipa::path(get, path = "/v1/admin/state/stream", tag = "admin", security(("admin" = [])),
    responses((status = 200, content_type = "text/event-stream",
        description = "A Server-Sent Events stream (text, never one JSON document): events `state`, whose `data` is a `StateResponse` as JSON (the body of `GET /v1/admin/state`), and `error`, whose `data` is an `ErrorBody`; comment lines keep the connection alive. A schema cannot describe an event's data inside the stream, so it is named here.",
        body = String),
              (status = 401, body = ErrorBody),
              (status = 503, description = "this replica serves OWP_SSE_MAX_STREAMS streams already", body = ErrorBody)))]
pub async fn stream_state(
    State(app): State<AppContext>,
    Extension(feed): Extension<StateFeed>,
    admin: AuthAdmin,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let slot = feed
        .slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Busy("this replica serves as many state streams as it may"))?;
    let rx = feed.latest.subscribe();
    feed.wake.notify_one();
    crate::metrics::sse_streams(feed.open());
    // (receiver, slot, when the last event went) -> the next event
    let events = futures::stream::unfold(
        (rx, slot, None::<Instant>),
        |(mut rx, slot, sent_at)| async move {
            if let Some(t) = sent_at {
                // a change, or the heartbeat: the same state again
                tokio::select! {
                    changed = rx.changed() => changed.ok()?,
                    () = tokio::time::sleep_until((t + STREAM_HEARTBEAT).into()) => {}
                }
            }
            loop {
                let event = to_event(&rx.borrow_and_update());
                if let Some(event) = event {
                    return Some((Ok(event), (rx, slot, Some(Instant::now()))));
                }
                // nothing read yet: wait for the reader's first read
                rx.changed().await.ok()?;
            }
        },
    );
    let stopped = {
        let app = app.clone();
        async move {
            tokio::select! {
                () = app.stopped() => {}
                () = session_ended(&app, admin.session) => {}
            }
        }
    };
    let events = events.take_until(stopped);
    // comment lines keep idle proxies from closing the connection between events
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(STREAM_HEARTBEAT)))
}

/// How often a stream opened with a dashboard session checks that the session still holds.
const SESSION_RECHECK: Duration = Duration::from_secs(5);

/// Resolves when the stream's dashboard session ends: signed out (on any replica), expired,
/// or its admin token rotated out (`store::sessions::find` and the configured tokens). A
/// stream opened with an admin token never resolves here: rotating tokens restarts the
/// replica, which ends its streams.
async fn session_ended(app: &AppContext, session: Option<[u8; 32]>) {
    let Some(digest) = session else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(SESSION_RECHECK).await;
        match crate::store::sessions::find(&app.pool, &digest).await {
            Ok(Some(s)) => {
                let still_admin = <[u8; 32]>::try_from(s.admin_digest.as_slice())
                    .ok()
                    .and_then(|d| app.admin.identify_digest(&d))
                    .is_some();
                if !still_admin {
                    return;
                }
            }
            Ok(None) => return,
            // the database is away: keep streaming what the reader has; check again
            Err(_) => {}
        }
    }
}

fn to_event(item: &Option<FeedItem>) -> Option<Event> {
    match item.as_ref()? {
        Ok(state) => Event::default().event("state").json_data(&**state).ok(),
        Err(code) => {
            let body = serde_json::json!({"code": code, "message": "state unavailable"});
            Some(Event::default().event("error").data(body.to_string()))
        }
    }
}

/// What every state stream of a replica reads: one reader task per replica reads the
/// overview every second while at least one stream is open, and sooner (200 ms later) when
/// work changes here or another replica announces a change through PostgreSQL `NOTIFY`; it
/// publishes what it read, the streams only watch. The reader stops with the router.
#[derive(Clone)]
pub struct StateFeed {
    latest: Arc<watch::Sender<Option<FeedItem>>>,
    slots: Arc<Semaphore>,
    wake: Arc<Notify>,
    max: usize,
}

/// The last read: the state, or the error code of a failed read.
type FeedItem = Result<Arc<StateResponse>, &'static str>;

impl StateFeed {
    /// Starts the replica's reader.
    pub fn spawn(app: AppContext) -> Self {
        let max = app.settings.limits.sse_max_streams;
        let feed = Self {
            latest: Arc::new(watch::Sender::new(None)),
            slots: Arc::new(Semaphore::new(max)),
            wake: Arc::new(Notify::new()),
            max,
        };
        let reader = read_loop(app.clone(), Arc::downgrade(&feed.latest), feed.wake.clone());
        app.tasks.spawn("state_stream", reader);
        feed
    }

    fn open(&self) -> usize {
        self.max - self.slots.available_permits()
    }
}

async fn read_loop(
    app: AppContext,
    latest: std::sync::Weak<watch::Sender<Option<FeedItem>>>,
    wake: Arc<Notify>,
) {
    loop {
        let Some(tx) = latest.upgrade() else {
            return; // the router is gone
        };
        let streams = tx.receiver_count();
        crate::metrics::sse_streams(streams);
        if streams == 0 {
            // a stream opened later must not get a stale read
            tx.send_replace(None);
            drop(tx);
            // idle: no database reads until a stream opens (or the router goes)
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(STREAM_HEARTBEAT) => {}
                () = app.stopped() => return,
            }
            continue;
        }
        let item = read_overview(&app)
            .await
            .map(Arc::new)
            .map_err(|e| e.code());
        tx.send_if_modified(|cur| {
            let same = match (&*cur, &item) {
                (Some(Ok(a)), Ok(b)) => a == b,
                (Some(Err(a)), Err(b)) => a == b,
                _ => false,
            };
            if !same {
                *cur = Some(item);
            }
            !same
        });
        drop(tx);
        tokio::select! {
            () = tokio::time::sleep(STREAM_POLL) => {}
            // work changed here or on another replica (PostgreSQL NOTIFY): read soon, with
            // a short gap so a burst of changes costs one read, not one each
            () = app.long_poll.changed() => tokio::time::sleep(NUDGE_GAP).await,
            () = app.stopped() => return,
        }
    }
}
