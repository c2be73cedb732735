//! Every setting of `owp serve`: a CLI flag and an `OWP_*` environment variable each.
//! `Debug` redacts secrets, so a config can be logged.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Clone, Args)]
pub struct DbArgs {
    /// PostgreSQL URL, e.g. postgres://owp:secret@db:5432/owp
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// Most connections this replica opens; keep replicas x this below Postgres max_connections.
    #[arg(long, env = "OWP_DB_MAX_CONNECTIONS", default_value_t = 20)]
    pub db_max_connections: u32,

    /// How long a request waits for a pooled connection before answering 503.
    #[arg(long, env = "OWP_DB_ACQUIRE_TIMEOUT", default_value = "3s", value_parser = humantime::parse_duration)]
    pub db_acquire_timeout: Duration,

    /// Server-side statement_timeout for every pooled connection.
    #[arg(long, env = "OWP_DB_STATEMENT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub db_statement_timeout: Duration,
}

impl DbArgs {
    pub fn pool_settings(&self) -> crate::store::PoolSettings {
        crate::store::PoolSettings {
            max_connections: self.db_max_connections,
            acquire_timeout: self.db_acquire_timeout,
            statement_timeout: self.db_statement_timeout,
        }
    }
}

#[derive(Clone, Args)]
pub struct ServeConfig {
    #[command(flatten)]
    pub db: DbArgs,

    /// Direct (not transaction-pooled) URL for the leader-election connection; defaults to DATABASE_URL.
    #[arg(long, env = "OWP_LEADER_DATABASE_URL", hide_env_values = true)]
    pub leader_database_url: Option<String>,

    #[arg(long, env = "OWP_HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,

    #[arg(long, env = "OWP_PORT", default_value_t = 8787)]
    pub port: u16,

    /// Serve /metrics on this port too (keeps it off the public listener).
    #[arg(long, env = "OWP_METRICS_PORT")]
    pub metrics_port: Option<u16>,

    /// Admin token(s), comma-separated to allow rotation. Required unless --dev.
    #[arg(
        long,
        env = "OWP_ADMIN_TOKEN",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub admin_token: Vec<String>,

    /// When set, registration needs this token in X-Registration-Token.
    #[arg(long, env = "OWP_REGISTRATION_TOKEN", hide_env_values = true)]
    pub registration_token: Option<String>,

    /// Development mode: start without an admin token (a random one is generated and printed).
    #[arg(long, env = "OWP_DEV", default_value_t = false)]
    pub dev: bool,

    /// Apply pending migrations at start. Turn off where a separate job migrates.
    #[arg(long, env = "OWP_AUTO_MIGRATE", default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_migrate: bool,

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

    /// This replica's name in /v1/admin/state and logs; defaults to hostname-pid.
    #[arg(long, env = "OWP_REPLICA_ID")]
    pub replica_id: Option<String>,

    /// Largest accepted request body: bytes, or with a KiB/MiB suffix.
    #[arg(long, env = "OWP_BODY_LIMIT", default_value = "64KiB", value_parser = parse_size)]
    pub body_limit: usize,

    /// How long in-flight requests may run after SIGTERM/SIGINT.
    #[arg(long, env = "OWP_SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    #[arg(long, env = "OWP_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
}

impl ServeConfig {
    pub fn replica_id(&self) -> String {
        self.replica_id.clone().unwrap_or_else(default_replica_id)
    }

    pub fn leader_database_url(&self) -> &str {
        self.leader_database_url
            .as_deref()
            .unwrap_or(&self.db.database_url)
    }
}

fn default_replica_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|| "owp".into());
    format!("{host}-{}", std::process::id())
}

/// `65536`, `64KiB`, `1MiB` (also `KB`/`MB`, taken as binary units).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num.parse().map_err(|_| format!("not a size: {s}"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "kb" | "k" => 1024,
        "mib" | "mb" | "m" => 1024 * 1024,
        _ => return Err(format!("unknown size unit in {s}: use bytes, KiB or MiB")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size too large: {s}"))
}

/// Hides the password in a database URL, for logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparseable url>".into(),
    }
}

impl fmt::Debug for DbArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbArgs")
            .field("database_url", &redact_url(&self.database_url))
            .field("db_max_connections", &self.db_max_connections)
            .field("db_acquire_timeout", &self.db_acquire_timeout)
            .field("db_statement_timeout", &self.db_statement_timeout)
            .finish()
    }
}

impl fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeConfig")
            .field("db", &self.db)
            .field(
                "leader_database_url",
                &self.leader_database_url.as_deref().map(redact_url),
            )
            .field("host", &self.host)
            .field("port", &self.port)
            .field("metrics_port", &self.metrics_port)
            .field(
                "admin_tokens",
                &format_args!("<{} redacted>", self.admin_token.len()),
            )
            .field(
                "registration_token",
                &self.registration_token.as_ref().map(|_| "<redacted>"),
            )
            .field("dev", &self.dev)
            .field("auto_migrate", &self.auto_migrate)
            .field("lease_ttl", &self.lease_ttl)
            .field("heartbeat_timeout", &self.heartbeat_timeout)
            .field("sweep_interval", &self.sweep_interval)
            .field("lease_expiry_interval", &self.lease_expiry_interval)
            .field("offline_workers_interval", &self.offline_workers_interval)
            .field("election_interval", &self.election_interval)
            .field("replica_id", &self.replica_id())
            .field("body_limit", &self.body_limit)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("log_format", &self.log_format)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_bytes_and_binary_units() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        use clap::Parser;
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            c: ServeConfig,
        }
        let t = T::parse_from([
            "t",
            "--database-url",
            "postgres://owp:hunter2@db/owp",
            "--admin-token",
            "sekrit-a,sekrit-b",
        ]);
        let shown = format!("{:?}", t.c);
        assert!(
            !shown.contains("hunter2") && !shown.contains("sekrit"),
            "{shown}"
        );
        assert_eq!(t.c.admin_token.len(), 2);
        assert_eq!(t.c.port, 8787);
        assert_eq!(t.c.lease_ttl, Duration::from_secs(4 * 3600));
    }

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(redact_url("postgres://u:p@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
    }
}
