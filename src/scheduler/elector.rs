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
use sqlx::{ConnectOptions, Connection, PgConnection};
use tokio::sync::watch;

use crate::app::AppState;
use crate::store;

/// The advisory lock key: "owp_schd" as a big-endian i64.
pub const LOCK_KEY: i64 = 0x6f77_705f_7363_6864;

pub async fn run(app: AppState, db: PgConnectOptions, mut stop: watch::Receiver<bool>) {
    let interval = app.settings.election_interval;
    let replica = app.settings.replica_id.clone();
    let mut conn: Option<PgConnection> = None;
    let mut schedule = super::Schedule::now();
    loop {
        if *stop.borrow() {
            break;
        }
        if !app.is_leader.load(Ordering::Relaxed) {
            match try_acquire(&mut conn, &db, interval).await {
                Ok(true) => {
                    set_leader(&app, true);
                    tracing::info!(replica = %replica, "gained scheduler leadership");
                    if let Err(e) = store::scheduler::record_leader(&app.pool, &replica).await {
                        tracing::warn!(error = %e, "could not record leadership");
                    }
                    schedule = super::Schedule::now();
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "election attempt failed; retrying");
                    conn = None;
                }
            }
        }
        if app.is_leader.load(Ordering::Relaxed) {
            // the lock lives with the session: no live session, no leadership. Checked every
            // tick, so a lost lock is noticed within one interval, and always before a sweep
            if let Err(e) = check_alive(conn.as_mut(), interval).await {
                tracing::error!(error = %e, replica = %replica, "lost scheduler leadership: lock connection failed");
                set_leader(&app, false);
                conn = None;
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
        step_down(&app, conn.take(), &replica).await;
    } else if let Some(c) = conn {
        let _ = c.close().await;
    }
}

async fn run_sweep(app: &AppState, replica: &str, schedule: &mut super::Schedule) {
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
            if let Err(e) = store::scheduler::record_sweep(&app.pool, replica).await {
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
    conn: &mut Option<PgConnection>,
    db: &PgConnectOptions,
    timeout: Duration,
) -> Result<bool, sqlx::Error> {
    if conn.is_none() {
        *conn = Some(connect(db, timeout).await?);
    }
    let c = conn.as_mut().expect("connected above");
    let q = sqlx::query_scalar!(r#"select pg_try_advisory_lock($1) as "locked!""#, LOCK_KEY)
        .fetch_one(c);
    tokio::time::timeout(timeout, q)
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)?
}

async fn check_alive(
    conn: Option<&mut PgConnection>,
    timeout: Duration,
) -> Result<(), sqlx::Error> {
    let c = conn.ok_or(sqlx::Error::PoolClosed)?;
    // the lock is ours while this session lives; prove the session answers in time
    let q = sqlx::query_scalar!(
        r#"select count(*) as "n!" from pg_locks
           where locktype = 'advisory' and pid = pg_backend_pid() and granted
             and ((classid::bigint << 32) | objid::bigint) = $1"#,
        LOCK_KEY
    )
    .fetch_one(c);
    match tokio::time::timeout(timeout, q).await {
        Ok(Ok(1)) => Ok(()),
        Ok(Ok(_)) => Err(sqlx::Error::Protocol("advisory lock no longer held".into())),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(sqlx::Error::PoolTimedOut),
    }
}

async fn connect(db: &PgConnectOptions, timeout: Duration) -> Result<PgConnection, sqlx::Error> {
    // server-side keepalives end a session whose client vanished silently, freeing the lock
    // no statement logging: sqlx would log SQL text (slow ones at WARN)
    let mut opts = db.clone();
    opts = opts
        .application_name("owp-leader")
        .disable_statement_logging();
    let opts = opts.options([
        ("tcp_keepalives_idle", "5"),
        ("tcp_keepalives_interval", "2"),
        ("tcp_keepalives_count", "3"),
        ("tcp_user_timeout", "10000"),
        ("statement_timeout", "5000"),
    ]);
    tokio::time::timeout(timeout.max(Duration::from_secs(1)), opts.connect())
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)?
}

async fn step_down(app: &AppState, conn: Option<PgConnection>, replica: &str) {
    if let Some(mut c) = conn {
        let unlock =
            sqlx::query_scalar!("select pg_advisory_unlock($1)", LOCK_KEY).fetch_one(&mut c);
        if let Err(e) = tokio::time::timeout(Duration::from_secs(2), unlock).await {
            tracing::warn!(error = %e, "unlock timed out; closing the session releases the lock");
        }
        let _ = c.close().await;
    }
    if let Err(e) = store::scheduler::clear_leader(&app.pool, replica).await {
        tracing::warn!(error = %e, "could not clear leader name");
    }
    set_leader(app, false);
    tracing::info!(replica = %replica, "released scheduler leadership");
}

fn set_leader(app: &AppState, leading: bool) {
    app.is_leader.store(leading, Ordering::Relaxed);
    crate::metrics::set_leader(leading);
}
