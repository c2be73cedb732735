//! Every SQL statement of the service, grouped by table or concern. Nothing above this
//! module speaks SQL; nothing in here speaks HTTP.
//!
//! Status classes are said by name (`task_is_live(status)` and its siblings, migration
//! `status_classes`, each the SQL twin of a `TaskStatus` method): never a spelled-out list.
//!
//! # What triggers write
//! Triggers add rows that no statement here names; every function that changes a
//! task's status or ends a lease fires them (its doc says "fires the status triggers"):
//! - `tasks_open_change_*` (migration `repo_open_counts`): a task that starts or stops
//!   being open appends a ±1 to `repo_open_changes`, folded into `repo_open_counts` every
//!   second (`open_counts::compact`); a poll reads base + changes to skip full repos.
//! - `tasks_github_outbox` (migrations `github`, `status_classes`): a task imported from a
//!   GitHub issue whose repo writes back, moving to a written-back status
//!   (`github_writeback_event`), appends a row to `github_outbox`, which the leader
//!   delivers (`scheduler::github_outbox`).
//! - `leases_count_reputation` (migrations `reputation`, `trust_that_holds`): a lease whose
//!   outcome changes (`end_reason`, `on_time`, `last_report`, `quality`, `credited`) moves
//!   its worker's counters in `worker_reputation` (credited leases only);
//!   `leases_keep_pruned_reputation` carries them into `worker_reputation_pruned` when
//!   retention deletes the lease.

pub mod admin_actions;
pub mod analytics;
pub mod approvals;
pub mod audit;
pub mod claim;
mod codec;
mod db;
pub mod github;
pub mod invariants;
pub mod leader_lock;
pub mod leader_record;
pub mod migrations;
pub mod notifications;
pub mod offers;
pub mod open_counts;
pub mod overview;
pub mod repos;
pub mod reputation;
pub mod retention;
pub mod sessions;
pub mod signals;
pub mod stale_prs;
pub mod sweeps;
pub mod tasks;
pub mod views;
pub mod workers;

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

pub use db::{Begin, Db, Session};

pub static MIGRATOR: Migrator = sqlx::migrate!();

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached, is overloaded or shutting down, or the transaction
    /// lost a race: retryable, 503.
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    /// A uniqueness or reference rule of the schema refused the write: 409.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// Text PostgreSQL cannot store (a NUL character, in text or jsonb): 400. Input rules
    /// refuse it per field first; this catches free-form JSON and ids.
    #[error("text the database cannot store: {0}")]
    BadText(sqlx::Error),
    #[error(transparent)]
    Internal(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &e {
            // the connection is gone or garbled (a protocol error here is a stream that broke
            // mid-message, e.g. a proxy that closed it): the request can be retried
            E::PoolTimedOut
            | E::PoolClosed
            | E::Io(_)
            | E::Tls(_)
            | E::Protocol(_)
            | E::WorkerCrashed => Self::Unavailable(e),
            E::Database(db) => match db.code().as_deref().map(classify) {
                Some(Class::Retryable) => {
                    crate::metrics::db_retryable_error(db.code().as_deref().unwrap_or("?"));
                    Self::Unavailable(e)
                }
                Some(Class::Duplicate) => Self::Conflict("duplicate"),
                Some(Class::BadText) => Self::BadText(e),
                Some(Class::Bug) | None => Self::Internal(e),
            },
            _ => Self::Internal(e),
        }
    }
}

/// What a PostgreSQL error (by SQLSTATE) means for the request that met it.
#[derive(Debug, PartialEq, Eq)]
pub enum Class {
    /// Try again later: the database is unreachable, overloaded, shutting down, read-only
    /// after a failover, or the transaction lost a race (serialization, deadlock, lock).
    Retryable,
    /// A uniqueness rule of the schema refused the write.
    Duplicate,
    /// Text PostgreSQL cannot store (NUL in text or jsonb).
    BadText,
    /// Anything else is a bug of ours.
    Bug,
}

pub fn classify(sqlstate: &str) -> Class {
    match sqlstate {
        // connection exceptions, insufficient resources (too many connections, disk, memory),
        // operator intervention (admin shutdown, cannot connect now; 57014 statement timeout)
        c if c.starts_with("08") || c.starts_with("53") || c.starts_with("57") => Class::Retryable,
        // read-only transaction (a replica promoted or demoted under us), serialization
        // failure, deadlock, lock not available (lock_timeout)
        "25006" | "40001" | "40P01" | "55P03" => Class::Retryable,
        "23505" => Class::Duplicate,
        // character_not_in_repertoire, untranslatable_character (jsonb \u0000)
        "22021" | "22P05" => Class::BadText,
        _ => Class::Bug,
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Opens a transaction on a pooled connection, timing the wait (pool acquire + BEGIN) for
/// `owp_db_acquire_duration_seconds`: a rising wait means the pool is too small or the
/// database is slow.
///
/// Cancel-safe, which sqlx's own `begin` is not on PostgreSQL (sqlx#4393): a future
/// dropped during the BEGIN round trip returns the connection to the pool inside an open
/// transaction, and the next borrower's writes run in it and are lost. Handlers are
/// dropped at any await when a client hangs up or a request times out, so the BEGIN runs
/// in a task of its own: abandoned, that task still ends with a `Transaction`, whose drop
/// rolls it back. (The test `a_cancelled_begin_never_leaves_...` fails without this.)
pub async fn begin(db: &Db) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    begin_as(db, Begin::ReadWrite).await
}

/// [`begin`], for a transaction of the given kind (said in its BEGIN: no round trip of its
/// own, and behind a pooler the only place it may be said).
pub async fn begin_as(
    db: &Db,
    kind: Begin,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    let started = std::time::Instant::now();
    let db = db.clone();
    let tx = tokio::spawn(async move { db.begin_raw(kind).await })
        .await
        .map_err(|e| {
            sqlx::Error::Protocol(format!("the task opening a transaction failed: {e}"))
        })?;
    crate::metrics::db_acquire(started.elapsed());
    tx
}

/// Commits `tx`, cancel-safe like [`begin`]: sqlx's `commit` dropped while COMMIT is in
/// flight still counts the transaction as open and sends a ROLLBACK after it (PostgreSQL
/// warns "there is no transaction in progress"), and one dropped before COMMIT is sent
/// rolls back work the handler had decided to keep. In a task of its own, a commit once
/// started always finishes, and the connection goes back to the pool in the state the
/// pool believes it is in. (The test `a_cancelled_commit_...` fails without this.)
pub async fn commit(tx: sqlx::Transaction<'static, sqlx::Postgres>) -> Result<(), sqlx::Error> {
    tokio::spawn(tx.commit()).await.map_err(|e| {
        sqlx::Error::Protocol(format!("the task committing a transaction failed: {e}"))
    })?
}

/// Pool settings that keep a SKIP LOCKED queue healthy: bounded statements, no idle
/// transactions left holding row locks, and a bounded wait for a connection so a down
/// database answers 503 quickly instead of hanging requests.
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    pub statement_timeout: Duration,
    /// `url` is a transaction-mode pooler (PgBouncer), not PostgreSQL ([`Db`]).
    pub through_pooler: bool,
}

pub async fn connect(url: &str, s: &PoolSettings) -> Result<Db, sqlx::Error> {
    let db = connect_lazy(url, s)?;
    // connect now, so a wrong URL fails here
    drop(db.acquire().await?);
    Ok(db)
}

/// A pool that connects on first use, so `serve` starts (and reports not-ready) while the
/// database is still down.
pub fn connect_lazy(url: &str, s: &PoolSettings) -> Result<Db, sqlx::Error> {
    let opts: PgConnectOptions = url.parse()?;
    let settings = request_settings(s);
    Ok(if s.through_pooler {
        // no statement cache and no `options` startup parameter: see `db`
        let opts = opts
            .application_name("owp-pool")
            .disable_statement_logging()
            .statement_cache_capacity(0);
        Db::through_pooler(pool_options(s).connect_lazy_with(opts), &settings)
    } else {
        let opts = opts
            .application_name("owp-pool")
            .disable_statement_logging()
            .options(settings);
        Db::direct(pool_options(s).connect_lazy_with(opts))
    })
}

/// A pooled connection idle this long is pinged before it is handed out; a busier one is
/// trusted (a dead one fails its statement, is dropped, and the request answers 503).
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(30);

fn pool_options(s: &PoolSettings) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(s.max_connections)
        .min_connections(0)
        .acquire_timeout(s.acquire_timeout)
        .idle_timeout(Duration::from_secs(300))
        // sqlx pings before every acquire by default: a round trip per request for nothing
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IF_IDLE_FOR {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

/// The server-side settings of every request: its timeouts (milliseconds), and no JIT. A
/// request's statements are short; JIT compiles a plan whose estimated cost passes
/// `jit_above_cost`, and an estimate can be inflated without the statement being slow (the
/// claim's `enable_sort = off` adds 10^10 to any sort): that cost a second per poll once
/// (issue 25). sqlx logs statements, and slow ones at WARN, with their SQL text:
/// [`connect_lazy`] turns that off too.
fn request_settings(s: &PoolSettings) -> [(&'static str, String); 3] {
    let ms = |d: Duration| d.as_millis().to_string();
    [
        ("jit", "off".to_string()),
        ("statement_timeout", ms(s.statement_timeout)),
        (
            "idle_in_transaction_session_timeout",
            ms(s.statement_timeout * 2),
        ),
    ]
}

/// Readiness: the database answers and every migration this binary knows is applied.
pub async fn migrations_current(pool: &Db) -> StoreResult<bool> {
    // not a checked query: the table is sqlx's own and may not exist yet
    let applied: Vec<i64> =
        sqlx::query_scalar("select version from _sqlx_migrations where success order by version")
            .fetch_all(pool)
            .await
            .or_else(|e| match &e {
                // no migrations table yet: not migrated
                sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01") => Ok(vec![]),
                _ => Err(e),
            })?;
    Ok(MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .all(|m| applied.binary_search(&m.version).is_ok()))
}

/// A pool for the tools' own statements (benchmarks, their seeding and the invariant
/// checker), which never logs SQL, like the server's (a slow checker run logged its whole
/// text at WARN).
pub async fn tool_pool(url: &str, connections: u32) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    PgPoolOptions::new()
        .max_connections(connections)
        .connect_with(options.disable_statement_logging())
        .await
}

#[cfg(test)]
mod tests {
    use super::{classify, Class};

    #[test]
    fn errors_that_mean_try_again_are_retryable() {
        for code in [
            "08006", "08001", "53300", "53100", "53200", "57P01", "57P03", "57014", "25006",
            "40001", "40P01", "55P03",
        ] {
            assert_eq!(classify(code), Class::Retryable, "{code}");
        }
        assert_eq!(classify("23505"), Class::Duplicate);
        assert_eq!(classify("22021"), Class::BadText);
        for code in ["42P01", "23503", "22001", "XX000"] {
            assert_eq!(classify(code), Class::Bug, "{code}");
        }
    }
}
