//! The scheduler's leader lock: a session-level advisory lock on a dedicated connection
//! (never a pooled one: the lock lives and dies with its session). The elector decides
//! when to call these; each call is bounded by the timeout it is given.

use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

/// The advisory lock key: "owp_schd" as a big-endian i64.
pub const LOCK_KEY: i64 = 0x6f77_705f_7363_6864;

/// The lock's own session.
pub struct LockSession(PgConnection);

async fn bounded<T>(
    timeout: Duration,
    f: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, sqlx::Error> {
    tokio::time::timeout(timeout, f)
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)?
}

impl LockSession {
    /// Opens the session. Server-side keepalives end a session whose client vanished
    /// silently, which frees the lock; statements are not logged (sqlx would log SQL text).
    pub async fn connect(db: &PgConnectOptions, timeout: Duration) -> Result<Self, sqlx::Error> {
        let opts = db
            .clone()
            .application_name("owp-leader")
            .disable_statement_logging()
            .options([
                ("tcp_keepalives_idle", "5"),
                ("tcp_keepalives_interval", "2"),
                ("tcp_keepalives_count", "3"),
                ("tcp_user_timeout", "10000"),
                ("statement_timeout", "5000"),
            ]);
        bounded(timeout.max(Duration::from_secs(1)), opts.connect())
            .await
            .map(Self)
    }

    /// `pg_try_advisory_lock`: true when this session now holds the lock.
    pub async fn try_lock(&mut self, timeout: Duration) -> Result<bool, sqlx::Error> {
        let q = sqlx::query_scalar!(r#"select pg_try_advisory_lock($1) as "locked!""#, LOCK_KEY)
            .fetch_one(&mut self.0);
        bounded(timeout, q).await
    }

    /// Proves, within `timeout`, that this session is alive and still holds the lock.
    pub async fn check_held(&mut self, timeout: Duration) -> Result<(), sqlx::Error> {
        let q = sqlx::query_scalar!(
            r#"select count(*) as "n!" from pg_locks
               where locktype = 'advisory' and pid = pg_backend_pid() and granted
                 and ((classid::bigint << 32) | objid::bigint) = $1"#,
            LOCK_KEY
        )
        .fetch_one(&mut self.0);
        match bounded(timeout, q).await? {
            1 => Ok(()),
            _ => Err(sqlx::Error::Protocol("advisory lock no longer held".into())),
        }
    }

    /// Unlocks explicitly (bounded), then closes the session, which frees the lock anyway.
    pub async fn release(mut self, timeout: Duration) {
        let unlock =
            sqlx::query_scalar!("select pg_advisory_unlock($1)", LOCK_KEY).fetch_one(&mut self.0);
        if let Err(e) = bounded(timeout, unlock).await {
            tracing::warn!(error = %e, "unlock failed; closing the session releases the lock");
        }
        self.close().await;
    }

    pub async fn close(self) {
        let _ = self.0.close().await;
    }
}
