//! Work signals between replicas: `NOTIFY owp_work` when work may have become claimable,
//! `LISTEN owp_work` on one direct connection per replica (not a request-pool connection),
//! and the cheap check the fallback runs when a notification may have been lost.

use crate::store::Db;
use sqlx::postgres::{PgListener, PgPoolOptions};

use super::StoreResult;

pub const CHANNEL: &str = "owp_work";

/// Tells every replica that about `hint` units of work may be claimable; `from` names the
/// sender, so it can ignore its own signal.
pub async fn notify(pool: &Db, from: &str, hint: usize) -> StoreResult<()> {
    sqlx::query!(
        "select pg_notify($1, $2)",
        CHANNEL,
        format!("{from} {hint}")
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Whether any task is ready, past its retry backoff and its `not_before`, and held for
/// nobody (tasks_ready_queue): a task coming due wakes a waiting poll within a second.
pub async fn ready_work_exists(pool: &Db) -> StoreResult<bool> {
    let exists = sqlx::query_scalar!(
        r#"select exists (select 1 from tasks where status = 'ready'
                          and (retry_at is null or retry_at <= now())
                          and (not_before is null or not_before <= now())
                          and (reserved_until is null or reserved_until <= now())) as "e!""#
    )
    .fetch_one(pool)
    .await?;
    Ok(exists)
}

/// A signal received: who sent it and how much work it announces.
pub struct Signal {
    pub from: String,
    pub hint: usize,
}

/// The replica's `LISTEN` connection: its own one-connection pool, direct to PostgreSQL
/// (`Db::session_options`: a transaction-mode pooler cannot keep a LISTEN), so listening
/// never takes a request slot.
pub struct Listener(PgListener);

impl Listener {
    pub async fn connect(request_pool: &Db) -> StoreResult<Self> {
        let options = request_pool.session_options().ok_or_else(|| {
            sqlx::Error::Configuration(
                "no direct URL to LISTEN on (OWP_LEADER_DATABASE_URL)".into(),
            )
        })?;
        let own = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(options);
        let mut l = PgListener::connect_with(&own).await?;
        l.listen(CHANNEL).await?;
        Ok(Self(l))
    }

    /// The next signal; `Ok(None)` when the connection was lost and re-established
    /// (signals sent meanwhile are gone).
    pub async fn next(&mut self) -> StoreResult<Option<Signal>> {
        let Some(n) = self.0.try_recv().await? else {
            return Ok(None);
        };
        let (from, hint) = n.payload().split_once(' ').unwrap_or((n.payload(), "1"));
        Ok(Some(Signal {
            from: from.to_string(),
            hint: hint.parse().unwrap_or(1),
        }))
    }
}
