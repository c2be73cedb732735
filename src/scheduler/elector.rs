//! Leader election with a session-level advisory lock on a dedicated connection.
//!
//! States and moves (checked every `election_interval`):
//! - follower: connect if needed, `pg_try_advisory_lock`; on success -> leader.
//! - leader: every tick (so before each sweep), prove the lock session is alive with a bounded query.
//!   If it fails or hangs, the lock may already be someone else's: drop the connection,
//!   stop duties at once -> follower.
//! - leader whose sweeps fail, every duty, `MAX_FAILED_SWEEPS` times in a row (its request
//!   pool is broken, say): steps down and sits out a few ticks -> follower, so a healthy
//!   replica leads.
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

use crate::app::AppContext;
use crate::store::leader_lock::LockSession;
use crate::store::leader_record;

/// Sweeps in a row in which every duty failed before the leader steps down.
pub const MAX_FAILED_SWEEPS: u32 = 3;
/// Election ticks a replica that stepped down for failing sweeps sits out, so that a
/// healthy replica takes the lock.
const SIT_OUT_TICKS: u32 = 5;

struct Elector {
    app: AppContext,
    db: PgConnectOptions,
    replica: String,
    interval: Duration,
    session: Option<LockSession>,
    schedule: super::Schedule,
    failed_sweeps: u32,
    sit_out_until: Option<Instant>,
}

/// Runs until the replica stops, then releases leadership.
pub async fn run(app: AppContext, db: PgConnectOptions) {
    let mut e = Elector {
        interval: app.settings.election_interval,
        replica: app.settings.replica_id.clone(),
        app,
        db,
        session: None,
        schedule: super::Schedule::now(),
        failed_sweeps: 0,
        sit_out_until: None,
    };
    let app = e.app.clone();
    while !app.tasks.is_stopping() {
        let nap = e.tick().await;
        tokio::select! {
            () = tokio::time::sleep(nap) => {}
            () = app.stopped() => {}
        }
    }
    if e.leading() {
        e.step_down().await;
    } else if let Some(s) = e.session.take() {
        s.close().await;
    }
}

impl Elector {
    fn leading(&self) -> bool {
        self.app.is_leader.load(Ordering::Relaxed)
    }

    /// One election tick; returns how long to sleep before the next.
    async fn tick(&mut self) -> Duration {
        if !self.leading() {
            let sitting_out = self.sit_out_until.is_some_and(|t| Instant::now() < t);
            if sitting_out {
                return self.interval;
            }
            self.try_to_lead().await;
        }
        if !self.leading() {
            return self.interval;
        }
        // the lock lives with the session: no live session, no leadership. Checked every
        // tick, so a lost lock is noticed within one interval, and always before a sweep
        let alive = match self.session.as_mut() {
            Some(s) => s.check_held(self.interval).await,
            None => Err(sqlx::Error::PoolClosed),
        };
        if let Err(e) = alive {
            tracing::error!(error = %e, replica = %self.replica, "lost scheduler leadership: lock connection failed");
            set_leader(&self.app, false);
            self.session = None;
            return Duration::ZERO;
        }
        if Instant::now() >= self.schedule.next_due() {
            self.sweep().await;
        }
        if !self.leading() {
            return self.interval;
        }
        self.schedule
            .next_due()
            .saturating_duration_since(Instant::now())
            .min(self.interval)
    }

    async fn try_to_lead(&mut self) {
        let locked = match &mut self.session {
            Some(s) => s.try_lock(self.interval).await,
            None => match LockSession::connect(&self.db, self.interval).await {
                Ok(s) => self.session.insert(s).try_lock(self.interval).await,
                Err(e) => Err(e),
            },
        };
        match locked {
            Ok(true) => {
                set_leader(&self.app, true);
                tracing::info!(replica = %self.replica, "gained scheduler leadership");
                if let Err(e) = leader_record::record_leader(&self.app.pool, &self.replica).await {
                    tracing::warn!(error = %e, "could not record leadership");
                }
                self.schedule = super::Schedule::now();
                self.failed_sweeps = 0;
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "election attempt failed; retrying");
                self.session = None;
            }
        }
    }

    async fn sweep(&mut self) {
        let Some(report) = super::sweep_due(&self.app, &mut self.schedule).await else {
            return;
        };
        for (duty, e) in &report.failed {
            // logged and retried at the duty's next interval; the duties are safe to repeat
            tracing::warn!(duty, error = %e, "duty failed");
        }
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
        if !report.all_failed() {
            self.failed_sweeps = 0;
            crate::metrics::sweep_completed(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
            if let Err(e) = leader_record::record_sweep(&self.app.pool, &self.replica).await {
                tracing::warn!(error = %e, "could not record sweep");
            }
            return;
        }
        self.failed_sweeps += 1;
        if self.failed_sweeps >= MAX_FAILED_SWEEPS {
            tracing::error!(
                replica = %self.replica,
                failed_sweeps = self.failed_sweeps,
                "stepping down: every duty failed in consecutive sweeps; a healthy replica should lead"
            );
            self.step_down().await;
            self.sit_out_until = Some(Instant::now() + self.interval * SIT_OUT_TICKS);
        }
    }

    /// Gives the lock up (bounded), clears the leader record, stops duties.
    async fn step_down(&mut self) {
        if let Some(s) = self.session.take() {
            s.release(Duration::from_secs(2)).await;
        }
        if let Err(e) = leader_record::clear_leader(&self.app.pool, &self.replica).await {
            tracing::warn!(error = %e, "could not clear leader name");
        }
        set_leader(&self.app, false);
        self.failed_sweeps = 0;
        tracing::info!(replica = %self.replica, "released scheduler leadership");
    }
}

fn set_leader(app: &AppContext, leading: bool) {
    app.is_leader.store(leading, Ordering::Relaxed);
    crate::metrics::set_leader(leading);
}
