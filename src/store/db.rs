//! The request pool, direct to PostgreSQL or through a transaction-mode pooler.
//!
//! Direct, a statement is sqlx's: prepared once per connection and cached, and a lone
//! statement runs outside any transaction. Behind PgBouncer in transaction mode
//! (`OWP_DB_POOLER=transaction`) a server session is ours only from BEGIN to COMMIT, and
//! PgBouncer 1.18 (Debian 12's) tracks no prepared statement, so [`Db`] then:
//! - turns sqlx's statement cache off: every statement is parsed in the transaction that
//!   runs it, never bound to a name parsed in an earlier one;
//! - opens every transaction with `DEALLOCATE ALL`: sqlx numbers its statements per client
//!   connection (`sqlx_s_1`, …), so names another client left on the server session would
//!   collide with ours (it takes a snapshot, so a transaction's isolation is said in its
//!   BEGIN: [`Begin`]);
//! - runs a lone statement in a transaction of its own: sqlx parses and describes it in one
//!   round trip and binds it in the next, and between the two PgBouncer may hand the server
//!   session to another client (whose unnamed statement ours would then execute);
//! - sets the timeouts and `jit = off` per transaction (`SET LOCAL`): PgBouncer refuses the `options`
//!   startup parameter that carries them on a direct connection.
//!
//! The cost is two round trips more per lone statement and one statement more per
//! transaction (docs/BENCHMARKS.md). The leader's lock session, LISTEN and migrations
//! need a session of their own and always use `OWP_LEADER_DATABASE_URL`, the direct URL.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt, TryFutureExt, TryStreamExt};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use sqlx::{Describe, Either, Execute, Executor, PgConnection, PgPool, Postgres, Transaction};

/// The request pool: sqlx's pool, and whether a transaction-mode pooler sits between it and
/// PostgreSQL. Derefs to the pool for its gauges and `close`; statements run through
/// `&Db`, which is an sqlx executor.
#[derive(Clone, Debug)]
pub struct Db {
    pool: PgPool,
    /// `Some(what follows BEGIN in every transaction)` behind a transaction-mode pooler.
    pooled_begin: Option<Arc<str>>,
    /// Where a connection that keeps its session (LISTEN) goes; unset, the pool's own
    /// options when direct, nowhere behind a pooler.
    session_options: Option<Arc<PgConnectOptions>>,
}

impl Db {
    /// A pool that talks to PostgreSQL directly.
    pub fn direct(pool: PgPool) -> Self {
        Db {
            pool,
            pooled_begin: None,
            session_options: None,
        }
    }

    /// A pool whose connections go through a transaction-mode pooler; `set_local` is the
    /// `SET LOCAL` list every transaction starts with (the timeouts, no JIT).
    pub fn through_pooler(pool: PgPool, set_local: &[(&str, String)]) -> Self {
        let mut begin = String::from("DEALLOCATE ALL;");
        for (name, value) in set_local {
            // names and values are ours (numbers we formatted, `off`)
            begin.push_str(&format!(" SET LOCAL {name} = '{value}';"));
        }
        Db {
            pool,
            pooled_begin: Some(begin.into()),
            session_options: None,
        }
    }

    /// Connections that keep a session (LISTEN) go to `options`: PostgreSQL directly.
    pub fn with_session_options(mut self, options: PgConnectOptions) -> Self {
        self.session_options = Some(Arc::new(options));
        self
    }

    /// Where a connection that keeps its session goes; `None` behind a pooler when no
    /// direct options were given (a LISTEN there would hear on a session other clients
    /// are handed, and they would receive its notifications).
    pub fn session_options(&self) -> Option<PgConnectOptions> {
        match (&self.session_options, &self.pooled_begin) {
            (Some(o), _) => Some((**o).clone()),
            (None, None) => Some((*self.pool.connect_options()).clone()),
            (None, Some(_)) => None,
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn is_pooled(&self) -> bool {
        self.pooled_begin.is_some()
    }

    /// Opens a transaction (not cancel-safe: callers use [`super::begin`]).
    pub(super) async fn begin_raw(
        &self,
        kind: Begin,
    ) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        match (&self.pooled_begin, kind) {
            (None, Begin::ReadWrite) => self.pool.begin().await,
            (None, kind) => self.pool.begin_with(kind.sql()).await,
            (Some(then), kind) => {
                self.pool
                    .begin_with(format!("{}; {then}", kind.sql()))
                    .await
            }
        }
    }

    /// A connection for a few statements that need no transaction between them; behind a
    /// pooler it is one (see the module docs). End it with [`Session::finish`].
    pub async fn session(&self) -> Result<Session, sqlx::Error> {
        Ok(match self.pooled_begin {
            None => Session::Conn(self.pool.acquire().await?),
            Some(_) => Session::Tx(super::begin(self).await?),
        })
    }
}

impl From<PgPool> for Db {
    fn from(pool: PgPool) -> Self {
        Db::direct(pool)
    }
}

impl Deref for Db {
    type Target = PgPool;

    fn deref(&self) -> &PgPool {
        &self.pool
    }
}

/// What kind of transaction [`super::begin_as`] opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Begin {
    ReadWrite,
    /// Writes nothing; reads see each statement's own snapshot.
    ReadOnly,
    /// Writes nothing; every statement reads one snapshot, so figures add up.
    Snapshot,
}

impl Begin {
    fn sql(self) -> &'static str {
        match self {
            Begin::ReadWrite => "BEGIN",
            Begin::ReadOnly => "BEGIN READ ONLY",
            Begin::Snapshot => "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        }
    }
}

/// A connection from [`Db::session`]: pooled as is, or inside a transaction behind a
/// pooler.
pub enum Session {
    Conn(PoolConnection<Postgres>),
    Tx(Transaction<'static, Postgres>),
}

impl Session {
    /// Ends the session: commits its transaction, if it has one (a read-only one).
    pub async fn finish(self) -> Result<(), sqlx::Error> {
        match self {
            Session::Conn(_) => Ok(()),
            Session::Tx(tx) => super::commit(tx).await,
        }
    }
}

impl Deref for Session {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        match self {
            Session::Conn(c) => c,
            Session::Tx(t) => t,
        }
    }
}

impl DerefMut for Session {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match self {
            Session::Conn(c) => c,
            Session::Tx(t) => t,
        }
    }
}

type Item = Result<Either<PgQueryResult, PgRow>, sqlx::Error>;

impl<'p> Executor<'p> for &'_ Db {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Item>
    where
        E: 'q + Execute<'q, Postgres>,
    {
        if self.pooled_begin.is_none() {
            return (&self.pool).fetch_many(query);
        }
        let db = self.clone();
        // the whole result is read inside the transaction, then handed out: the store's
        // statements return bounded results
        async move {
            let mut tx = super::begin(&db).await?;
            let items: Vec<_> = (&mut *tx).fetch_many(query).try_collect().await?;
            super::commit(tx).await?;
            Ok::<_, sqlx::Error>(futures::stream::iter(items.into_iter().map(Ok)))
        }
        .try_flatten_stream()
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> futures::future::BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Postgres>,
    {
        if self.pooled_begin.is_none() {
            return (&self.pool).fetch_optional(query);
        }
        let db = self.clone();
        async move {
            let mut tx = super::begin(&db).await?;
            let row = (&mut *tx).fetch_optional(query).await?;
            super::commit(tx).await?;
            Ok(row)
        }
        .boxed()
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [PgTypeInfo],
    ) -> futures::future::BoxFuture<'e, Result<PgStatement<'q>, sqlx::Error>> {
        // a prepared statement outlives its transaction: not through a pooler
        (&self.pool).prepare_with(sql, parameters)
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> futures::future::BoxFuture<'e, Result<Describe<Postgres>, sqlx::Error>> {
        (&self.pool).describe(sql)
    }
}
