//! Repositories and their review budgets.

use crate::store::Db;
use sqlx::PgConnection;

use super::audit::{insert_event, Event};
use super::StoreResult;

pub struct RepoSettings {
    pub repo: String,
    pub max_open_prs: i32,
    pub area_locks_enabled: bool,
    /// `None` keeps the current prefix; `Some(None)` removes it.
    pub pr_url_prefix: Option<Option<String>>,
    /// `None` keeps the current choice.
    pub github_write_back: Option<bool>,
    /// `None` keeps the current cap; `Some(None)` falls back to the server's setting.
    pub max_open_prs_per_worker: Option<Option<i32>>,
    /// `None` keeps the list; `Some(None)` removes it (every worker may).
    pub allow_workers: Option<Option<Vec<String>>>,
    /// `None` keeps the list.
    pub deny_workers: Option<Vec<String>>,
    /// `None` keeps the tier.
    pub min_trust_tier: Option<i16>,
    /// `None` keeps the choice.
    pub claim_approval: Option<bool>,
    /// `None` keeps the weight.
    pub fair_share: Option<i32>,
}

pub enum Upserted {
    Created,
    Updated,
    /// Area locks cannot be turned on while these areas have more than one open task:
    /// I5 would not hold. Nothing was changed.
    AreasOpenTwice(Vec<String>),
}

/// Whether the pool has this repo.
pub async fn exists(pool: &Db, repo: &str) -> StoreResult<bool> {
    let found = sqlx::query_scalar!(
        r#"select exists (select 1 from repositories where repo = $1) as "found!""#,
        repo
    )
    .fetch_one(pool)
    .await?;
    Ok(found)
}

/// Creates the repo or updates its settings. The repo row is locked first, so the change
/// and the claims that count this repo's slots and areas (under the same lock) are
/// serialised: a claim sees either the old settings or the new ones with their flags.
pub async fn upsert_repo(pool: &Db, r: &RepoSettings, actor: &str) -> StoreResult<Upserted> {
    let mut tx = super::begin(pool).await?;
    let locks_were_on = sqlx::query_scalar!(
        "select area_locks_enabled from repositories where repo = $1 for update",
        r.repo
    )
    .fetch_optional(&mut *tx)
    .await?;
    if r.area_locks_enabled && locks_were_on == Some(false) {
        let twice = areas_open_twice(&mut tx, &r.repo).await?;
        if !twice.is_empty() {
            return Ok(Upserted::AreasOpenTwice(twice));
        }
    }
    sqlx::query!(
        "insert into repositories (repo, max_open_prs, area_locks_enabled, pr_url_prefix, github_write_back,
                                   max_open_prs_per_worker, allow_workers, deny_workers, min_trust_tier,
                                   claim_approval, fair_share)
         values ($1, $2, $3, $5, coalesce($6, false), $8, $10::text[], coalesce($11::text[], '{}'), coalesce($12::int2, 0),
                 coalesce($13, false), coalesce($14::int4, 1))
         on conflict (repo) do update
             set max_open_prs = excluded.max_open_prs,
                 area_locks_enabled = excluded.area_locks_enabled,
                 pr_url_prefix = case when $4 then excluded.pr_url_prefix
                                      else repositories.pr_url_prefix end,
                 github_write_back = coalesce($6, repositories.github_write_back),
                 max_open_prs_per_worker = case when $7 then excluded.max_open_prs_per_worker
                                                else repositories.max_open_prs_per_worker end,
                 allow_workers = case when $9 then excluded.allow_workers
                                      else repositories.allow_workers end,
                 deny_workers = coalesce($11::text[], repositories.deny_workers),
                 min_trust_tier = coalesce($12::int2, repositories.min_trust_tier),
                 claim_approval = coalesce($13, repositories.claim_approval),
                 fair_share = coalesce($14::int4, repositories.fair_share),
                 updated_at = now()",
        r.repo,
        r.max_open_prs,
        r.area_locks_enabled,
        r.pr_url_prefix.is_some(),
        r.pr_url_prefix.clone().flatten(),
        r.github_write_back,
        r.max_open_prs_per_worker.is_some(),
        r.max_open_prs_per_worker.flatten(),
        r.allow_workers.is_some(),
        r.allow_workers.clone().flatten() as Option<Vec<String>>,
        r.deny_workers.as_deref() as Option<&[String]>,
        r.min_trust_tier,
        r.claim_approval,
        r.fair_share,
    )
    .execute(&mut *tx)
    .await?;
    if locks_were_on.is_some_and(|was| was != r.area_locks_enabled) {
        flag_area_holders(&mut tx, &r.repo, r.area_locks_enabled).await?;
    }
    let created = locks_were_on.is_none();
    record(&mut tx, r, actor, created).await?;
    super::commit(tx).await?;
    Ok(if created {
        Upserted::Created
    } else {
        Upserted::Updated
    })
}

/// Areas of the repo with more than one open task (offered, leased, in_progress, blocked,
/// pr_opened); uses tasks_open_by_repo.
async fn areas_open_twice(tx: &mut PgConnection, repo: &str) -> StoreResult<Vec<String>> {
    let areas = sqlx::query_scalar!(
        r#"select area as "area!" from tasks
           where repo = $1 and area is not null
             and task_is_open(status)
           group by area having count(*) > 1 order by area"#,
        repo
    )
    .fetch_all(tx)
    .await?;
    Ok(areas)
}

/// Makes `holds_area_lock` mean "holds it under the current settings": with locks turned
/// on, every open task with an area holds its area (at most one per area, checked above;
/// tasks_one_per_area enforces it); turned off, none does.
async fn flag_area_holders(tx: &mut PgConnection, repo: &str, locks_on: bool) -> StoreResult<()> {
    if locks_on {
        sqlx::query!(
            "update tasks set holds_area_lock = true
             where repo = $1 and area is not null and not holds_area_lock
               and task_is_open(status)",
            repo
        )
        .execute(tx)
        .await?;
    } else {
        sqlx::query!(
            "update tasks set holds_area_lock = false where repo = $1 and holds_area_lock",
            repo
        )
        .execute(tx)
        .await?;
    }
    Ok(())
}

/// The audit event of an upsert: the settings as sent (omitted ones as null).
async fn record(
    tx: &mut PgConnection,
    r: &RepoSettings,
    actor: &str,
    created: bool,
) -> StoreResult<()> {
    insert_event(
        tx,
        Event {
            kind: if created {
                "repo_created"
            } else {
                "repo_updated"
            },
            repo: Some(&r.repo),
            actor,
            data: Some(serde_json::json!({
                "max_open_prs": r.max_open_prs, "area_locks_enabled": r.area_locks_enabled,
                "pr_url_prefix": r.pr_url_prefix, "github_write_back": r.github_write_back,
                "max_open_prs_per_worker": r.max_open_prs_per_worker,
                "allow_workers": r.allow_workers, "deny_workers": r.deny_workers,
                "min_trust_tier": r.min_trust_tier, "claim_approval": r.claim_approval,
                "fair_share": r.fair_share,
            })),
            ..Event::default()
        },
    )
    .await?;
    Ok(())
}
