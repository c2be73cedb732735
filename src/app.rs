//! `AppContext`: what every handler and background service shares, built once at start.

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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
use crate::wakeups::{Wakeups, RELAYS};

/// The most waiting polls one change wakes directly (woken polls pass it on).
const MAX_WAKE: usize = 64;

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
    /// Long polls waiting for work on this replica.
    pub wakeups: Wakeups,
    /// Work made claimable here since the last `NOTIFY` (`server::work_signals`).
    pending_signal: AtomicUsize,
    /// This process's name in work signals (replica ids may repeat, e.g. in tests).
    pub instance: String,
    /// Polls this replica woke, by cause (also exported as a metric).
    wakes: WakeCounts,
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
            wakeups: Wakeups::default(),
            pending_signal: AtomicUsize::new(0),
            instance: uuid::Uuid::now_v7().simple().to_string(),
            wakes: WakeCounts::default(),
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
    /// Work may have become claimable (about `n` tasks' worth): wakes this replica's
    /// waiting polls and tells the other replicas (debounced, `server::work_signals`).
    pub fn work_ready(&self, n: usize) {
        if n == 0 {
            return;
        }
        self.wake_waiters(n, "local");
        self.pending_signal.fetch_add(n, Ordering::Relaxed);
    }

    /// Wakes up to `n` waiting polls of this replica (capped; they pass it on).
    pub fn wake_waiters(&self, n: usize, cause: &'static str) {
        let woken = self.wakeups.wake(n.min(MAX_WAKE), RELAYS);
        self.count_wakes(cause, woken);
    }

    /// Records `n` polls woken for `cause` (local, remote, relay, fallback, reconnect).
    pub fn count_wakes(&self, cause: &'static str, n: usize) {
        if n == 0 {
            return;
        }
        self.wakes.of(cause).fetch_add(n as u64, Ordering::Relaxed);
        crate::metrics::long_poll_wakeups(cause, n);
    }

    /// Polls this replica has woken for `cause` since it started.
    pub fn wakes(&self, cause: &'static str) -> u64 {
        self.wakes.of(cause).load(Ordering::Relaxed)
    }

    /// The work announced since the last call, to send to the other replicas.
    pub fn take_pending_signal(&self) -> usize {
        self.pending_signal.swap(0, Ordering::Relaxed)
    }

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

#[derive(Default)]
struct WakeCounts {
    local: AtomicU64,
    remote: AtomicU64,
    relay: AtomicU64,
    fallback: AtomicU64,
    other: AtomicU64,
}

impl WakeCounts {
    fn of(&self, cause: &str) -> &AtomicU64 {
        match cause {
            "local" => &self.local,
            "remote" => &self.remote,
            "relay" => &self.relay,
            "fallback" => &self.fallback,
            _ => &self.other,
        }
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
