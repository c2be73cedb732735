//! Stale PRs: `pr_opened` tasks older than `OWP_PR_STALE_AFTER` (tasks_pr_opened_by_age).

use std::time::Duration;

use crate::store::Db;

use super::StoreResult;
use crate::wire::stale_prs::StalePr;

/// The oldest stale PRs first, of these repos (`None`: all).
pub async fn list(
    pool: &Db,
    stale_after: Duration,
    repos: Option<&[String]>,
    limit: i64,
) -> StoreResult<Vec<StalePr>> {
    let rows = sqlx::query_as!(
        StalePr,
        r#"select id as task_id, repo, pr_url, worker_id, pr_opened_at as "pr_opened_at!"
           from tasks
           where status = 'pr_opened' and pr_opened_at < now() - make_interval(secs => $1)
             and ($2::text[] is null or repo = any($2))
           order by pr_opened_at, id
           limit $3"#,
        stale_after.as_secs_f64(),
        repos,
        limit,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// Which of `ids` are stale PRs now, in these repos (`None`: any).
pub async fn which_are_stale(
    pool: &Db,
    stale_after: Duration,
    ids: &[String],
    repos: Option<&[String]>,
) -> StoreResult<Vec<String>> {
    let ids = sqlx::query_scalar!(
        "select id from tasks
         where id = any($1) and status = 'pr_opened'
           and pr_opened_at < now() - make_interval(secs => $2)
           and ($3::text[] is null or repo = any($3))",
        ids,
        stale_after.as_secs_f64(),
        repos,
    )
    .fetch_all(pool)
    .await?;
    Ok(ids)
}
