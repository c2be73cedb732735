//! Repositories and their review budgets.

use sqlx::PgPool;

use super::audit::{insert_event, Event};
use super::StoreResult;

pub struct RepoSettings {
    pub repo: String,
    pub max_open_prs: i32,
    pub area_locks_enabled: bool,
}

/// Creates the repo or updates its settings; true when it was created.
pub async fn upsert_repo(pool: &PgPool, r: &RepoSettings) -> StoreResult<bool> {
    let mut tx = super::begin(pool).await?;
    // xmax = 0 only on a freshly inserted row: tells insert from update in one statement
    let created = sqlx::query_scalar!(
        r#"insert into repositories (repo, max_open_prs, area_locks_enabled) values ($1, $2, $3)
           on conflict (repo) do update
               set max_open_prs = excluded.max_open_prs,
                   area_locks_enabled = excluded.area_locks_enabled,
                   updated_at = now()
           returning (xmax = 0) as "created!""#,
        r.repo,
        r.max_open_prs,
        r.area_locks_enabled,
    )
    .fetch_one(&mut *tx)
    .await?;
    insert_event(
        &mut tx,
        Event {
            kind: if created {
                "repo_created"
            } else {
                "repo_updated"
            },
            repo: Some(&r.repo),
            data: Some(serde_json::json!({
                "max_open_prs": r.max_open_prs, "area_locks_enabled": r.area_locks_enabled,
            })),
            ..Event::default()
        },
    )
    .await?;
    tx.commit().await?;
    Ok(created)
}
