//! Applying the schema migrations. They run on a connection of their own, not a pooled
//! one: with no `statement_timeout` (slow DDL must be able to finish) but with a
//! `lock_timeout`, so a migration that waits on a lock (another replica migrating, or a
//! long transaction on a table) gives up after a while and is retried instead of
//! queueing requests behind it. Several replicas starting at once take turns through
//! sqlx's migration lock; the later ones find nothing left to do.

use std::time::{Duration, Instant};

use sqlx::migrate::MigrateError;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

use super::MIGRATOR;

/// How long one attempt waits for any lock before it gives up and is retried.
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Applies pending migrations, retrying while the database is not reachable yet or a lock
/// is busy, for up to `patience`.
pub async fn apply_with_retry(url: &str, patience: Duration) -> Result<(), MigrateError> {
    let opts: PgConnectOptions = url.parse().map_err(MigrateError::Execute)?;
    let started = Instant::now();
    let mut delay = Duration::from_millis(250);
    loop {
        match apply_once(&opts).await {
            Ok(()) => return Ok(()),
            Err(e) if is_retryable(&e) && started.elapsed() < patience => {
                tracing::warn!(error = %e, "migrations not applied yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}

async fn apply_once(opts: &PgConnectOptions) -> Result<(), MigrateError> {
    let ms = LOCK_TIMEOUT.as_millis().to_string();
    let mut conn = opts
        .clone()
        .application_name("owp-migrate")
        .disable_statement_logging()
        .options([("statement_timeout", "0"), ("lock_timeout", ms.as_str())])
        .connect()
        .await?;
    let result = MIGRATOR.run(&mut conn).await;
    let _ = conn.close().await;
    result
}

/// Worth another try: the database is not reachable yet, or a lock was busy too long.
fn is_retryable(e: &MigrateError) -> bool {
    let MigrateError::Execute(e) = e else {
        return false;
    };
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => true,
        // 57P03 cannot_connect_now (starting up), 55P03 lock_not_available (lock_timeout)
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("57P03" | "55P03")),
        _ => false,
    }
}
