//! Background services. Every replica runs the elector and refreshes its pool gauges; the
//! replica holding the advisory lock runs the periodic duties. Leadership is an
//! optimisation, not the correctness guarantee: every duty locks what it changes and
//! skips locked rows, so two leaders at once would do no harm.

pub mod elector;
pub mod github_outbox;
pub mod lease_expiry;
pub mod offer_expiry;
pub mod offline_workers;
pub mod open_counts;
pub mod pool_gauges;
pub mod reputation;
pub mod retention;

use std::time::Instant;

use sqlx::postgres::PgConnectOptions;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::AppContext;

/// Rows one duty changes per transaction: short transactions never stall claims.
pub const BATCH: i64 = 1000;

/// Starts the elector; it runs until `stop` turns true, then releases leadership.
pub fn spawn(
    app: AppContext,
    leader_db: PgConnectOptions,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(elector::run(app, leader_db, stop))
}

/// When each duty is next due; every duty has its own interval.
pub struct Schedule {
    next_expiry: Instant,
    next_offline: Instant,
    next_retention: Instant,
    next_reputation: Instant,
}

impl Schedule {
    /// Everything due now (a new leader sweeps at once).
    pub fn now() -> Self {
        let now = Instant::now();
        Self {
            next_expiry: now,
            next_offline: now,
            next_retention: now,
            next_reputation: now,
        }
    }

    pub fn next_due(&self) -> Instant {
        self.next_expiry
            .min(self.next_offline)
            .min(self.next_retention)
            .min(self.next_reputation)
    }
}

/// Runs the duties that are due, as the leader does; `None` when none was due. Each duty
/// runs on its own: one that fails is logged and tried again at its next interval, and
/// does not keep the others from running.
pub async fn sweep_due(app: &AppContext, schedule: &mut Schedule) -> Option<SweepReport> {
    let started = Instant::now();
    let mut report = SweepReport::default();
    if started >= schedule.next_expiry {
        match lease_expiry::run(&app.pool, app.backoff()).await {
            Ok(r) => {
                app.work_ready(r.requeued as usize);
                report.expired = r;
            }
            Err(e) => report.failed.push(("lease_expiry", e)),
        }
        report.ran += 1;
        match offer_expiry::run(&app.pool).await {
            Ok(n) => {
                app.work_ready(n as usize);
                report.offers_expired = n;
            }
            Err(e) => report.failed.push(("offer_expiry", e)),
        }
        report.ran += 1;
        schedule.next_expiry = Instant::now() + app.settings.lease_expiry_interval();
    }
    if started >= schedule.next_offline {
        match offline_workers::run(&app.pool, app.settings.heartbeat_timeout, app.backoff()).await {
            Ok(r) => {
                app.work_ready(r.requeued as usize);
                report.offline = r;
            }
            Err(e) => report.failed.push(("offline_workers", e)),
        }
        report.ran += 1;
        schedule.next_offline = Instant::now() + app.settings.offline_workers_interval();
    }
    // OWP_RETENTION=0 keeps everything
    if started >= schedule.next_retention {
        if !app.settings.retention.is_zero() {
            match retention::run(&app.pool, app.settings.retention).await {
                Ok(r) => report.pruned = r,
                Err(e) => report.failed.push(("retention", e)),
            }
            report.ran += 1;
        }
        schedule.next_retention = Instant::now() + app.settings.retention_interval;
    }
    if started >= schedule.next_reputation {
        match reputation::run(app).await {
            Ok(r) => report.reputation = r,
            Err(e) => report.failed.push(("reputation", e)),
        }
        report.ran += 1;
        schedule.next_reputation = Instant::now() + app.settings.reputation_interval;
    }
    report.elapsed = started.elapsed();
    (report.ran > 0).then_some(report)
}

#[derive(Debug, Default)]
pub struct SweepReport {
    pub expired: crate::store::sweeps::Ended,
    pub offers_expired: u64,
    pub offline: offline_workers::Offline,
    pub pruned: crate::store::retention::Pruned,
    pub reputation: reputation::Outcome,
    pub elapsed: std::time::Duration,
    /// Duties that ran.
    pub ran: usize,
    /// Duties that failed, with why.
    pub failed: Vec<(&'static str, crate::store::StoreError)>,
}

impl SweepReport {
    /// Every duty that ran failed: the replica cannot do the leader's work (its request
    /// pool is broken, say), whatever its lock session says.
    pub fn all_failed(&self) -> bool {
        self.ran > 0 && self.failed.len() == self.ran
    }
}
