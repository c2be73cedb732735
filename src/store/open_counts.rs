//! Open tasks per repo (migration 0012): a base per repo plus the changes appended by the
//! triggers on `tasks` since the base was last brought up to date.

use crate::store::Db;

use super::StoreResult;

/// Folds the changes committed so far into the base; how many change rows it folded.
/// Changes of transactions still open are not visible to it and wait for the next run;
/// several replicas compacting at once each take distinct rows (the delete locks them).
pub async fn compact(pool: &Db) -> StoreResult<u64> {
    let folded = sqlx::query_scalar!(
        r#"with moved as (delete from repo_open_changes returning repo, delta),
           folded as (
               insert into repo_open_counts (repo, open)
               select repo, sum(delta)::int from moved group by repo
               on conflict (repo) do update set open = repo_open_counts.open + excluded.open)
           select count(*) as "n!" from moved"#
    )
    .fetch_one(pool)
    .await?;
    Ok(folded as u64)
}
