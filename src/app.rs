//! `AppContext`: what every handler and background service shares, built once at start.

use std::ops::Deref;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::store::Db;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::{Registration, TokenSet};
use crate::config::{DbArgs, Settings};
use crate::domain::reputation::PromotionRule;
use crate::domain::retry::Backoff;
use crate::limits::Limits;
use crate::liveness::LivenessStamps;
use crate::long_poll::LongPoll;
use crate::report_batch::ReportQueue;
use crate::store::claim::ClaimCaps;
use crate::store::tasks::GuardedRules;
use crate::store::PoolSettings;
use crate::supervisor::Supervisor;

pub struct Inner {
    pub pool: Db,
    pub settings: Settings,
    pub admin: TokenSet,
    /// Who may register workers (closed unless opened or gated by a token).
    pub registration: Registration,
    pub metrics: PrometheusHandle,
    /// True while this replica holds the scheduler lock.
    pub is_leader: AtomicBool,
    /// Per-client rate and in-flight limits.
    pub limits: Limits,
    /// What a worker's tier and the per-worker PR cap let a claim take.
    pub claim_caps: ClaimCaps,
    /// Signs of life heard on this replica, written once per interval.
    pub liveness: LivenessStamps,
    /// Long polls waiting for work on this replica, and what wakes them.
    pub long_poll: LongPoll,
    /// Every background task of this replica, and the one stop signal they share.
    pub tasks: Supervisor,
    /// This process's name in work signals (replica ids may repeat, e.g. in tests).
    pub instance: String,
    /// Guarded status reports waiting for their batch statement (group commit).
    pub reports: ReportQueue,
    /// The automatic promotion rule (`OWP_PROMOTE_BASIC_AFTER`), parsed once.
    pub promotion: Option<PromotionRule>,
}

/// The app context: cheap to clone (one `Arc`), handed to every handler and service.
#[derive(Clone)]
pub struct AppContext(Arc<Inner>);

impl AppContext {
    pub fn new(
        pool: impl Into<Db>,
        settings: Settings,
        admin: TokenSet,
        registration: Registration,
    ) -> Self {
        let pool: Db = pool.into();
        let reports = ReportQueue::new(
            pool.clone(),
            GuardedRules {
                lease_ttl: settings.lease_ttl,
                tier_lease_ttl: settings.tier_lease_ttl.clone(),
                on_time_per_point: settings.on_time_per_point,
            },
            settings.reports.limits(),
        );
        Self(Arc::new(Inner {
            pool,
            limits: Limits::new(&settings.limits),
            claim_caps: ClaimCaps {
                tier_max_concurrent: settings.tier_max_concurrent.clone(),
                tier_lease_ttl: settings.tier_lease_ttl.clone(),
                max_open_prs_per_worker: settings.max_open_prs_per_worker,
            },
            promotion: promotion_rule(&settings),
            reports,
            settings,
            admin,
            registration,
            metrics: crate::metrics::install(),
            is_leader: AtomicBool::new(false),
            long_poll: LongPoll::default(),
            liveness: LivenessStamps::default(),
            tasks: Supervisor::default(),
            instance: uuid::Uuid::now_v7().simple().to_string(),
        }))
    }

    /// Starts the shutdown of everything that waits: streams end, long waits return,
    /// services stop (`tasks`).
    pub fn stop(&self) {
        self.tasks.stop();
    }

    /// Resolves once `stop` was called.
    pub async fn stopped(&self) {
        self.tasks.stopped().await;
    }

    /// The retry backoff the settings ask for.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            base: self.settings.retry_backoff,
            max: self.settings.retry_backoff_max,
        }
    }
}

/// The rule `start` has already checked; a context built without that check (tests) logs
/// a bad rule and runs without promotion.
fn promotion_rule(settings: &Settings) -> Option<PromotionRule> {
    let rule = settings.promote_basic_after.as_deref()?;
    match rule.parse() {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(error = %e, "OWP_PROMOTE_BASIC_AFTER is not a rule; promotion is off");
            None
        }
    }
}

impl Deref for AppContext {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The request pool's settings, from the database flags.
pub fn pool_settings(db: &DbArgs) -> PoolSettings {
    PoolSettings {
        max_connections: db.db_max_connections,
        acquire_timeout: db.db_acquire_timeout,
        statement_timeout: db.db_statement_timeout,
        through_pooler: db.db_pooler == crate::config::Pooler::Transaction,
    }
}
