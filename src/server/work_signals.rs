//! The replica's work-signal service, for long polls (`GET /v1/work?wait=N`):
//! - local changes call `LongPoll::work_ready`, which wakes this replica's waiting polls
//!   at once and counts the change for the other replicas; every `DEBOUNCE` the count goes
//!   out as one `NOTIFY` (one statement per interval, however busy the replica);
//! - other replicas' notifications arrive on one `LISTEN` connection and wake as many of
//!   this replica's waiting polls as they announce (`long_poll` passes them on from there);
//! - a lost notification (a dropped connection, a change made straight in SQL) costs at
//!   most `FALLBACK`: while polls wait, a cheap check for claimable work wakes one.

use std::time::{Duration, Instant};

use crate::app::AppContext;
use crate::long_poll::WakeCause;
use crate::store::signals::{self, Listener};

/// The longest a change waits before other replicas hear of it.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// How often waiting polls are checked against the queue when no signal came.
const FALLBACK: Duration = Duration::from_secs(1);
/// Pause before reconnecting a lost `LISTEN` connection.
const RECONNECT: Duration = Duration::from_secs(1);

/// Runs until the replica stops.
pub async fn run(app: AppContext) {
    let mut listener: Option<Listener> = None;
    let mut next_connect = Instant::now();
    let mut tick = tokio::time::interval(DEBOUNCE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_fallback = Instant::now();
    let stopped = app.stopped();
    tokio::pin!(stopped);
    loop {
        if listener.is_none() && Instant::now() >= next_connect {
            match Listener::connect(&app.pool).await {
                Ok(l) => {
                    listener = Some(l);
                    // signals may have been missed while not listening
                    app.long_poll.wake(1, WakeCause::Reconnect);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "work signals: cannot listen; polls fall back to checking every second");
                    next_connect = Instant::now() + RECONNECT;
                }
            }
        }
        let signal = async {
            match listener.as_mut() {
                Some(l) => l.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = &mut stopped => break,
            s = signal => match s {
                Ok(Some(s)) if s.from != app.instance => app.long_poll.wake(s.hint, WakeCause::Remote),
                Ok(Some(_)) => {}
                Ok(None) => app.long_poll.wake(1, WakeCause::Reconnect),
                Err(e) => {
                    tracing::warn!(error = %e, "work signals: listen connection lost");
                    listener = None;
                    next_connect = Instant::now() + RECONNECT;
                }
            },
            _ = tick.tick() => {
                crate::metrics::long_polls_waiting(app.long_poll.waiting());
                let pending = app.long_poll.take_unannounced();
                if pending > 0 {
                    if let Err(e) = signals::notify(&app.pool, &app.instance, pending).await {
                        tracing::debug!(error = %e, "work signals: notify failed; other replicas fall back");
                    }
                }
                if app.long_poll.waiting() > 0 && last_fallback.elapsed() >= FALLBACK {
                    last_fallback = Instant::now();
                    if matches!(signals::ready_work_exists(&app.pool).await, Ok(true)) {
                        app.long_poll.wake(1, WakeCause::Fallback);
                    }
                }
            }
        }
    }
}
