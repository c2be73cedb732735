//! `AppState`: what every handler and background service shares, built once at start.

use std::ops::Deref;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;

use crate::auth::Secrets;
use crate::config::ServeConfig;

/// Settings the running service needs (a subset of `ServeConfig`, easy to build in tests).
#[derive(Clone, Debug)]
pub struct Settings {
    pub lease_ttl: Duration,
    pub heartbeat_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub poll_interval: Duration,
    pub lease_expiry_interval: Duration,
    pub offline_workers_interval: Duration,
    pub election_interval: Duration,
    pub body_limit: usize,
    pub replica_id: String,
}

impl Default for Settings {
    /// The documented defaults (DESIGN.md, "Configuration").
    fn default() -> Self {
        Self {
            lease_ttl: Duration::from_secs(4 * 3600),
            heartbeat_timeout: Duration::from_secs(300),
            heartbeat_interval: Duration::from_secs(30),
            poll_interval: Duration::from_secs(10),
            lease_expiry_interval: Duration::from_secs(5),
            offline_workers_interval: Duration::from_secs(5),
            election_interval: Duration::from_secs(2),
            body_limit: 64 * 1024,
            replica_id: format!("owp-{}", std::process::id()),
        }
    }
}

impl From<&ServeConfig> for Settings {
    fn from(c: &ServeConfig) -> Self {
        Self {
            lease_ttl: c.lease_ttl,
            heartbeat_timeout: c.heartbeat_timeout,
            heartbeat_interval: c.heartbeat_interval,
            poll_interval: c.poll_interval,
            lease_expiry_interval: c.lease_expiry_interval.unwrap_or(c.sweep_interval),
            offline_workers_interval: c.offline_workers_interval.unwrap_or(c.sweep_interval),
            election_interval: c.election_interval,
            body_limit: c.body_limit,
            replica_id: c.replica_id(),
        }
    }
}

pub struct Inner {
    pub pool: PgPool,
    pub settings: Settings,
    pub admin: Secrets,
    /// Set when registration is gated by `OWP_REGISTRATION_TOKEN`.
    pub registration: Option<Secrets>,
    pub metrics: PrometheusHandle,
    /// True while this replica holds the scheduler lock.
    pub is_leader: AtomicBool,
}

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl AppState {
    pub fn new(
        pool: PgPool,
        settings: Settings,
        admin: Secrets,
        registration: Option<Secrets>,
    ) -> Self {
        Self(Arc::new(Inner {
            pool,
            settings,
            admin,
            registration,
            metrics: crate::metrics::install(),
            is_leader: AtomicBool::new(false),
        }))
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
