//! What an operator does to tasks and workers: requeue, cancel, pause, resume, revoke,
//! rotate a token. Each is one transaction that locks what it changes, with its audit
//! event naming the admin (I7). A holder whose lease an admin ended gets `lease_lost` on
//! its next report (the lease's `end_reason` says the server ended it).

use crate::domain::ids::{TaskId, WorkerId};
use crate::store::Db;

use super::StoreResult;
use crate::domain::status::TaskStatus;
use chrono::{DateTime, Utc};

pub enum TaskAction {
    /// Done; the task's status now.
    Done(TaskStatus),
    NotFound,
    /// Not from this status (a finished task cannot be requeued or cancelled).
    NotFrom(TaskStatus),
}

struct Locked {
    status: TaskStatus,
    attempt: i32,
    max_attempts: i32,
    worker_id: Option<String>,
    lease_id: Option<String>,
    repo: String,
}

async fn lock(tx: &mut sqlx::PgConnection, task_id: &str) -> StoreResult<Option<Locked>> {
    let t = sqlx::query_as!(
        Locked,
        r#"select status as "status: TaskStatus", attempt, max_attempts, worker_id, lease_id, repo
           from tasks where id = $1 for update"#,
        task_id
    )
    .fetch_optional(tx)
    .await?;
    Ok(t)
}

/// Back to `ready` at once, for anyone: the live lease (if any) ends as `requeued`, the
/// slot and area are freed. `attempt` is kept (below `max_attempts`, so a `failed` task
/// gets one more try), or set to 0 with `reset_attempts`.
/// Fires the status triggers (`store` docs: what triggers write).
pub async fn requeue(
    pool: &Db,
    task_id: &TaskId,
    reset_attempts: bool,
    actor: &str,
) -> StoreResult<TaskAction> {
    let task_id = task_id.as_str();
    let mut tx = super::begin(pool).await?;
    let Some(t) = lock(&mut tx, task_id).await? else {
        return Ok(TaskAction::NotFound);
    };
    if matches!(t.status, TaskStatus::Completed | TaskStatus::Merged) {
        return Ok(TaskAction::NotFrom(t.status));
    }
    let attempt = if reset_attempts {
        0
    } else {
        t.attempt.min(t.max_attempts - 1)
    };
    if t.status == TaskStatus::Ready && attempt == t.attempt {
        return Ok(TaskAction::Done(TaskStatus::Ready));
    }
    sqlx::query!(
        r#"with t as (
               update tasks set status = 'ready', attempt = $2, worker_id = null, lease_id = null,
                   offer_id = null,
                   lease_expires_at = null, holds_area_lock = false, pr_opened_at = null,
                   retry_at = null, withheld_from = null, withheld_until = null, updated_at = now()
               where id = $1 returning id),
           l as (
               update leases set ended_at = now(), end_reason = 'requeued'
               where task_id = $1 and ended_at is null returning id),
           o as (
               update offers set ended_at = now(), outcome = 'withdrawn'
               where task_id = $1 and ended_at is null)
           insert into audit_events (kind, task_id, worker_id, repo, lease_id, from_status, to_status, reason, data, actor)
           select 'task_requeued', $1, $3, $4, (select id from l), $5, 'ready', 'admin',
                  jsonb_build_object('attempt', $2::int, 'reset_attempts', $6::bool), $7
           from t"#,
        task_id,
        attempt,
        t.worker_id,
        t.repo,
        t.status.as_str(),
        reset_attempts,
        actor,
    )
    .execute(&mut *tx)
    .await?;
    super::commit(tx).await?;
    Ok(TaskAction::Done(TaskStatus::Ready))
}

/// To the terminal `cancelled`, from any status that is not terminal: the live lease (if
/// any) ends as `cancelled`, the slot and area are freed.
/// Fires the status triggers (`store` docs: what triggers write).
pub async fn cancel(pool: &Db, task_id: &TaskId, actor: &str) -> StoreResult<TaskAction> {
    let task_id = task_id.as_str();
    let mut tx = super::begin(pool).await?;
    let Some(t) = lock(&mut tx, task_id).await? else {
        return Ok(TaskAction::NotFound);
    };
    if t.status == TaskStatus::Cancelled {
        return Ok(TaskAction::Done(t.status));
    }
    if t.status.is_terminal() {
        return Ok(TaskAction::NotFrom(t.status));
    }
    sqlx::query!(
        r#"with t as (
               update tasks set status = 'cancelled', worker_id = null, lease_id = null,
                   offer_id = null, lease_expires_at = null, holds_area_lock = false,
                   retry_at = null, withheld_from = null, withheld_until = null, updated_at = now()
               where id = $1 returning id),
           l as (
               update leases set ended_at = now(), end_reason = 'cancelled'
               where task_id = $1 and ended_at is null returning id),
           o as (
               update offers set ended_at = now(), outcome = 'withdrawn'
               where task_id = $1 and ended_at is null)
           insert into audit_events (kind, task_id, worker_id, repo, lease_id, from_status, to_status, actor)
           select 'task_cancelled', $1, $2, $3, coalesce((select id from l), $5), $4, 'cancelled', $6 from t"#,
        task_id,
        t.worker_id,
        t.repo,
        t.status.as_str(),
        t.lease_id,
        actor,
    )
    .execute(&mut *tx)
    .await?;
    super::commit(tx).await?;
    Ok(TaskAction::Done(TaskStatus::Cancelled))
}

pub enum WorkerAction {
    Done,
    NotFound,
    Revoked,
}

/// Pauses (no new work; leases kept) or resumes a worker. The worker's own heartbeats
/// cannot lift an admin's pause.
pub async fn set_paused(
    pool: &Db,
    worker_id: &WorkerId,
    paused: bool,
    actor: &str,
) -> StoreResult<WorkerAction> {
    let worker_id = worker_id.as_str();
    let kind = if paused {
        "worker_paused"
    } else {
        "worker_resumed"
    };
    let n = sqlx::query_scalar!(
        r#"with w as (
               update workers set paused_by_admin = $2 where id = $1 returning id, revoked_at),
           ev as (
               insert into audit_events (kind, worker_id, actor)
               select $3, id, $4 from w)
           select (select revoked_at is not null from w) as revoked"#,
        worker_id,
        paused,
        kind,
        actor,
    )
    .fetch_one(pool)
    .await?;
    Ok(match n {
        None => WorkerAction::NotFound,
        Some(true) => WorkerAction::Revoked,
        Some(false) => WorkerAction::Done,
    })
}

/// Revokes a worker: its token stops working at once (every authentication reads it), its
/// live leases end as `worker_revoked` (its open offers are withdrawn) and their tasks are ready again without counting a
/// failed attempt; its opened PRs keep their slots (they await review).
/// Fires the status triggers (`store` docs: what triggers write).
pub async fn revoke(pool: &Db, worker_id: &WorkerId, actor: &str) -> StoreResult<WorkerAction> {
    let worker_id = worker_id.as_str();
    let mut tx = super::begin(pool).await?;
    let revoked = sqlx::query_scalar!(
        "select revoked_at is not null from workers where id = $1 for update",
        worker_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    match revoked {
        None => return Ok(WorkerAction::NotFound),
        Some(Some(true)) => return Ok(WorkerAction::Revoked),
        _ => {}
    }
    sqlx::query!(
        r#"with w as (update workers set revoked_at = now() where id = $1 returning id),
           victims as (
               select id, status, lease_id, repo from tasks
               where worker_id = $1 and task_holds_capacity(status)
               for update),
           t as (
               update tasks t set status = 'ready', worker_id = null, lease_id = null, offer_id = null,
                   lease_expires_at = null, holds_area_lock = false, updated_at = now()
               from victims v where t.id = v.id returning t.id),
           o as (
               update offers o set ended_at = now(), outcome = 'withdrawn'
               from victims v where o.task_id = v.id and o.ended_at is null),
           l as (
               update leases l set ended_at = now(), end_reason = 'worker_revoked'
               from victims v where l.id = v.lease_id and l.ended_at is null),
           ev_tasks as (
               insert into audit_events (kind, task_id, worker_id, repo, lease_id, from_status, to_status, reason, actor)
               select 'task_requeued', v.id, $1, v.repo, v.lease_id, v.status, 'ready', 'worker_revoked', $2
               from victims v)
           insert into audit_events (kind, worker_id, actor) select 'worker_revoked', id, $2 from w"#,
        worker_id,
        actor,
    )
    .execute(&mut *tx)
    .await?;
    super::commit(tx).await?;
    Ok(WorkerAction::Done)
}

/// Gives the worker a new token (its digest); the old one stops working at once.
pub async fn rotate_token(
    pool: &Db,
    worker_id: &WorkerId,
    digest: &[u8; 32],
    actor: &str,
) -> StoreResult<WorkerAction> {
    let worker_id = worker_id.as_str();
    let r = sqlx::query!(
        r#"with w as (
               update workers set token_digest = $2 where id = $1 and revoked_at is null returning id),
           ev as (insert into audit_events (kind, worker_id, actor)
                  select 'worker_token_rotated', id, $3 from w)
           select exists (select 1 from w) as "rotated!",
                  exists (select 1 from workers where id = $1) as "known!""#,
        worker_id,
        &digest[..],
        actor,
    )
    .fetch_one(pool)
    .await?;
    Ok(match (r.rotated, r.known) {
        (true, _) => WorkerAction::Done,
        (false, true) => WorkerAction::Revoked,
        (false, false) => WorkerAction::NotFound,
    })
}

/// A checked edit: `None` leaves the field as it is; `area: Some(None)` removes it.
#[derive(Debug, Default)]
pub struct TaskEdit {
    pub title: Option<String>,
    pub description: Option<String>,
    pub required_skills: Option<Vec<String>>,
    pub estimate_points: Option<i32>,
    pub priority: Option<i32>,
    pub area: Option<Option<String>>,
    pub tier: Option<i16>,
    pub min_reputation: Option<i16>,
    pub max_attempts: Option<i32>,
    /// `Some(None)` removes it.
    pub not_before: Option<Option<DateTime<Utc>>>,
    pub depends_on: Option<Vec<String>>,
    /// `Some(None)` ends the reservation.
    pub reservation: Option<Reservation>,
}

/// A task held for a worker until a time; `None`: held for nobody.
pub type Reservation = Option<(String, DateTime<Utc>)>;

impl TaskEdit {
    /// The edit changes when the task may be claimed: waiting polls should look again.
    pub fn replans(&self) -> bool {
        self.not_before.is_some() || self.depends_on.is_some() || self.reservation.is_some()
    }
}

pub enum Edited {
    Done,
    NotFound,
    /// The task's status forbids changing this field now.
    Forbidden {
        field: &'static str,
        status: TaskStatus,
    },
    /// `depends_on[j]` names no task.
    UnknownDependency {
        index: usize,
        id: String,
    },
    /// Waiting on `via` would lead back to this task.
    DependencyCycle {
        via: String,
    },
    /// `max_attempts` below the attempts already made.
    TooFewAttempts {
        attempt: i32,
    },
}

/// Applies an edit under the task's row lock, refusing what the task's status forbids
/// (`domain::task_edit`), with a `task_updated` event listing what changed.
pub async fn edit(pool: &Db, task_id: &TaskId, e: &TaskEdit, actor: &str) -> StoreResult<Edited> {
    let task_id = task_id.as_str();
    use crate::domain::task_edit::{forbidden_change, Changes};
    let mut tx = super::begin(pool).await?;
    let Some(t) = sqlx::query!(
        r#"select status as "status: TaskStatus", required_skills, estimate_points, tier, area, attempt
           from tasks where id = $1 for update"#,
        task_id
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(Edited::NotFound);
    };
    let changes = Changes {
        required_skills: e
            .required_skills
            .as_ref()
            .is_some_and(|s| *s != t.required_skills),
        estimate_points: e.estimate_points.is_some_and(|p| p != t.estimate_points),
        tier: e.tier.is_some_and(|x| x != t.tier),
        area: e.area.as_ref().is_some_and(|a| *a != t.area),
    };
    if let Some(field) = forbidden_change(t.status, changes) {
        return Ok(Edited::Forbidden {
            field,
            status: t.status,
        });
    }
    if e.max_attempts.is_some_and(|m| m < t.attempt.max(1)) {
        return Ok(Edited::TooFewAttempts { attempt: t.attempt });
    }
    if let Some(deps) = &e.depends_on {
        if let Some(refused) = check_dependencies(&mut tx, task_id, deps).await? {
            return Ok(refused);
        }
    }
    write_edit(&mut tx, task_id, e, actor).await?;
    super::commit(tx).await?;
    Ok(Edited::Done)
}

/// The edit's update and its `task_updated` event (the fields sent, as sent).
async fn write_edit(
    tx: &mut sqlx::PgConnection,
    task_id: &str,
    e: &TaskEdit,
    actor: &str,
) -> StoreResult<()> {
    let data = serde_json::json!({
        "title": e.title, "description": e.description.as_ref().map(|_| "changed"),
        "required_skills": e.required_skills, "estimate_points": e.estimate_points,
        "priority": e.priority, "area": e.area, "tier": e.tier, "max_attempts": e.max_attempts,
        "min_reputation": e.min_reputation, "not_before": e.not_before, "depends_on": e.depends_on,
        "reserved_for": e.reservation.as_ref().map(|r| r.as_ref().map(|(w, _)| w)),
    });
    let (reserved_for, reserved_until) = match &e.reservation {
        Some(Some((w, until))) => (Some(w.as_str()), Some(*until)),
        _ => (None, None),
    };
    sqlx::query!(
        r#"with t as (
               update tasks set
                   title = coalesce($2, title), description = coalesce($3, description),
                   required_skills = coalesce($4, required_skills),
                   estimate_points = coalesce($5, estimate_points), priority = coalesce($6, priority),
                   area = case when $7 then $8 else area end, tier = coalesce($9, tier),
                   max_attempts = coalesce($10, max_attempts),
                   min_reputation = coalesce($13, min_reputation),
                   not_before = case when $14 then $15 else not_before end,
                   depends_on = coalesce($16, depends_on),
                   reserved_for = case when $17 then $18 else reserved_for end,
                   reserved_until = case when $17 then $19 else reserved_until end,
                   updated_at = now()
               where id = $1 returning id, repo, status)
           insert into audit_events (kind, task_id, repo, from_status, to_status, data, actor)
           select 'task_updated', id, repo, status, status, jsonb_strip_nulls($11), $12 from t"#,
        task_id,
        e.title,
        e.description,
        e.required_skills.as_deref(),
        e.estimate_points,
        e.priority,
        e.area.is_some(),
        e.area.clone().flatten(),
        e.tier,
        e.max_attempts,
        data,
        actor,
        e.min_reputation,
        e.not_before.is_some(),
        e.not_before.flatten(),
        e.depends_on.as_deref(),
        e.reservation.is_some(),
        reserved_for,
        reserved_until,
    )
    .execute(tx)
    .await?;
    Ok(())
}

/// Refuses dependencies that name no task or would close a cycle
/// (domain::task_edit::cycle_through). Edits of dependencies take one transaction lock, so
/// two edits that together would close a cycle run one after the other and the second
/// sees the first; a new task can only wait on tasks that exist, so creation closes none.
async fn check_dependencies(
    tx: &mut sqlx::PgConnection,
    task_id: &str,
    deps: &[String],
) -> StoreResult<Option<Edited>> {
    sqlx::query!("select pg_advisory_xact_lock(hashtext('owp:task_dependencies'))")
        .execute(&mut *tx)
        .await?;
    let found: Vec<String> = sqlx::query_scalar!("select id from tasks where id = any($1)", deps)
        .fetch_all(&mut *tx)
        .await?;
    if let Some((index, id)) = deps.iter().enumerate().find(|(_, d)| !found.contains(d)) {
        return Ok(Some(Edited::UnknownDependency {
            index,
            id: id.clone(),
        }));
    }
    // every task reachable from the new dependencies, with what it waits on
    let rows = sqlx::query!(
        r#"with recursive reach(id) as (
               select unnest($1::text[])
               union
               select unnest(t.depends_on) from tasks t join reach r on t.id = r.id)
           select t.id as "id!", t.depends_on as "depends_on!" from tasks t join reach r on t.id = r.id"#,
        deps
    )
    .fetch_all(&mut *tx)
    .await?;
    let waits_on = rows.into_iter().map(|r| (r.id, r.depends_on)).collect();
    Ok(
        crate::domain::task_edit::cycle_through(task_id, deps, &waits_on).map(|via| {
            Edited::DependencyCycle {
                via: via.to_string(),
            }
        }),
    )
}

/// Sets a worker's trust tier (0-3), audited with the old and new tier and the reason.
pub async fn set_trust_tier(
    pool: &Db,
    worker_id: &WorkerId,
    level: i16,
    reason: &str,
    actor: &str,
) -> StoreResult<WorkerAction> {
    let worker_id = worker_id.as_str();
    let mut tx = super::begin(pool).await?;
    // the old tier from the locked row, so concurrent changes are audited in order
    let Some(old) = sqlx::query_scalar!(
        "select trust_tier from workers where id = $1 for update",
        worker_id
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(WorkerAction::NotFound);
    };
    sqlx::query!(
        "with w as (update workers set trust_tier = $2, trust_tier_manual = true where id = $1 returning id)
         insert into audit_events (kind, worker_id, reason, actor, data)
         select 'worker_trust_tier_changed', id, $3, $4, jsonb_build_object('from', $5::int2, 'to', $2::int2)
         from w",
        worker_id,
        level,
        reason,
        actor,
        old,
    )
    .execute(&mut *tx)
    .await?;
    super::commit(tx).await?;
    Ok(WorkerAction::Done)
}
