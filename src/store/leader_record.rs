//! The leader record (the `scheduler_state` row): which replica leads, and when it last
//! swept. Informational: the advisory lock (`leader_lock`) decides who leads.

use crate::store::Db;
use chrono::{DateTime, Utc};

use super::StoreResult;

pub struct LeaderRecord {
    pub leader: Option<String>,
    pub last_sweep_at: Option<DateTime<Utc>>,
}

pub async fn read_leader_record(pool: &Db) -> StoreResult<LeaderRecord> {
    let r = sqlx::query!("select leader, last_sweep_at from scheduler_state where singleton")
        .fetch_one(pool)
        .await?;
    Ok(LeaderRecord {
        leader: r.leader,
        last_sweep_at: r.last_sweep_at,
    })
}

/// Called by a replica that just won the election.
pub async fn record_leader(pool: &Db, replica: &str) -> StoreResult<()> {
    sqlx::query!(
        "update scheduler_state set leader = $1, leader_since = now() where singleton",
        replica
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Called by the leader after a completed sweep; a replica that lost the lead cannot
/// overwrite its successor's name, because the update names the expected leader.
pub async fn record_sweep(pool: &Db, replica: &str) -> StoreResult<()> {
    sqlx::query!(
        "update scheduler_state set last_sweep_at = now() where singleton and leader = $1",
        replica
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Called on a graceful step-down, so the record does not name a replica that left.
pub async fn clear_leader(pool: &Db, replica: &str) -> StoreResult<()> {
    sqlx::query!(
        "update scheduler_state set leader = null where singleton and leader = $1",
        replica
    )
    .execute(pool)
    .await?;
    Ok(())
}
