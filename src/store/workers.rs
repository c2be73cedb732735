//! Workers: registration, authentication by token digest, heartbeats.

use crate::store::Db;
use sqlx::PgConnection;

use super::audit::{insert_event, Event};
use super::StoreResult;
use crate::domain::ids::WorkerId;
use crate::domain::status::WorkerStatus;

pub struct NewWorker {
    pub id: WorkerId,
    pub name: String,
    pub github_handle: Option<String>,
    pub token_digest: [u8; 32],
    pub skills: Vec<String>,
    pub capacity_points: i32,
    pub max_concurrent_tasks: i32,
    pub trust_tier: i16,
}

pub async fn insert_worker(pool: &Db, w: &NewWorker) -> StoreResult<()> {
    let mut tx = super::begin(pool).await?;
    sqlx::query!(
        "insert into workers (id, name, github_handle, token_digest, skills, capacity_points, max_concurrent_tasks, trust_tier)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
        w.id.as_str(),
        w.name,
        w.github_handle,
        &w.token_digest[..],
        &w.skills,
        w.capacity_points,
        w.max_concurrent_tasks,
        w.trust_tier,
    )
    .execute(&mut *tx)
    .await?;
    let data = serde_json::json!({
        "name": w.name, "skills": w.skills,
        "capacity_points": w.capacity_points, "max_concurrent_tasks": w.max_concurrent_tasks,
        "trust_tier": w.trust_tier,
    });
    let actor = format!("worker:{}", w.id);
    insert_event(
        &mut tx,
        Event {
            kind: "worker_registered",
            actor: &actor,
            worker_id: Some(w.id.as_str()),
            data: Some(data),
            ..Event::default()
        },
    )
    .await?;
    super::commit(tx).await?;
    Ok(())
}

/// Finds the worker holding this token. A worker that was offline comes back at once, with
/// its `worker_online` event (I7): a concurrent request that brought it back first makes
/// `back` re-check `not online` on the locked row and skip, so the event is written once.
/// For an online worker the statement only reads: its sign of life is coalesced by the
/// replica (`liveness`) and written by `stamp_seen`.
pub async fn authenticate(pool: &Db, digest: &[u8; 32]) -> StoreResult<Option<WorkerId>> {
    let id = sqlx::query_scalar!(
        r#"with w as (select id, online from workers where token_digest = $1 and revoked_at is null),
           back as (
               update workers set last_heartbeat = now(), online = true
               from w
               where workers.id = w.id and not w.online and not workers.online
               returning workers.id),
           ev as (
               insert into audit_events (kind, worker_id, reason, actor)
               select 'worker_online', id, 'request', 'worker:' || id from back)
           select w.id as "id!" from w"#,
        &digest[..],
    )
    .fetch_optional(pool)
    .await?;
    Ok(id.map(WorkerId))
}

/// Writes the signs of life one replica heard since its last flush, in one statement: each
/// online worker's `last_heartbeat`, unless it is fresh (under a second old) or its row is
/// locked by a claim or a report right now (which stamp it themselves). How many were
/// written.
pub async fn stamp_seen(pool: &Db, ids: &[WorkerId]) -> StoreResult<u64> {
    let ids: Vec<&str> = ids.iter().map(WorkerId::as_str).collect();
    let r = sqlx::query!(
        "update workers set last_heartbeat = now()
         where id in (select id from workers
                      where id = any($1) and online
                        and last_heartbeat < now() - interval '1 second'
                      order by id
                      for update skip locked)",
        &ids as &[&str]
    )
    .execute(pool)
    .await?;
    Ok(r.rows_affected())
}

/// Records a sign of life of a worker whose row the caller has locked: a fresh heartbeat,
/// and, when it was offline, its return with a `worker_online` event (I7).
pub async fn touch_locked(tx: &mut PgConnection, worker_id: &str) -> StoreResult<()> {
    sqlx::query!(
        "with old as (select online from workers where id = $1),
         upd as (update workers set last_heartbeat = now(), online = true where id = $1),
         ev as (insert into audit_events (kind, worker_id, reason, actor)
                select 'worker_online', $1, 'request', 'worker:' || $1 from old where not old.online)
         select 1 as one",
        worker_id
    )
    .fetch_one(tx)
    .await?;
    Ok(())
}

/// A heartbeat, authenticated in the same statement: the token's worker (none when the
/// token is unknown or revoked), its self-reported status and note set, and its live lease
/// count. A steady fleet's heartbeat changes nothing, and then the statement only reads
/// (the sign of life is coalesced by the replica, `liveness`). The row is locked (`locked`)
/// only when something must be written: the worker comes back online (with its
/// `worker_online` event) or its status or note differs. The lock returns the row as it is
/// now, so a concurrent heartbeat's change is seen and each change is audited exactly
/// once, from the status it really left (I7).
pub async fn heartbeat(
    pool: &Db,
    digest: &[u8; 32],
    status: WorkerStatus,
    note: Option<&str>,
) -> StoreResult<Option<(WorkerId, i64)>> {
    let row = sqlx::query!(
        r#"with w as (
               select id, online, status, note from workers
               where token_digest = $1 and revoked_at is null),
           locked as (
               select workers.id, workers.online, workers.status, workers.note
               from workers join w on w.id = workers.id
               where not w.online or (w.status, w.note) is distinct from ($2, $3)
               for update of workers),
           upd as (
               update workers set status = $2, note = $3, online = true,
                   last_heartbeat = case when locked.online then workers.last_heartbeat else now() end
               from locked
               where workers.id = locked.id
                 and (not locked.online or (locked.status, locked.note) is distinct from ($2, $3))),
           back as (
               insert into audit_events (kind, worker_id, reason, actor)
               select 'worker_online', id, 'request', 'worker:' || id from locked where not online),
           changed as (
               insert into audit_events (kind, worker_id, from_status, to_status, actor)
               select 'worker_status_changed', id, status, $2, 'worker:' || id
               from locked where status <> $2)
           select w.id as "id!",
                  (select count(*) from tasks t where t.worker_id = w.id and task_is_live(t.status)) as "active!"
           from w"#,
        &digest[..],
        status.as_str(),
        note,
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| (WorkerId(r.id), r.active)))
}

/// A worker's change of its own settings: `None` keeps a field; `repos` `Some(None)` takes
/// work from every repository again.
pub struct OwnSettings {
    pub skills: Option<Vec<String>>,
    pub capacity_points: Option<i32>,
    pub max_concurrent_tasks: Option<i32>,
    pub repos: Option<Option<Vec<String>>>,
}

/// What a change of a worker's own settings came to.
pub enum OwnUpdate {
    Applied(crate::wire::workers::WorkerSettings),
    /// The new capacity or lease count is below what the worker holds now (I2): nothing
    /// changed. (points held, leases held)
    InUse(i64, i64),
}

/// Applies the worker's own settings with its audit event (`worker_updated`, what it sent).
/// The worker's row is locked first, as a claim locks it, so the capacity it holds is
/// counted after any poll in flight has committed: a lower capacity than it holds is
/// refused, never committed (I2).
pub async fn update_own(
    pool: &Db,
    worker_id: &WorkerId,
    s: &OwnSettings,
) -> StoreResult<OwnUpdate> {
    let mut tx = super::begin(pool).await?;
    let id = worker_id.as_str();
    sqlx::query!(
        "select 1 as x from workers where id = $1 for no key update",
        id
    )
    .fetch_one(&mut *tx)
    .await?;
    if s.capacity_points.is_some() || s.max_concurrent_tasks.is_some() {
        let used = sqlx::query!(
            r#"select coalesce(sum(estimate_points), 0)::int8 as "points!", count(*) as "leases!"
               from tasks where worker_id = $1 and task_holds_capacity(status)"#,
            id
        )
        .fetch_one(&mut *tx)
        .await?;
        let below = |new: Option<i32>, held: i64| new.is_some_and(|n| i64::from(n) < held);
        if below(s.capacity_points, used.points) || below(s.max_concurrent_tasks, used.leases) {
            return Ok(OwnUpdate::InUse(used.points, used.leases));
        }
    }
    let row = sqlx::query_as!(
        crate::wire::workers::WorkerSettings,
        r#"with upd as (
               update workers set
                   skills = coalesce($2::text[], skills),
                   capacity_points = coalesce($3::int4, capacity_points),
                   max_concurrent_tasks = coalesce($4::int4, max_concurrent_tasks),
                   repos = case when $5 then $6::text[] else repos end
               where id = $1
               returning id, skills, capacity_points, max_concurrent_tasks, repos),
           a as (
               insert into audit_events (kind, worker_id, data, actor)
               select 'worker_updated', id, $7, 'worker:' || id from upd)
           select id as "worker_id!", skills as "skills!", capacity_points as "capacity_points!",
                  max_concurrent_tasks as "max_concurrent_tasks!", repos
           from upd"#,
        id,
        s.skills.as_deref() as Option<&[String]>,
        s.capacity_points,
        s.max_concurrent_tasks,
        s.repos.is_some(),
        s.repos.clone().flatten() as Option<Vec<String>>,
        serde_json::json!({
            "skills": s.skills, "capacity_points": s.capacity_points,
            "max_concurrent_tasks": s.max_concurrent_tasks, "repos": s.repos,
        }),
    )
    .fetch_one(&mut *tx)
    .await?;
    super::commit(tx).await?;
    Ok(OwnUpdate::Applied(row))
}
