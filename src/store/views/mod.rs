//! Reads for operators: task, worker, repo and audit lists (keyset pages in id order, which
//! is creation order: ids are time-ordered) and the detail of one task or worker. Each list
//! runs with custom plans, so a filter left out is folded away and the planner picks the
//! index of the filters actually given (tasks_by_status, tasks_by_repo, tasks_by_worker,
//! audit_events_by_kind/_by_actor/_by_target).

use crate::domain::ids::{TaskId, WorkerId};
use crate::store::{Begin, Db};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::StoreResult;
use crate::domain::status::TaskStatus;
use crate::domain::trust::TrustTier;
use crate::wire::views::{ArtifactView, AuditEvent, LeaseView, RepoView, TaskView};

mod workers;
pub use workers::{list_workers, worker_detail, WorkerFilter};

pub struct TaskFilter<'a> {
    pub statuses: Option<Vec<String>>,
    /// Tasks of these repositories (one asked for, or a scoped admin's).
    pub repos: Option<&'a [String]>,
    /// Tasks that ask for this skill.
    pub skill: Option<&'a str>,
    pub worker_id: Option<&'a str>,
    pub area: Option<&'a str>,
    /// Ids after this one.
    pub after: Option<&'a str>,
    pub limit: i64,
}

async fn read_only(pool: &Db) -> StoreResult<sqlx::Transaction<'static, sqlx::Postgres>> {
    let mut tx = super::begin_as(pool, Begin::ReadOnly).await?;
    // optional filters are `$n is null or ...`: custom plans fold the absent ones away
    sqlx::query!("set local plan_cache_mode = force_custom_plan")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

pub async fn list_tasks(pool: &Db, f: &TaskFilter<'_>) -> StoreResult<Vec<TaskView>> {
    let mut tx = read_only(pool).await?;
    let rows = sqlx::query_as!(
        TaskView,
        r#"select id as task_id, repo, title, status as "status: TaskStatus", priority, area, tier,
                  min_reputation, required_skills, estimate_points, attempt, max_attempts, worker_id, lease_id,
                  lease_expires_at, pr_url, retry_at, external_id, not_before, depends_on, reserved_for,
                  reserved_until, created_at, updated_at,
                  coalesce(approval_lease = lease_id, false) as "awaiting_approval!"
           from tasks
           where ($1::text[] is null or status = any($1))
             and ($2::text[] is null or repo = any($2))
             and ($3::text is null or worker_id = $3)
             and ($4::text is null or area = $4)
             and ($5::text is null or id > $5)
             and ($7::text is null or $7 = any(required_skills))
           order by id
           limit $6"#,
        f.statuses.as_deref(),
        f.repos,
        f.worker_id,
        f.area,
        f.after,
        f.limit,
        f.skill,
    )
    .fetch_all(&mut *tx)
    .await?;
    super::commit(tx).await?;
    Ok(rows)
}

/// One task with its description, leases, artifacts and audit trail, in one snapshot.
pub struct TaskRecord {
    pub task: TaskView,
    pub description: String,
    /// The newest `limit` leases, oldest first, and how many there are in all.
    pub leases: Vec<LeaseView>,
    pub leases_total: i64,
    /// The newest `limit` artifacts, oldest first, and how many there are in all.
    pub artifacts: Vec<ArtifactView>,
    pub artifacts_total: i64,
    pub events: Vec<AuditEvent>,
    pub offer_rejections: Vec<(String, i64)>,
}

/// Whose history a task's reader sees.
#[derive(Clone, Copy)]
pub enum Reader<'a> {
    /// An admin: every lease, artifact and event.
    Admin,
    /// A worker: only its own leases, artifacts and events, never a later holder's.
    Worker(&'a str),
}

/// A task's newest `limit` leases and artifacts (oldest first), and how many there are;
/// `only` a worker's own.
struct History {
    leases: Vec<LeaseView>,
    leases_total: i64,
    artifacts: Vec<ArtifactView>,
    artifacts_total: i64,
}

async fn history(
    tx: &mut PgConnection,
    task_id: &str,
    only: Option<&str>,
    limit: i64,
) -> StoreResult<History> {
    let mut leases = sqlx::query_as!(
        LeaseView,
        "select id as lease_id, worker_id, attempt, granted_at, ended_at, end_reason
         from leases where task_id = $1 and ($2::text is null or worker_id = $2)
         order by seq desc limit $3",
        task_id,
        only,
        limit
    )
    .fetch_all(&mut *tx)
    .await?;
    leases.reverse();
    let mut artifacts = sqlx::query_as!(
        ArtifactView,
        "select worker_id, lease_id, pr_url, commit_sha, patch_url, extra, created_at
         from artifacts where task_id = $1 and ($2::text is null or worker_id = $2)
         order by id desc limit $3",
        task_id,
        only,
        limit
    )
    .fetch_all(&mut *tx)
    .await?;
    artifacts.reverse();
    let totals = sqlx::query!(
        r#"select (select count(*) from leases where task_id = $1 and ($2::text is null or worker_id = $2)) as "leases!",
                  (select count(*) from artifacts where task_id = $1 and ($2::text is null or worker_id = $2)) as "artifacts!""#,
        task_id,
        only
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok(History {
        leases,
        leases_total: totals.leases,
        artifacts,
        artifacts_total: totals.artifacts,
    })
}

pub async fn task_detail(
    pool: &Db,
    task_id: &TaskId,
    reader: Reader<'_>,
    limit: i64,
) -> StoreResult<Option<TaskRecord>> {
    let task_id = task_id.as_str();
    let only = match reader {
        Reader::Admin => None,
        Reader::Worker(w) => Some(w),
    };
    let mut tx = super::begin_as(pool, Begin::Snapshot).await?;
    sqlx::query!("set local plan_cache_mode = force_custom_plan")
        .execute(&mut *tx)
        .await?;
    let Some(row) = sqlx::query!(
        r#"select id as task_id, repo, title, status as "status: TaskStatus", priority, area, tier,
                  min_reputation, required_skills, estimate_points, attempt, max_attempts, worker_id, lease_id,
                  lease_expires_at, pr_url, retry_at, external_id, not_before, depends_on, reserved_for,
                  reserved_until, created_at, updated_at, description,
                  coalesce(approval_lease = lease_id, false) as "awaiting_approval!"
           from tasks where id = $1"#,
        task_id
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
    let h = history(&mut tx, task_id, only, limit).await?;
    let trail = AuditFilter {
        target: Some(task_id),
        limit: 500,
        ..AuditFilter::default()
    };
    let mut events = page_of_events(&mut tx, &trail).await?;
    if let Some(w) = only {
        // a worker reads its own part of the trail: not a later holder's leases or messages
        let me = format!("worker:{w}");
        events.retain(|e| e.actor.as_deref() == Some(me.as_str()));
    }
    events.reverse();
    let offer_rejections = super::offers::rejections(&mut tx, task_id).await?;
    super::commit(tx).await?;
    Ok(Some(TaskRecord {
        task: TaskView {
            task_id: row.task_id,
            repo: row.repo,
            title: row.title,
            status: row.status,
            priority: row.priority,
            area: row.area,
            tier: row.tier,
            min_reputation: row.min_reputation,
            required_skills: row.required_skills,
            estimate_points: row.estimate_points,
            attempt: row.attempt,
            max_attempts: row.max_attempts,
            worker_id: row.worker_id,
            lease_id: row.lease_id,
            lease_expires_at: row.lease_expires_at,
            pr_url: row.pr_url,
            retry_at: row.retry_at,
            external_id: row.external_id,
            not_before: row.not_before,
            depends_on: row.depends_on,
            reserved_for: row.reserved_for,
            reserved_until: row.reserved_until,
            awaiting_approval: row.awaiting_approval,
            created_at: row.created_at,
            updated_at: row.updated_at,
        },
        description: row.description,
        leases: h.leases,
        leases_total: h.leases_total,
        artifacts: h.artifacts,
        artifacts_total: h.artifacts_total,
        events,
        offer_rejections,
    }))
}

/// Whether this worker holds or ever held the task (a lease of its, or the task names it).
pub async fn worker_knows_task(
    pool: &Db,
    worker_id: &WorkerId,
    task_id: &TaskId,
) -> StoreResult<bool> {
    let task_id = task_id.as_str();
    let worker_id = worker_id.as_str();
    let known = sqlx::query_scalar!(
        r#"select exists (select 1 from tasks where id = $2 and worker_id = $1)
               or exists (select 1 from leases where task_id = $2 and worker_id = $1) as "known!""#,
        worker_id,
        task_id
    )
    .fetch_one(pool)
    .await?;
    Ok(known)
}

pub async fn list_repos(pool: &Db, stale_after_secs: f64) -> StoreResult<Vec<RepoView>> {
    let mut conn = pool.session().await?;
    let repos = repos_in(&mut conn, stale_after_secs).await?;
    conn.finish().await?;
    Ok(repos)
}

/// Every repo with what it holds, on the caller's connection (the pool overview reads it
/// inside its snapshot): one pass over the tasks that are not finished (tasks_by_status),
/// grouped by repo.
pub async fn repos_in(
    conn: &mut PgConnection,
    stale_after_secs: f64,
) -> StoreResult<Vec<RepoView>> {
    let rows = sqlx::query_as!(
        RepoView,
        r#"with counts as (
               select repo,
                      count(*) filter (where status <> 'ready') as open,
                      count(*) filter (where status = 'ready') as ready,
                      count(*) filter (where approval_lease = lease_id) as awaiting,
                      count(*) filter (where status = 'pr_opened'
                                       and pr_opened_at < now() - make_interval(secs => $1)) as stale,
                      coalesce(array_agg(area order by area) filter (where holds_area_lock), '{}') as areas
               from tasks
               where not task_is_terminal(status)
               group by repo)
           select r.repo, r.max_open_prs, r.area_locks_enabled, r.pr_url_prefix, r.github_write_back,
                  r.max_open_prs_per_worker, r.allow_workers, r.deny_workers,
                  r.min_trust_tier as "min_trust_tier: TrustTier", r.claim_approval,
                  coalesce(c.awaiting, 0) as "awaiting_approval!", r.fair_share,
                  coalesce(c.open, 0) as "open_slots!", coalesce(c.ready, 0) as "ready!",
                  coalesce(c.areas, '{}') as "held_areas!: Vec<String>",
                  coalesce(c.stale, 0) as "stale_prs!", r.created_at, r.updated_at
           from repositories r left join counts c on c.repo = r.repo
           order by r.repo"#,
        stale_after_secs
    )
    .fetch_all(conn)
    .await?;
    Ok(rows)
}

#[derive(Default)]
pub struct AuditFilter<'a> {
    pub event_type: Option<&'a str>,
    /// Only changes to this status.
    pub to_status: Option<&'a str>,
    pub actor: Option<&'a str>,
    pub target: Option<&'a str>,
    /// Events about these repositories (their tasks and settings).
    pub repos: Option<&'a [String]>,
    pub since: Option<DateTime<Utc>>,
    /// Ids below this one (pages go newest first).
    pub before: Option<i64>,
    pub offset: i64,
    pub limit: i64,
}

/// `total` is exact up to this many matching events; beyond, it is this and not exact.
pub const TOTAL_CAP: i64 = 10_000;

/// A page of events, newest first, and how many match the filters in all (at most
/// `TOTAL_CAP + 1`: more than the cap).
pub async fn list_events(pool: &Db, f: &AuditFilter<'_>) -> StoreResult<(Vec<AuditEvent>, i64)> {
    let mut tx = read_only(pool).await?;
    let events = page_of_events(&mut tx, f).await?;
    // counted up to the cap: an exact count of a million events is a scan of a million
    let total = sqlx::query_scalar!(
        r#"select count(*) as "n!" from (
               select 1 from audit_events
               where ($1::text is null or kind = $1)
                 and ($2::text is null or actor = $2)
                 and ($3::text is null or target = $3)
                 and ($4::timestamptz is null or at >= $4)
                 and ($6::text is null or to_status = $6)
                 and ($7::text[] is null or repo = any($7))
               limit $5) capped"#,
        f.event_type,
        f.actor,
        f.target,
        f.since,
        TOTAL_CAP + 1,
        f.to_status,
        f.repos,
    )
    .fetch_one(&mut *tx)
    .await?;
    super::commit(tx).await?;
    Ok((events, total))
}

/// One page of events matching the filters, newest first, without the count: for the
/// export, which walks the pages by `before`.
pub async fn events_page(pool: &Db, f: &AuditFilter<'_>) -> StoreResult<Vec<AuditEvent>> {
    let mut tx = read_only(pool).await?;
    let events = page_of_events(&mut tx, f).await?;
    super::commit(tx).await?;
    Ok(events)
}

/// Events matching the filters, newest first (audit_events_by_kind/_actor/_target).
async fn page_of_events(
    tx: &mut PgConnection,
    f: &AuditFilter<'_>,
) -> StoreResult<Vec<AuditEvent>> {
    let events = sqlx::query_as!(
        AuditEvent,
        r#"select id, at as timestamp, kind as event_type, actor, target,
                  jsonb_strip_nulls(jsonb_build_object(
                      'task_id', task_id, 'worker_id', worker_id, 'repo', repo, 'lease_id', lease_id,
                      'from_status', from_status, 'to_status', to_status, 'reason', reason,
                      'data', data)) as "details!"
           from audit_events
           where ($1::text is null or kind = $1)
             and ($2::text is null or actor = $2)
             and ($3::text is null or target = $3)
             and ($4::timestamptz is null or at >= $4)
             and ($5::int8 is null or id < $5)
             and ($8::text is null or to_status = $8)
             and ($9::text[] is null or repo = any($9))
           order by id desc
           offset $6 limit $7"#,
        f.event_type,
        f.actor,
        f.target,
        f.since,
        f.before,
        f.offset,
        f.limit,
        f.to_status,
        f.repos,
    )
    .fetch_all(tx)
    .await?;
    Ok(events)
}
