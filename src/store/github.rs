//! GitHub's side of the pool: webhook deliveries already handled, the tasks a webhook
//! names (by PR link or issue key), and the write-back outbox the leader delivers.

use std::time::Duration;

use crate::store::Db;

use super::StoreResult;
use crate::domain::status::TaskStatus;
use crate::wire::github::OutboxEntry;

/// Whether a delivery with this id was handled before.
pub async fn delivery_seen(pool: &Db, delivery_id: &str) -> StoreResult<bool> {
    let seen = sqlx::query_scalar!(
        r#"select exists (select 1 from github_deliveries where delivery_id = $1) as "seen!""#,
        delivery_id
    )
    .fetch_one(pool)
    .await?;
    Ok(seen)
}

/// Records a handled delivery (a second record of the same id changes nothing).
pub async fn record_delivery(
    pool: &Db,
    delivery_id: &str,
    event: &str,
    outcome: &str,
) -> StoreResult<()> {
    sqlx::query!(
        "insert into github_deliveries (delivery_id, event, outcome) values ($1, $2, $3)
         on conflict (delivery_id) do nothing",
        delivery_id,
        event,
        outcome
    )
    .execute(pool)
    .await?;
    Ok(())
}

pub struct TaskRef {
    pub id: String,
    pub repo: String,
    pub status: TaskStatus,
}

/// The task that holds the PR with this key (domain::pr_link); a task whose link was
/// reported before keys were kept is found by its link as written.
pub async fn task_by_pr(pool: &Db, key: &str, url: &str) -> StoreResult<Option<TaskRef>> {
    let trimmed = url.trim_end_matches('/');
    let t = sqlx::query_as!(
        TaskRef,
        r#"(select id as "id!", repo as "repo!", status as "status!: TaskStatus" from tasks
            where pr_key = $1
              and task_holds_pr(status)
            limit 1)
           union all
           (select id, repo, status from tasks
            where pr_key is null and pr_url in ($2, $3)
            order by updated_at desc limit 1)
           limit 1"#,
        key,
        trimmed,
        format!("{trimmed}/"),
    )
    .fetch_optional(pool)
    .await?;
    Ok(t)
}

/// Every task (of any pool repo) imported from this issue key.
pub async fn tasks_by_external_id(pool: &Db, external_id: &str) -> StoreResult<Vec<TaskRef>> {
    let ts = sqlx::query_as!(
        TaskRef,
        r#"select id, repo, status as "status: TaskStatus" from tasks where external_id = $1"#,
        external_id
    )
    .fetch_all(pool)
    .await?;
    Ok(ts)
}

/// A GitHub event in a task's history (audit actor `github`).
pub async fn record_task_event(
    pool: &Db,
    task: &TaskRef,
    kind: &str,
    data: serde_json::Value,
) -> StoreResult<()> {
    // one statement: no transaction needed around it (but a pooler's, `Db::session`)
    let mut conn = pool.session().await?;
    super::audit::insert_event(
        &mut conn,
        super::audit::Event {
            kind,
            task_id: Some(&task.id),
            repo: Some(&task.repo),
            data: Some(data),
            actor: "github",
            ..Default::default()
        },
    )
    .await?;
    Ok(conn.finish().await?)
}

/// The repo's `pr_opened` tasks, oldest first: (task id, PR link).
pub async fn open_prs(pool: &Db, repo: &str, limit: i64) -> StoreResult<Vec<(String, String)>> {
    let rows = sqlx::query!(
        r#"select id, pr_url as "pr_url!" from tasks
           where repo = $1 and status = 'pr_opened' and pr_url is not null
           order by updated_at limit $2"#,
        repo,
        limit
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.pr_url)).collect())
}

/// One write-back event to deliver.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub task_id: String,
    pub gh_repo: String,
    pub issue_number: i64,
    pub event: String,
    pub pr_url: Option<String>,
    pub attempt: i32,
    pub steps_done: i32,
    pub attempts: i32,
    pub uncertain: bool,
    /// An earlier `leased` event of this issue was made within the comment cooldown
    /// before this one (fixed by the rows' own times, so every retry plans alike).
    pub quiet: bool,
}

/// Claims up to `limit` due rows for `hold` (another leader will not take them meanwhile),
/// counting a try on each. Only the oldest pending row of each issue is due, so an issue
/// hears its events in order.
pub async fn claim_due(
    pool: &Db,
    limit: i64,
    hold: Duration,
    cooldown: Duration,
) -> StoreResult<Vec<OutboxRow>> {
    let rows = sqlx::query_as!(
        OutboxRow,
        r#"update github_outbox set attempts = attempts + 1,
               claimed_until = now() + make_interval(secs => $2)
           where id in (
               select o.id from github_outbox o
               where o.delivered_at is null and o.gave_up_at is null
                 and o.next_attempt_at <= now()
                 and (o.claimed_until is null or o.claimed_until < now())
                 and not exists (
                     select 1 from github_outbox e
                     where e.gh_repo = o.gh_repo and e.issue_number = o.issue_number
                       and e.id < o.id and e.delivered_at is null and e.gave_up_at is null)
               order by o.id
               limit $1
               for update skip locked)
           returning id, task_id, gh_repo, issue_number, event, pr_url, attempt,
                     steps_done, attempts, uncertain,
                     (event = 'leased' and exists (
                         select 1 from github_outbox e
                         where e.gh_repo = github_outbox.gh_repo
                           and e.issue_number = github_outbox.issue_number
                           and e.event = 'leased' and e.id < github_outbox.id
                           and e.created_at > github_outbox.created_at - make_interval(secs => $3))) as "quiet!""#,
        limit,
        hold.as_secs_f64(),
        cooldown.as_secs_f64(),
    )
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// GitHub accepted the row's steps up to `steps_done`.
pub async fn step_done(pool: &Db, id: i64, steps_done: i32) -> StoreResult<()> {
    sqlx::query!(
        "update github_outbox set steps_done = $2, uncertain = false where id = $1",
        id,
        steps_done
    )
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn delivered(pool: &Db, id: i64) -> StoreResult<()> {
    sqlx::query!(
        "update github_outbox set delivered_at = now(), claimed_until = null, last_error = null
         where id = $1",
        id
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Try again after `delay`; `count_try` false gives the try back (a rate limit is not the
/// row's failure).
pub async fn retry_later(
    pool: &Db,
    id: i64,
    delay: Duration,
    error: &str,
    uncertain: bool,
    count_try: bool,
) -> StoreResult<()> {
    sqlx::query!(
        "update github_outbox set next_attempt_at = now() + make_interval(secs => $2),
             claimed_until = null, last_error = $3, uncertain = uncertain or $4,
             attempts = attempts - case when $5 then 0 else 1 end
         where id = $1",
        id,
        delay.as_secs_f64(),
        error,
        uncertain,
        count_try,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Gives the row up for good: visible in the outbox list, the task's history and a metric.
pub async fn give_up(pool: &Db, row: &OutboxRow, error: &str) -> StoreResult<()> {
    let mut tx = super::begin(pool).await?;
    sqlx::query!(
        "update github_outbox set gave_up_at = now(), claimed_until = null, last_error = $2
         where id = $1",
        row.id,
        error
    )
    .execute(&mut *tx)
    .await?;
    super::audit::insert_event(
        &mut tx,
        super::audit::Event {
            kind: "github_write_back_failed",
            task_id: Some(&row.task_id),
            reason: Some(error),
            data: Some(serde_json::json!({
                "outbox_id": row.id, "event": row.event, "issue": format!("{}#{}", row.gh_repo, row.issue_number),
                "attempts": row.attempts,
            })),
            actor: "system",
            ..Default::default()
        },
    )
    .await?;
    super::commit(tx).await?;
    Ok(())
}

/// Rows still to deliver (not given up).
pub async fn pending(pool: &Db) -> StoreResult<i64> {
    let n = sqlx::query_scalar!(
        r#"select count(*) as "n!" from github_outbox where delivered_at is null and gave_up_at is null"#
    )
    .fetch_one(pool)
    .await?;
    Ok(n)
}

/// `pending` (not delivered yet), `failed` (given up) or `delivered`; newest first.
pub async fn list(pool: &Db, state: &str, limit: i64) -> StoreResult<Vec<OutboxEntry>> {
    let rows = sqlx::query!(
        r#"select id, task_id, gh_repo || '#' || issue_number as "issue!", event, attempts, steps_done,
                  created_at, next_attempt_at, delivered_at, gave_up_at, last_error
           from github_outbox
           where case $1
                   when 'pending' then delivered_at is null and gave_up_at is null
                   when 'failed' then gave_up_at is not null
                   else delivered_at is not null end
           order by id desc limit $2"#,
        state,
        limit
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| OutboxEntry {
            id: r.id,
            task_id: r.task_id,
            issue: r.issue,
            event: r.event,
            attempts: r.attempts,
            steps_done: r.steps_done,
            created_at: r.created_at,
            next_attempt_at: (r.delivered_at.is_none() && r.gave_up_at.is_none())
                .then_some(r.next_attempt_at),
            delivered_at: r.delivered_at,
            gave_up_at: r.gave_up_at,
            last_error: r.last_error,
        })
        .collect())
}
