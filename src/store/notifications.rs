//! Notifications: channels (who hears what), the outbox the triggers of migration 19 and
//! the leader's scans fill, and its delivery state. Deliveries are claimed `for update
//! skip locked` with a hold, so two leaders at once (a failover) never send one twice
//! at the same time; a crash between the send and its record sends it again, which the
//! `X-OWP-Delivery` id lets a receiver notice.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Db, StoreResult};
use crate::wire::notify::Channel;

/// A channel to make (its id and secret made by the caller).
pub struct NewChannel<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub kind: &'a str,
    pub url: &'a str,
    pub secret: &'a str,
    pub events: &'a [String],
    pub repo: Option<&'a str>,
}

pub enum Created {
    Done,
    NameTaken,
    UnknownRepo,
}

/// A notification claimed for delivery, with what its channel needs.
pub struct Due {
    pub id: i64,
    pub kind: String,
    pub url: String,
    pub secret: String,
    pub event: String,
    pub facts: Value,
    pub created_at: DateTime<Utc>,
    pub attempts: i32,
}

pub struct DeliveryRow {
    pub id: i64,
    pub channel_id: String,
    pub event: String,
    pub repo: Option<String>,
    pub facts: Value,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub gave_up_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// Makes a channel, audited under the admin's name.
pub async fn create_channel(pool: &Db, c: &NewChannel<'_>, actor: &str) -> StoreResult<Created> {
    let mut tx = super::begin(pool).await?;
    if let Some(repo) = c.repo {
        let known = sqlx::query_scalar!(
            r#"select exists (select 1 from repositories where repo = $1 for key share) as "e!""#,
            repo
        )
        .fetch_one(&mut *tx)
        .await?;
        if !known {
            return Ok(Created::UnknownRepo);
        }
    }
    let made = sqlx::query_scalar!(
        "insert into notification_channels (id, name, kind, url, secret, events, repo, created_by)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
         on conflict (name) do nothing returning id",
        c.id,
        c.name,
        c.kind,
        c.url,
        c.secret,
        c.events,
        c.repo,
        actor,
    )
    .fetch_optional(&mut *tx)
    .await?;
    if made.is_none() {
        return Ok(Created::NameTaken);
    }
    super::audit::insert_event(
        &mut tx,
        super::audit::Event {
            kind: "notification_channel_created",
            repo: c.repo,
            data: Some(serde_json::json!({"channel_id": c.id, "name": c.name, "kind": c.kind, "events": c.events})),
            actor,
            ..Default::default()
        },
    )
    .await?;
    super::commit(tx).await?;
    Ok(Created::Done)
}

/// Channels, of these repositories only (`None`: all, pool-wide ones too), or only the one
/// `only` names if it is among them, with their delivery counts; the URL whole (the HTTP
/// layer shows only its host).
pub async fn list_channels(
    pool: &Db,
    repos: Option<&[String]>,
    only: Option<&str>,
) -> StoreResult<Vec<Channel>> {
    let rows = sqlx::query_as!(
        Channel,
        r#"select c.id, c.name, c.kind, c.url, c.events, c.repo, c.created_by, c.created_at,
                  (select count(*) from notification_outbox o
                   where o.channel_id = c.id and o.delivered_at is null and o.gave_up_at is null) as "pending!",
                  (select count(*) from notification_outbox o
                   where o.channel_id = c.id and o.gave_up_at is not null) as "failed!",
                  (select max(o.delivered_at) from notification_outbox o where o.channel_id = c.id) as last_delivered_at
           from notification_channels c
           where ($1::text[] is null or c.repo = any($1)) and ($2::text is null or c.id = $2)
           order by c.created_at, c.id"#,
        repos as Option<&[String]>,
        only
    )
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// The channel's repository: `None` when there is no such channel, `Some(None)` for a
/// pool-wide one.
pub async fn channel_repo(pool: &Db, id: &str) -> StoreResult<Option<Option<String>>> {
    let repo = sqlx::query_scalar!("select repo from notification_channels where id = $1", id)
        .fetch_optional(pool)
        .await?;
    Ok(repo)
}

/// Removes a channel and what it had still to deliver; audited. False when there was none.
pub async fn delete_channel(pool: &Db, id: &str, actor: &str) -> StoreResult<bool> {
    let mut tx = super::begin(pool).await?;
    let gone = sqlx::query!(
        "delete from notification_channels where id = $1 returning name, repo",
        id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(gone) = gone else {
        return Ok(false);
    };
    super::audit::insert_event(
        &mut tx,
        super::audit::Event {
            kind: "notification_channel_deleted",
            repo: gone.repo.as_deref(),
            data: Some(serde_json::json!({"channel_id": id, "name": gone.name})),
            actor,
            ..Default::default()
        },
    )
    .await?;
    super::commit(tx).await?;
    Ok(true)
}

/// Queues a `test` notification to one channel; its delivery id.
pub async fn enqueue_test(pool: &Db, channel_id: &str, actor: &str) -> StoreResult<i64> {
    let id = sqlx::query_scalar!(
        "insert into notification_outbox (channel_id, event, repo, facts)
         select id, 'test', repo, jsonb_build_object('requested_by', $2::text)
         from notification_channels where id = $1
         returning id",
        channel_id,
        actor
    )
    .fetch_one(pool)
    .await?;
    Ok(id)
}

/// Claims up to `limit` due notifications for `hold`, counting a try on each.
pub async fn claim_due(pool: &Db, limit: i64, hold: Duration) -> StoreResult<Vec<Due>> {
    let rows = sqlx::query_as!(
        Due,
        r#"with due as (
               update notification_outbox set attempts = attempts + 1,
                   claimed_until = now() + make_interval(secs => $2)
               where id in (
                   select id from notification_outbox
                   where delivered_at is null and gave_up_at is null and next_attempt_at <= now()
                     and (claimed_until is null or claimed_until < now())
                   order by next_attempt_at, id
                   limit $1
                   for update skip locked)
               returning id, channel_id, event, facts, created_at, attempts)
           select d.id, c.kind, c.url, c.secret, d.event, d.facts, d.created_at, d.attempts
           from due d join notification_channels c on c.id = d.channel_id
           order by d.id"#,
        limit,
        hold.as_secs_f64(),
    )
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

pub async fn delivered(pool: &Db, id: i64) -> StoreResult<()> {
    sqlx::query!(
        "update notification_outbox set delivered_at = now(), claimed_until = null, last_error = null
         where id = $1",
        id
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Try again after `delay`.
pub async fn retry_later(pool: &Db, id: i64, delay: Duration, error: &str) -> StoreResult<()> {
    sqlx::query!(
        "update notification_outbox set next_attempt_at = now() + make_interval(secs => $2),
             claimed_until = null, last_error = $3
         where id = $1",
        id,
        delay.as_secs_f64(),
        error,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Gives the notification up: visible as `failed` in the deliveries, and a metric.
pub async fn give_up(pool: &Db, id: i64, error: &str) -> StoreResult<()> {
    sqlx::query!(
        "update notification_outbox set gave_up_at = now(), claimed_until = null, last_error = $2
         where id = $1",
        id,
        error
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Tries a given-up notification again from the start; false unless it was given up
/// (and on a channel of these repositories, when `repos` is set).
pub async fn redeliver(pool: &Db, id: i64, repos: Option<&[String]>) -> StoreResult<bool> {
    let n = sqlx::query!(
        "update notification_outbox o set gave_up_at = null, attempts = 0, next_attempt_at = now(),
             claimed_until = null
         from notification_channels c
         where o.id = $1 and c.id = o.channel_id and o.gave_up_at is not null
           and ($2::text[] is null or c.repo = any($2))",
        id,
        repos as Option<&[String]>
    )
    .execute(pool)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Notifications still to deliver.
pub async fn pending(pool: &Db) -> StoreResult<i64> {
    let n = sqlx::query_scalar!(
        r#"select count(*) as "n!" from notification_outbox where delivered_at is null and gave_up_at is null"#
    )
    .fetch_one(pool)
    .await?;
    Ok(n)
}

/// Deliveries by state (`pending`, `failed`, `delivered`), newest first, of one channel
/// or all, on channels of these repositories only when `repos` is set.
pub async fn list_deliveries(
    pool: &Db,
    state: &str,
    channel: Option<&str>,
    repos: Option<&[String]>,
    limit: i64,
) -> StoreResult<Vec<DeliveryRow>> {
    let rows = sqlx::query_as!(
        DeliveryRow,
        r#"select o.id, o.channel_id, o.event, o.repo, o.facts, o.attempts, o.created_at,
                  o.next_attempt_at, o.delivered_at, o.gave_up_at, o.last_error
           from notification_outbox o join notification_channels c on c.id = o.channel_id
           where case $1
                   when 'pending' then o.delivered_at is null and o.gave_up_at is null
                   when 'failed' then o.gave_up_at is not null
                   else o.delivered_at is not null end
             and ($2::text is null or o.channel_id = $2)
             and ($3::text[] is null or c.repo = any($3))
           order by o.id desc limit $4"#,
        state,
        channel,
        repos as Option<&[String]>,
        limit
    )
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// Announces PRs waiting for review longer than `stale_after` to the channels that ask,
/// once per PR (per attempt); the number announced.
pub async fn scan_stale_prs(pool: &Db, stale_after: Duration) -> StoreResult<i64> {
    let n = sqlx::query_scalar!(
        r#"with stale as (
               select t.id, t.repo, t.pr_url, t.worker_id, t.pr_opened_at,
                      'pr_stale:' || t.id || ':' || t.attempt as key
               from tasks t
               where t.status = 'pr_opened' and t.pr_opened_at < now() - make_interval(secs => $1)
                 and exists (select 1 from notification_channels c
                             where 'pr_stale' = any (c.events) and (c.repo is null or c.repo = t.repo))
               order by t.pr_opened_at
               limit 1000),
           marked as (
               insert into notification_marks (key) select key from stale
               on conflict do nothing returning key)
           select count(*) as "n!" from (
               select notify_event('pr_stale', s.repo, jsonb_build_object(
                   'task_id', s.id, 'repo', s.repo, 'pr_url', s.pr_url,
                   'worker_id', s.worker_id, 'pr_opened_at', s.pr_opened_at))
               from stale s join marked m on m.key = s.key) announced"#,
        stale_after.as_secs_f64(),
    )
    .fetch_one(pool)
    .await?;
    Ok(n)
}

/// Keeps `repositories.budget_full_since` (a budget of 0 is a pause, never full), then
/// announces each budget full for longer than `after`, once per time it filled; the
/// number announced.
pub async fn scan_full_budgets(pool: &Db, after: Duration) -> StoreResult<i64> {
    sqlx::query!(
        r#"with now_full as (
               select r.repo, r.max_open_prs > 0 and r.max_open_prs <=
                      (select count(*) from tasks t where t.repo = r.repo and task_is_open(t.status)) as full
               from repositories r)
           update repositories r set budget_full_since = case when f.full then now() end
           from now_full f
           where f.repo = r.repo and f.full <> (r.budget_full_since is not null)"#
    )
    .execute(pool)
    .await?;
    let n = sqlx::query_scalar!(
        r#"with due as (
               select repo, max_open_prs, budget_full_since,
                      'budget_full:' || repo || ':' || extract(epoch from budget_full_since)::text as key
               from repositories r
               where budget_full_since < now() - make_interval(secs => $1)
                 and exists (select 1 from notification_channels c
                             where 'budget_full' = any (c.events) and (c.repo is null or c.repo = r.repo))),
           marked as (
               insert into notification_marks (key) select key from due
               on conflict do nothing returning key)
           select count(*) as "n!" from (
               select notify_event('budget_full', d.repo, jsonb_build_object(
                   'repo', d.repo, 'max_open_prs', d.max_open_prs, 'since', d.budget_full_since))
               from due d join marked m on m.key = d.key) announced"#,
        after.as_secs_f64(),
    )
    .fetch_one(pool)
    .await?;
    Ok(n)
}

/// Does any channel ask for this event?
pub async fn anyone_asks(pool: &Db, event: &str) -> StoreResult<bool> {
    let asked = sqlx::query_scalar!(
        r#"select exists (select 1 from notification_channels where $1 = any (events)) as "e!""#,
        event
    )
    .fetch_one(pool)
    .await?;
    Ok(asked)
}
