//! Every setting of the `owp` commands: a CLI flag and an `OWP_*` environment variable
//! each, with its default written once, here. Secrets and database URLs are newtypes whose
//! `Debug` hides them, so a whole config can be logged.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use clap::{Args, FromArgMatches, ValueEnum};

mod github;
mod http_limits;
mod notify;
mod parse;
mod report_batch;
mod secrets;
mod tier_caps;

pub use github::GithubSettings;
pub use http_limits::{parse_cidr, Cidr, HttpLimits};
pub use notify::NotifySettings;
use parse::*;
pub use report_batch::{BatchLimits, ReportBatchSettings};
pub use secrets::{DatabaseUrl, Secret};
pub use tier_caps::TierCaps;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// What `DATABASE_URL` points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Pooler {
    /// PostgreSQL itself, or a pooler in session mode.
    None,
    /// A pooler in transaction mode (PgBouncer `pool_mode = transaction`): statements are
    /// not cached across transactions, and every one runs inside a transaction.
    Transaction,
}

#[derive(Clone, Debug, Args)]
pub struct DbArgs {
    /// PostgreSQL URL, e.g. postgres://owp:secret@db:5432/owp
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: DatabaseUrl,

    /// Most connections this replica opens; keep replicas x this below Postgres max_connections.
    #[arg(long, env = "OWP_DB_MAX_CONNECTIONS", default_value_t = 20)]
    pub db_max_connections: u32,

    /// How long a request waits for a pooled connection before answering 503.
    #[arg(long, env = "OWP_DB_ACQUIRE_TIMEOUT", default_value = "3s", value_parser = humantime::parse_duration)]
    pub db_acquire_timeout: Duration,

    /// Server-side statement_timeout for every pooled connection.
    #[arg(long, env = "OWP_DB_STATEMENT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub db_statement_timeout: Duration,

    /// What DATABASE_URL points at: PostgreSQL (`none`) or a transaction-mode pooler such
    /// as PgBouncer (`transaction`, which needs OWP_LEADER_DATABASE_URL to reach PostgreSQL
    /// directly).
    #[arg(long, env = "OWP_DB_POOLER", value_enum, default_value_t = Pooler::None)]
    pub db_pooler: Pooler,
}

#[derive(Clone, Debug, Args)]
pub struct ServeConfig {
    #[command(flatten)]
    pub db: DbArgs,

    /// Direct (not transaction-pooled) URL for what needs a session of its own: the
    /// leader's lock, LISTEN and migrations; defaults to DATABASE_URL.
    #[arg(long, env = "OWP_LEADER_DATABASE_URL", hide_env_values = true)]
    pub leader_database_url: Option<DatabaseUrl>,

    #[arg(long, env = "OWP_HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,

    #[arg(long, env = "OWP_PORT", default_value_t = 8787)]
    pub port: u16,

    /// Admin token(s), comma-separated to allow rotation. Required unless --dev.
    #[arg(
        long,
        env = "OWP_ADMIN_TOKEN",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub admin_token: Vec<Secret>,

    /// When set, registration needs this token in X-Registration-Token.
    #[arg(long, env = "OWP_REGISTRATION_TOKEN", hide_env_values = true)]
    pub registration_token: Option<Secret>,

    /// Let anyone who can reach the server register a worker. Without it (and without
    /// OWP_REGISTRATION_TOKEN) registration is closed.
    #[arg(long, env = "OWP_OPEN_REGISTRATION", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub open_registration: bool,

    /// Development mode: start without an admin token (a random one is generated and
    /// printed) and with registration open.
    #[arg(long, env = "OWP_DEV", default_value_t = false)]
    pub dev: bool,

    /// Apply pending migrations at start. Turn off where a separate job migrates.
    #[arg(long, env = "OWP_AUTO_MIGRATE", default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_migrate: bool,

    #[command(flatten)]
    pub settings: Settings,

    /// How long in-flight requests may run after SIGTERM/SIGINT.
    #[arg(long, env = "OWP_SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    #[arg(long, env = "OWP_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
}

impl ServeConfig {
    /// Refuses settings that cannot work (a zero interval busy-loops, a lease TTL beyond
    /// what timestamps hold fails every claim), naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        let d = &self.db;
        in_range("OWP_DB_MAX_CONNECTIONS", d.db_max_connections, 2, 10_000)?;
        if self.settings.reports.report_writers >= d.db_max_connections as usize {
            return Err(format!(
                "OWP_REPORT_WRITERS ({}) must be below OWP_DB_MAX_CONNECTIONS ({}), \
                 or the report statements take every connection polls need",
                self.settings.reports.report_writers, d.db_max_connections
            ));
        }
        duration_in(
            "OWP_DB_ACQUIRE_TIMEOUT",
            d.db_acquire_timeout,
            MS * 10,
            HOUR,
        )?;
        duration_in(
            "OWP_DB_STATEMENT_TIMEOUT",
            d.db_statement_timeout,
            MS * 10,
            HOUR,
        )?;
        duration_in(
            "OWP_SHUTDOWN_TIMEOUT",
            self.shutdown_timeout,
            Duration::ZERO,
            HOUR,
        )?;
        if d.db_pooler == Pooler::Transaction && self.leader_database_url.is_none() {
            return Err(
                "OWP_DB_POOLER=transaction needs OWP_LEADER_DATABASE_URL, a direct \
                        URL to PostgreSQL for the leader's lock, LISTEN and migrations"
                    .into(),
            );
        }
        self.settings.validate()
    }

    pub fn leader_database_url(&self) -> &DatabaseUrl {
        self.leader_database_url
            .as_ref()
            .unwrap_or(&self.db.database_url)
    }
}

/// The settings a running replica consults (timers, cadences, limits): part of
/// `ServeConfig`, and buildable alone with every default (`Settings::defaults`) for tests.
#[derive(Clone, Debug, Args)]
pub struct Settings {
    /// How long one attempt may hold a task without progress.
    #[arg(long, env = "OWP_LEASE_TTL", default_value = "4h", value_parser = humantime::parse_duration)]
    pub lease_ttl: Duration,

    /// A worker silent this long is offline and its leases go back to the queue.
    #[arg(long, env = "OWP_HEARTBEAT_TIMEOUT", default_value = "5m", value_parser = humantime::parse_duration)]
    pub heartbeat_timeout: Duration,

    /// Heartbeat cadence the server asks of workers.
    #[arg(long, env = "OWP_HEARTBEAT_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub heartbeat_interval: Duration,

    /// Poll cadence the server asks of workers.
    #[arg(long, env = "OWP_POLL_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,

    /// How often the leader sweeps expired leases and offline workers.
    #[arg(long, env = "OWP_SWEEP_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub sweep_interval: Duration,

    /// Interval of the lease-expiry duty (default: OWP_SWEEP_INTERVAL).
    #[arg(long, env = "OWP_LEASE_EXPIRY_INTERVAL", value_parser = humantime::parse_duration)]
    pub lease_expiry_interval: Option<Duration>,

    /// Interval of the offline-workers duty (default: OWP_SWEEP_INTERVAL).
    #[arg(long, env = "OWP_OFFLINE_WORKERS_INTERVAL", value_parser = humantime::parse_duration)]
    pub offline_workers_interval: Option<Duration>,

    /// How often every replica tries to become (or checks it still is) the leader.
    #[arg(long, env = "OWP_ELECTION_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub election_interval: Duration,

    /// How often each replica reads the pool overview for its metrics gauges (a scrape
    /// never touches the database).
    #[arg(long, env = "OWP_GAUGES_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub gauges_interval: Duration,

    /// Serve /metrics on this port instead of the API port (which then answers it 404),
    /// so the public listener never exposes it.
    #[arg(long, env = "OWP_METRICS_PORT")]
    pub metrics_port: Option<u16>,

    /// This replica's name in /v1/admin/state and logs; defaults to hostname-pid.
    #[arg(long, env = "OWP_REPLICA_ID", default_value_t = default_replica_id())]
    pub replica_id: String,

    /// Largest accepted request body: bytes, or with a KiB/MiB suffix.
    #[arg(long, env = "OWP_BODY_LIMIT", default_value = "64KiB", value_parser = parse_size)]
    pub body_limit: usize,

    /// Largest body of `POST /v1/admin/tasks` (an admin's bulk import, up to 5,000 tasks
    /// in one transaction); every other route keeps OWP_BODY_LIMIT.
    #[arg(long, env = "OWP_BULK_BODY_LIMIT", default_value = "8MiB", value_parser = parse_size)]
    pub bulk_body_limit: usize,

    /// Backoff before a task whose attempt failed or expired is claimable again: this
    /// after the first lost attempt, doubling with each one (0 turns backoff off).
    #[arg(long, env = "OWP_RETRY_BACKOFF", default_value = "30s", value_parser = humantime::parse_duration)]
    pub retry_backoff: Duration,

    /// The longest retry backoff.
    #[arg(long, env = "OWP_RETRY_BACKOFF_MAX", default_value = "30m", value_parser = humantime::parse_duration)]
    pub retry_backoff_max: Duration,

    /// A `pr_opened` task with no merge or close for this long is reported stale.
    #[arg(long, env = "OWP_PR_STALE_AFTER", default_value = "14days", value_parser = humantime::parse_duration)]
    pub pr_stale_after: Duration,

    /// The leader prunes audit events, and the leases and artifacts of terminal tasks,
    /// older than this (0 keeps everything).
    #[arg(long, env = "OWP_RETENTION", default_value = "90days", value_parser = humantime::parse_duration)]
    pub retention: Duration,

    /// How often the leader runs the retention duty.
    #[arg(long, env = "OWP_RETENTION_INTERVAL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub retention_interval: Duration,

    #[command(flatten)]
    pub limits: HttpLimits,

    #[command(flatten)]
    pub github: GithubSettings,

    #[command(flatten)]
    pub notify: NotifySettings,

    #[command(flatten)]
    pub reports: ReportBatchSettings,

    /// How long a dashboard sign-in lasts.
    #[arg(long, env = "OWP_DASHBOARD_SESSION_TTL", default_value = "12h", value_parser = humantime::parse_duration)]
    pub dashboard_session_ttl: Duration,

    /// Trust tier of newly registered workers: untrusted (0), basic (1), trusted (2) or
    /// core (3). A worker may hold tasks whose tier is at most its own.
    #[arg(long, env = "OWP_DEFAULT_TRUST_TIER", default_value = "untrusted", value_parser = parse_trust_level)]
    pub default_trust_tier: i16,

    /// Most concurrent tasks a worker of each tier may hold, whatever it declares
    /// (`tier:n`, comma-separated; a tier not named is not capped).
    #[arg(long, env = "OWP_TIER_MAX_CONCURRENT", default_value = "untrusted:10,basic:25", value_parser = parse_tier_counts)]
    pub tier_max_concurrent: TierCaps<i32>,

    /// Longest lease a worker of each tier is granted (`tier:duration`, comma-separated);
    /// shorter than OWP_LEASE_TTL, so an unproven worker cannot sit on a task for long.
    #[arg(long, env = "OWP_TIER_LEASE_TTL", default_value = "untrusted:1h", value_parser = parse_tier_durations)]
    pub tier_lease_ttl: TierCaps<Duration>,

    /// Most open tasks (leased to open PR) one worker may have in one repository, unless
    /// the repository sets its own `max_open_prs_per_worker`. 0: no cap.
    #[arg(long, env = "OWP_MAX_OPEN_PRS_PER_WORKER", default_value_t = 0)]
    pub max_open_prs_per_worker: i32,

    /// Artifacts one lease may record (each report with a new artifact adds one).
    #[arg(long, env = "OWP_MAX_ARTIFACTS_PER_LEASE", default_value_t = 20)]
    pub max_artifacts_per_lease: i64,

    /// Largest `artifact.extra` accepted, in bytes of JSON.
    #[arg(long, env = "OWP_MAX_ARTIFACT_EXTRA", default_value = "4KiB", value_parser = parse_size)]
    pub max_artifact_extra: usize,

    /// How long an offer (`POST /v1/work/offers`) reserves its task for the worker before
    /// the task goes back to `ready`.
    #[arg(long, env = "OWP_OFFER_TTL", default_value = "5m", value_parser = humantime::parse_duration)]
    pub offer_ttl: Duration,

    /// On-time delivery (reputation): an attempt is on time when it delivers within this
    /// many times its task's `estimate_points` of its grant.
    #[arg(long, env = "OWP_ON_TIME_PER_POINT", default_value = "1h", value_parser = humantime::parse_duration)]
    pub on_time_per_point: Duration,

    /// Automatic promotion of untrusted workers to `basic` by the leader, e.g.
    /// `3 merged, 0.8 completion` (see docs/PROTOCOL.md "Reputation"); off when unset.
    #[arg(long, env = "OWP_PROMOTE_BASIC_AFTER")]
    pub promote_basic_after: Option<String>,

    /// How often the leader reconciles reputation counters with the lease history and
    /// applies the promotion rule.
    #[arg(long, env = "OWP_REPUTATION_INTERVAL", default_value = "5m", value_parser = humantime::parse_duration)]
    pub reputation_interval: Duration,

    /// Browser origins allowed to call the API (CORS), comma-separated, e.g.
    /// `https://pool.example.org`; none by default.
    #[arg(long, env = "OWP_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
}

const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

fn duration_in(name: &str, value: Duration, min: Duration, max: Duration) -> Result<(), String> {
    if value < min || value > max {
        return Err(format!(
            "{name} must be between {} and {} (got {})",
            humantime::format_duration(min),
            humantime::format_duration(max),
            humantime::format_duration(value)
        ));
    }
    Ok(())
}

fn in_range<T: PartialOrd + fmt::Display>(
    name: &str,
    value: T,
    min: T,
    max: T,
) -> Result<(), String> {
    if value < min || value > max {
        return Err(format!(
            "{name} must be between {min} and {max} (got {value})"
        ));
    }
    Ok(())
}

impl Settings {
    /// See `ServeConfig::validate`.
    pub fn validate(&self) -> Result<(), String> {
        duration_in("OWP_LEASE_TTL", self.lease_ttl, SECOND, DAY * 30)?;
        duration_in(
            "OWP_HEARTBEAT_INTERVAL",
            self.heartbeat_interval,
            SECOND,
            DAY,
        )?;
        duration_in("OWP_POLL_INTERVAL", self.poll_interval, SECOND, DAY)?;
        duration_in("OWP_HEARTBEAT_TIMEOUT", self.heartbeat_timeout, SECOND, DAY)?;
        if self.heartbeat_timeout <= self.heartbeat_interval {
            return Err(format!(
                "OWP_HEARTBEAT_TIMEOUT ({}) must be longer than OWP_HEARTBEAT_INTERVAL ({}), \
                 or every worker that keeps the cadence goes offline",
                humantime::format_duration(self.heartbeat_timeout),
                humantime::format_duration(self.heartbeat_interval)
            ));
        }
        let timers = [
            ("OWP_SWEEP_INTERVAL", Some(self.sweep_interval)),
            ("OWP_LEASE_EXPIRY_INTERVAL", self.lease_expiry_interval),
            (
                "OWP_OFFLINE_WORKERS_INTERVAL",
                self.offline_workers_interval,
            ),
            ("OWP_ELECTION_INTERVAL", Some(self.election_interval)),
            ("OWP_GAUGES_INTERVAL", Some(self.gauges_interval)),
        ];
        for (name, value) in timers {
            if let Some(v) = value {
                duration_in(name, v, MS * 10, HOUR)?;
            }
        }
        in_range("OWP_BODY_LIMIT", self.body_limit, 1024, 64 << 20)?;
        in_range(
            "OWP_MAX_OPEN_PRS_PER_WORKER",
            self.max_open_prs_per_worker,
            0,
            10_000,
        )?;
        in_range(
            "OWP_MAX_ARTIFACTS_PER_LEASE",
            self.max_artifacts_per_lease,
            1,
            10_000,
        )?;
        in_range(
            "OWP_MAX_ARTIFACT_EXTRA",
            self.max_artifact_extra,
            0,
            60 << 10,
        )?;
        in_range("OWP_BULK_BODY_LIMIT", self.bulk_body_limit, 1024, 256 << 20)?;
        duration_in("OWP_RETRY_BACKOFF", self.retry_backoff, Duration::ZERO, DAY)?;
        duration_in(
            "OWP_RETRY_BACKOFF_MAX",
            self.retry_backoff_max,
            self.retry_backoff,
            DAY * 7,
        )
        .map_err(|e| format!("{e}; it must not be below OWP_RETRY_BACKOFF"))?;
        duration_in("OWP_PR_STALE_AFTER", self.pr_stale_after, HOUR, DAY * 365)?;
        if !self.retention.is_zero() {
            duration_in("OWP_RETENTION", self.retention, DAY, DAY * 3650)?;
        }
        duration_in(
            "OWP_RETENTION_INTERVAL",
            self.retention_interval,
            SECOND,
            DAY,
        )?;
        duration_in("OWP_OFFER_TTL", self.offer_ttl, SECOND, DAY)?;
        duration_in(
            "OWP_ON_TIME_PER_POINT",
            self.on_time_per_point,
            SECOND,
            DAY * 30,
        )?;
        duration_in(
            "OWP_REPUTATION_INTERVAL",
            self.reputation_interval,
            SECOND,
            DAY,
        )?;
        self.limits.validate()?;
        self.github.validate()?;
        self.notify.validate()?;
        self.reports.validate()?;
        duration_in(
            "OWP_DASHBOARD_SESSION_TTL",
            self.dashboard_session_ttl,
            MINUTE,
            DAY * 30,
        )?;
        for origin in &self.cors_origins {
            if !is_origin(origin) {
                return Err(format!(
                    "OWP_CORS_ORIGINS: {origin:?} is not an origin (scheme://host[:port], no path)"
                ));
            }
        }
        if self.replica_id.trim().is_empty() || self.replica_id.chars().count() > 200 {
            return Err("OWP_REPLICA_ID must be 1-200 characters".into());
        }
        Ok(())
    }

    /// Every setting at its documented default, whatever the environment says.
    pub fn defaults() -> Self {
        let cmd =
            <Self as Args>::augment_args(clap::Command::new("defaults")).mut_args(|a| a.env(None));
        let matches = cmd
            .try_get_matches_from(["defaults"])
            .expect("every setting has a default");
        Self::from_arg_matches(&matches).expect("defaults parse into Settings")
    }

    pub fn lease_expiry_interval(&self) -> Duration {
        self.lease_expiry_interval.unwrap_or(self.sweep_interval)
    }

    pub fn offline_workers_interval(&self) -> Duration {
        self.offline_workers_interval.unwrap_or(self.sweep_interval)
    }
}

#[cfg(test)]
mod tests;
