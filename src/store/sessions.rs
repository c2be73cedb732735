//! Dashboard sessions: the cookie's token is kept only as a digest; each session names
//! the admin token it came from (by digest), so rotating that token out ends it.

use std::time::Duration;

use crate::store::Db;
use chrono::{DateTime, Utc};

use super::StoreResult;

pub struct Session {
    pub admin_digest: Vec<u8>,
    pub actor: String,
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

/// Stores a new session (and drops expired ones, so the table stays small).
pub async fn create(
    pool: &Db,
    digest: &[u8],
    admin_digest: &[u8],
    actor: &str,
    csrf: &str,
    ttl: Duration,
) -> StoreResult<DateTime<Utc>> {
    let mut tx = super::begin(pool).await?;
    sqlx::query!("delete from dashboard_sessions where expires_at < now()")
        .execute(&mut *tx)
        .await?;
    let expires = sqlx::query_scalar!(
        "insert into dashboard_sessions (digest, admin_digest, actor, csrf, expires_at)
         values ($1, $2, $3, $4, now() + make_interval(secs => $5))
         returning expires_at",
        digest,
        admin_digest,
        actor,
        csrf,
        ttl.as_secs_f64(),
    )
    .fetch_one(&mut *tx)
    .await?;
    super::commit(tx).await?;
    Ok(expires)
}

/// The live session with this digest.
pub async fn find(pool: &Db, digest: &[u8]) -> StoreResult<Option<Session>> {
    let s = sqlx::query_as!(
        Session,
        "select admin_digest, actor, csrf, expires_at from dashboard_sessions
         where digest = $1 and expires_at > now()",
        digest
    )
    .fetch_optional(pool)
    .await?;
    Ok(s)
}

pub async fn delete(pool: &Db, digest: &[u8]) -> StoreResult<()> {
    sqlx::query!("delete from dashboard_sessions where digest = $1", digest)
        .execute(pool)
        .await?;
    Ok(())
}
