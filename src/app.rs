//! `AppContext`: what every handler and background service shares, built once at start.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use tokio::sync::watch;

use crate::auth::{Registration, TokenSet};
use crate::config::{DbArgs, Settings};
use crate::domain::reputation::PromotionRule;
use crate::domain::retry::Backoff;
use crate::limits::Limits;
use crate::store::claim::ClaimCaps;
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
    /// What a worker's tier and the per-worker PR cap let a claim take.
    pub claim_caps: ClaimCaps,
    /// Long polls waiting for work on this replica.
    pub wakeups: Wakeups,
    /// Work made claimable here since the last `NOTIFY` (`server::work_signals`).
    pending_signal: AtomicUsize,
    /// This process's name in work signals (replica ids may repeat, e.g. in tests).
    pub instance: String,
    /// Polls this replica woke, by cause (also exported as a metric).
    wakes: WakeCounts,
    /// Bumped whenever work may have become claimable (any cause but a relay).
    work_epoch: AtomicU64,
    /// Workers whose last long poll here claimed nothing though they had room, with the
    /// epoch it saw: while the epoch stands, their next poll need not claim again.
    idle_polls: Mutex<HashMap<String, u64>>,
    /// Turns true when the replica starts shutting down: streams end, long waits return.
    stopping: watch::Sender<bool>,
    /// Poked when work changed here or on another replica (its `NOTIFY`): the state
    /// stream's reader reads at once instead of at its next second.
    pub state_changed: tokio::sync::Notify,
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
            claim_caps: ClaimCaps {
                tier_max_concurrent: settings.tier_max_concurrent.clone(),
                tier_lease_ttl: settings.tier_lease_ttl.clone(),
                max_open_prs_per_worker: settings.max_open_prs_per_worker,
            },
            stopping: watch::Sender::new(false),
            state_changed: tokio::sync::Notify::new(),
            settings,
            admin,
            registration,
            metrics: crate::metrics::install(),
            is_leader: AtomicBool::new(false),
            wakeups: Wakeups::default(),
            pending_signal: AtomicUsize::new(0),
            instance: uuid::Uuid::now_v7().simple().to_string(),
            wakes: WakeCounts::default(),
            work_epoch: AtomicU64::new(0),
            idle_polls: Mutex::new(HashMap::new()),
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
        if cause != "relay" {
            self.work_epoch.fetch_add(1, Ordering::Relaxed);
        }
        let woken = self.wakeups.wake(n.min(MAX_WAKE), RELAYS);
        self.count_wakes(cause, woken);
        if matches!(cause, "local" | "remote") {
            self.state_changed.notify_one();
        }
    }

    /// Records `n` polls woken for `cause` (local, remote, relay, fallback, reconnect).
    pub fn count_wakes(&self, cause: &'static str, n: usize) {
        if n == 0 {
            return;
        }
        self.wakes.of(cause).fetch_add(n as u64, Ordering::Relaxed);
        crate::metrics::long_poll_wakeups(cause, n);
    }

    /// The work epoch now: read it before a claim, record it with `claimed_nothing`.
    pub fn work_epoch(&self) -> u64 {
        self.work_epoch.load(Ordering::Relaxed)
    }

    /// The worker's long poll claimed nothing at `epoch` though it had room.
    pub fn claimed_nothing(&self, worker_id: &str, epoch: u64) {
        let mut idle = self.idle_polls.lock().expect("idle polls lock");
        idle.insert(worker_id.to_string(), epoch);
    }

    /// Forgets the worker's empty claim (it claimed, or has no room).
    pub fn claimed_something(&self, worker_id: &str) {
        let mut idle = self.idle_polls.lock().expect("idle polls lock");
        idle.remove(worker_id);
    }

    /// Nothing that could make work claimable happened since the worker's last empty claim
    /// on this replica: claiming again now would find nothing.
    pub fn nothing_new_for(&self, worker_id: &str) -> bool {
        let idle = self.idle_polls.lock().expect("idle polls lock");
        idle.get(worker_id) == Some(&self.work_epoch())
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
