//! Leader election with a session-level advisory lock on a dedicated connection.
//!
//! States and moves (checked every `election_interval`):
//! - follower: connect if needed, `pg_try_advisory_lock`; on success -> leader.
//! - leader: every tick (so before each sweep), prove the lock session is alive with a bounded query.
//!   If it fails or hangs, the lock may already be someone else's: drop the connection,
//!   stop duties at once -> follower.
//! - on stop (SIGTERM): a leader finishes the sweep in progress, unlocks explicitly and
//!   clears its name, so the next leader takes over on its next election tick.
//!
//! The session must reach Postgres directly: a transaction-pooling proxy (PgBouncer in
//! transaction mode) hands the session to others and silently breaks the lock, hence
//! `OWP_LEADER_DATABASE_URL`. sqlx exposes no client-side socket keepalive, so a silent
//! network cut is detected on our side by the bounded check query, and on the server side
//! by `tcp_keepalives_*`/`tcp_user_timeout`, which end the dead session and free the lock.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use tokio::sync::watch;

use crate::app::AppContext;
use crate::store::leader_lock::LockSession;
use crate::store::leader_record;

pub async fn run(app: AppContext, db: PgConnectOptions, mut stop: watch::Receiver<bool>) {
    let interval = app.settings.election_interval;
    let replica = app.settings.replica_id.clone();
    let mut session: Option<LockSession> = None;
    let mut schedule = super::Schedule::now();
    loop {
        if *stop.borrow() {
            break;
        }
        if !app.is_leader.load(Ordering::Relaxed) {
            match try_acquire(&mut session, &db, interval).await {
                Ok(true) => {
                    set_leader(&app, true);
                    tracing::info!(replica = %replica, "gained scheduler leadership");
                    if let Err(e) = leader_record::record_leader(&app.pool, &replica).await {
                        tracing::warn!(error = %e, "could not record leadership");
                    }
                    schedule = super::Schedule::now();
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "election attempt failed; retrying");
                    session = None;
                }
            }
        }
        if app.is_leader.load(Ordering::Relaxed) {
            // the lock lives with the session: no live session, no leadership. Checked every
            // tick, so a lost lock is noticed within one interval, and always before a sweep
            let alive = match session.as_mut() {
                Some(s) => s.check_held(interval).await,
                None => Err(sqlx::Error::PoolClosed),
            };
            if let Err(e) = alive {
                tracing::error!(error = %e, replica = %replica, "lost scheduler leadership: lock connection failed");
                set_leader(&app, false);
                session = None;
                continue;
            }
            if Instant::now() >= schedule.next_due() {
                run_sweep(&app, &replica, &mut schedule).await;
            }
        }
        let nap = if app.is_leader.load(Ordering::Relaxed) {
            schedule
                .next_due()
                .saturating_duration_since(Instant::now())
                .min(interval)
        } else {
            interval
        };
        tokio::select! {
            () = tokio::time::sleep(nap) => {}
            _ = stop.changed() => {}
        }
    }
    if app.is_leader.load(Ordering::Relaxed) {
        step_down(&app, session.take(), &replica).await;
    } else if let Some(s) = session {
        s.close().await;
    }
}

async fn run_sweep(app: &AppContext, replica: &str, schedule: &mut super::Schedule) {
    match super::sweep_due(app, schedule).await {
        Ok(None) => {}
        Ok(Some(report)) => {
            if report.expired.leases + report.offline.workers + report.offline.requeued > 0 {
                tracing::info!(
                    expired = report.expired.leases,
                    requeued = report.expired.requeued + report.offline.requeued,
                    failed = report.expired.failed + report.offline.failed,
                    workers_offline = report.offline.workers,
                    elapsed_ms = report.elapsed.as_millis() as u64,
                    "sweep"
                );
            }
            crate::metrics::sweep_completed(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
            if let Err(e) = leader_record::record_sweep(&app.pool, replica).await {
                tracing::warn!(error = %e, "could not record sweep");
            }
        }
        Err(e) => {
            // logged and retried on the next tick; the duties are safe to repeat
            tracing::warn!(error = %e, "sweep failed");
            *schedule = super::Schedule::now();
        }
    }
}

async fn try_acquire(
    session: &mut Option<LockSession>,
    db: &PgConnectOptions,
    timeout: Duration,
) -> Result<bool, sqlx::Error> {
    let s = match session {
        Some(s) => s,
        None => session.insert(LockSession::connect(db, timeout).await?),
    };
    s.try_lock(timeout).await
}

async fn step_down(app: &AppContext, session: Option<LockSession>, replica: &str) {
    if let Some(s) = session {
        s.release(Duration::from_secs(2)).await;
    }
    if let Err(e) = leader_record::clear_leader(&app.pool, replica).await {
        tracing::warn!(error = %e, "could not clear leader name");
    }
    set_leader(app, false);
    tracing::info!(replica = %replica, "released scheduler leadership");
}

fn set_leader(app: &AppContext, leading: bool) {
    app.is_leader.store(leading, Ordering::Relaxed);
    crate::metrics::set_leader(leading);
}
