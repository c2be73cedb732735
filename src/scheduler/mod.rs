//! The scheduler: every replica runs the elector; the one holding the advisory lock runs
//! the periodic duties. Leadership is an optimisation, not the correctness guarantee:
//! every duty states its conditions in its `where` and skips locked rows, so two leaders
//! at once would do no harm.

pub mod elector;
pub mod lease_expiry;
pub mod offline_workers;

use std::time::Instant;

use sqlx::postgres::PgConnectOptions;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::AppState;

/// Rows one duty changes per transaction: short transactions never stall claims.
pub const BATCH: i64 = 1000;

/// Starts the elector; it runs until `stop` turns true, then releases leadership.
pub fn spawn(
    app: AppState,
    leader_db: PgConnectOptions,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(elector::run(app, leader_db, stop))
}

/// One sweep of every duty, as the leader runs it.
pub async fn sweep(app: &AppState) -> Result<SweepReport, crate::store::StoreError> {
    let started = Instant::now();
    let expired = lease_expiry::run(&app.pool).await?;
    let offline = offline_workers::run(&app.pool, app.settings.heartbeat_timeout).await?;
    Ok(SweepReport {
        expired,
        offline,
        elapsed: started.elapsed(),
    })
}

#[derive(Debug, Default)]
pub struct SweepReport {
    pub expired: lease_expiry::Expired,
    pub offline: offline_workers::Offline,
    pub elapsed: std::time::Duration,
}
