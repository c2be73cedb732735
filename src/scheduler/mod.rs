//! Background services. Every replica runs the elector and refreshes its pool gauges; the
//! replica holding the advisory lock runs the periodic duties. Leadership is an
//! optimisation, not the correctness guarantee: every duty locks what it changes and
//! skips locked rows, so two leaders at once would do no harm.

pub mod elector;
pub mod lease_expiry;
pub mod offline_workers;
pub mod pool_gauges;

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
}

impl Schedule {
    /// Everything due now (a new leader sweeps at once).
    pub fn now() -> Self {
        let now = Instant::now();
        Self {
            next_expiry: now,
            next_offline: now,
        }
    }

    pub fn next_due(&self) -> Instant {
        self.next_expiry.min(self.next_offline)
    }
}

/// Runs the duties that are due, as the leader does; `None` when none was due.
pub async fn sweep_due(
    app: &AppContext,
    schedule: &mut Schedule,
) -> Result<Option<SweepReport>, crate::store::StoreError> {
    let started = Instant::now();
    let mut report = SweepReport::default();
    let mut ran = false;
    if started >= schedule.next_expiry {
        report.expired = lease_expiry::run(&app.pool).await?;
        schedule.next_expiry = Instant::now() + app.settings.lease_expiry_interval();
        ran = true;
    }
    if started >= schedule.next_offline {
        report.offline = offline_workers::run(&app.pool, app.settings.heartbeat_timeout).await?;
        schedule.next_offline = Instant::now() + app.settings.offline_workers_interval();
        ran = true;
    }
    report.elapsed = started.elapsed();
    Ok(ran.then_some(report))
}

#[derive(Debug, Default)]
pub struct SweepReport {
    pub expired: crate::store::sweeps::Ended,
    pub offline: offline_workers::Offline,
    pub elapsed: std::time::Duration,
}
