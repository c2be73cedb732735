//! `AppContext`: what every handler and background service shares, built once at start.

use std::ops::Deref;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use tokio::sync::watch;

use crate::auth::{Registration, TokenSet};
use crate::config::{DbArgs, Settings};
use crate::domain::reputation::PromotionRule;
use crate::domain::retry::Backoff;
use crate::limits::Limits;
use crate::store::PoolSettings;

pub struct Inner {
    pub pool: PgPool,
    pub settings: Settings,
    pub admin: TokenSet,
    /// Who may register workers (closed unless opened or gated by a token).
    pub registration: Registration,
    pub metrics: PrometheusHandle,
    /// True while this replica holds the scheduler lock.
    pub is_leader: AtomicBool,
    /// Per-client rate and in-flight limits.
    pub limits: Limits,
    /// Turns true when the replica starts shutting down: streams end, long waits return.
    stopping: watch::Sender<bool>,
}

/// The app context: cheap to clone (one `Arc`), handed to every handler and service.
#[derive(Clone)]
pub struct AppContext(Arc<Inner>);

impl AppContext {
    pub fn new(
        pool: PgPool,
        settings: Settings,
        admin: TokenSet,
        registration: Registration,
    ) -> Self {
        Self(Arc::new(Inner {
            pool,
            limits: Limits::new(&settings.limits),
            stopping: watch::Sender::new(false),
            settings,
            admin,
            registration,
            metrics: crate::metrics::install(),
            is_leader: AtomicBool::new(false),
        }))
    }
}

impl AppContext {
    /// Starts the shutdown of everything that waits: streams end, long waits return.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Resolves once `stop` was called.
    pub async fn stopped(&self) {
        let mut rx = self.stopping.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// The retry backoff the settings ask for.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            base: self.settings.retry_backoff,
            max: self.settings.retry_backoff_max,
        }
    }
}

impl AppContext {
    /// The automatic promotion rule, when one is set (checked at start-up).
    pub fn promotion_rule(&self) -> Option<PromotionRule> {
        let rule = self.settings.promote_basic_after.as_deref()?;
        match rule.parse() {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!(error = %e, "OWP_PROMOTE_BASIC_AFTER is not a rule; promotion is off");
                None
            }
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
    }
}
