//! Background services. Every replica runs the elector, its pool gauges, the open-count
//! compaction, the GitHub outbox loop and the notifications loop (`start`); the replica holding the advisory lock
//! runs the periodic duties (`Duty`). Leadership is an
//! optimisation, not the correctness guarantee: every duty locks what it changes and
//! skips locked rows, so two leaders at once would do no harm.

pub mod elector;
pub mod github_outbox;
pub mod lease_expiry;
pub mod liveness;
pub mod notifications;
pub mod offer_expiry;
pub mod offline_workers;
pub mod open_counts;
pub mod pool_gauges;
pub mod reputation;
pub mod retention;

use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;

use crate::app::AppContext;
use crate::store::StoreError;

/// Rows one duty changes per transaction: short transactions never stall claims.
pub const BATCH: i64 = 1000;

/// Starts the replica's scheduler services under the supervisor (`AppContext::tasks`):
/// the elector (which runs the leader duties below), the pool gauges, the open-count
/// compaction, the GitHub outbox and the notifications. Each ends on the replica's stop signal.
pub fn start(app: &AppContext, leader_db: PgConnectOptions) {
    spawn_elector(app, leader_db);
    app.tasks
        .spawn("pool_gauges", pool_gauges::run(app.clone()));
    app.tasks
        .spawn("open_counts", open_counts::run(app.clone()));
    app.tasks
        .spawn("github_outbox", github_outbox::run_service(app.clone()));
    app.tasks
        .spawn("notifications", notifications::run_service(app.clone()));
}

/// Starts what every replica's requests rely on: the liveness stamps' writer. Serving
/// starts it (`server::serve_on`), so a replica that serves always writes them.
pub fn start_request_services(app: &AppContext) {
    app.tasks.spawn("liveness", liveness::run(app.clone()));
}

/// Starts the elector alone (tests start the other services as they need them).
pub fn spawn_elector(app: &AppContext, leader_db: PgConnectOptions) -> tokio::task::JoinHandle<()> {
    app.tasks
        .spawn("elector", elector::run(app.clone(), leader_db))
}

/// The leader's periodic duties. Each has its own interval and its own metrics
/// (`owp_duty_runs_total`, `owp_duty_last_success_timestamp_seconds`, and the duty's
/// `owp_sweep_*` figures); the elector runs those due after proving it holds the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Duty {
    LeaseExpiry,
    OfferExpiry,
    OfflineWorkers,
    Retention,
    Reputation,
}

impl Duty {
    pub const ALL: [Duty; 5] = [
        Duty::LeaseExpiry,
        Duty::OfferExpiry,
        Duty::OfflineWorkers,
        Duty::Retention,
        Duty::Reputation,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Duty::LeaseExpiry => "lease_expiry",
            Duty::OfferExpiry => "offer_expiry",
            Duty::OfflineWorkers => "offline_workers",
            Duty::Retention => "retention",
            Duty::Reputation => "reputation",
        }
    }

    /// How long after a run the duty is due again.
    pub fn interval(self, app: &AppContext) -> Duration {
        let s = &app.settings;
        match self {
            Duty::LeaseExpiry | Duty::OfferExpiry => s.lease_expiry_interval(),
            Duty::OfflineWorkers => s.offline_workers_interval(),
            Duty::Retention => s.retention_interval,
            Duty::Reputation => s.reputation_interval,
        }
    }

    /// Runs once, adding what it did to `report`. Work it made claimable wakes polls.
    async fn run(self, app: &AppContext, report: &mut SweepReport) -> Result<(), StoreError> {
        match self {
            Duty::LeaseExpiry => {
                let r = lease_expiry::run(&app.pool, app.backoff()).await?;
                app.long_poll.work_ready(r.requeued as usize);
                report.expired = r;
            }
            Duty::OfferExpiry => {
                let n = offer_expiry::run(&app.pool).await?;
                app.long_poll.work_ready(n as usize);
                report.offers_expired = n;
            }
            Duty::OfflineWorkers => {
                let r =
                    offline_workers::run(&app.pool, app.settings.heartbeat_timeout, app.backoff())
                        .await?;
                app.long_poll.work_ready(r.requeued as usize);
                report.offline = r;
            }
            Duty::Retention => {
                report.pruned = retention::run(&app.pool, app.settings.retention).await?;
            }
            Duty::Reputation => report.reputation = reputation::run(app).await?,
        }
        Ok(())
    }

    /// Off by configuration: `OWP_RETENTION=0` keeps everything.
    fn is_off(self, app: &AppContext) -> bool {
        self == Duty::Retention && app.settings.retention.is_zero()
    }
}

/// When each duty is next due.
pub struct Schedule {
    next: [Instant; Duty::ALL.len()],
}

impl Schedule {
    /// Everything due now (a new leader sweeps at once).
    pub fn now() -> Self {
        Self {
            next: [Instant::now(); Duty::ALL.len()],
        }
    }

    pub fn next_due(&self) -> Instant {
        self.next.iter().copied().min().expect("duties exist")
    }
}

/// Runs the duties that are due, as the leader does; `None` when none was due. Each duty
/// runs on its own: one that fails is logged and tried again at its next interval, and
/// does not keep the others from running.
pub async fn sweep_due(app: &AppContext, schedule: &mut Schedule) -> Option<SweepReport> {
    let started = Instant::now();
    let mut report = SweepReport::default();
    for (i, duty) in Duty::ALL.into_iter().enumerate() {
        if started < schedule.next[i] {
            continue;
        }
        if !duty.is_off(app) {
            let result = duty.run(app, &mut report).await;
            crate::metrics::duty_run(duty.name(), result.is_ok());
            if let Err(e) = result {
                report.failed.push((duty.name(), e));
            }
            report.ran += 1;
        }
        schedule.next[i] = Instant::now() + duty.interval(app);
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
    pub failed: Vec<(&'static str, StoreError)>,
}

impl SweepReport {
    /// Every duty that ran failed: the replica cannot do the leader's work (its request
    /// pool is broken, say), whatever its lock session says.
    pub fn all_failed(&self) -> bool {
        self.ran > 0 && self.failed.len() == self.ran
    }
}
