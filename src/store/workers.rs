//! Workers: registration, authentication by token digest, heartbeats.

use sqlx::PgPool;

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
}

pub async fn insert_worker(pool: &PgPool, w: &NewWorker) -> StoreResult<()> {
    let mut tx = super::begin(pool).await?;
    sqlx::query!(
        "insert into workers (id, name, github_handle, token_digest, skills, capacity_points, max_concurrent_tasks)
         values ($1, $2, $3, $4, $5, $6, $7)",
        w.id.as_str(),
        w.name,
        w.github_handle,
        &w.token_digest[..],
        &w.skills,
        w.capacity_points,
        w.max_concurrent_tasks,
    )
    .execute(&mut *tx)
    .await?;
    let data = serde_json::json!({
        "name": w.name, "skills": w.skills,
        "capacity_points": w.capacity_points, "max_concurrent_tasks": w.max_concurrent_tasks,
    });
    insert_event(
        &mut tx,
        Event {
            kind: "worker_registered",
            worker_id: Some(w.id.as_str()),
            data: Some(data),
            ..Event::default()
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub struct AuthedWorker {
    pub id: WorkerId,
    pub status: WorkerStatus,
}

/// Finds the worker holding this token and records the request as a sign of life.
/// The touch is skipped while the heartbeat is fresh, so busy workers do not rewrite
/// their row on every request; an offline worker comes back at once.
pub async fn authenticate(pool: &PgPool, digest: &[u8; 32]) -> StoreResult<Option<AuthedWorker>> {
    let row = sqlx::query!(
        r#"with w as (select id, status from workers where token_digest = $1),
           touched as (
               update workers set last_heartbeat = now(), online = true
               from w
               where workers.id = w.id
                 and (not workers.online or workers.last_heartbeat < now() - interval '1 second')
               returning workers.id)
           select w.id as "id!", w.status as "status!: WorkerStatus" from w"#,
        &digest[..],
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| AuthedWorker {
        id: WorkerId(r.id),
        status: r.status,
    }))
}

/// A heartbeat: sets the worker's self-reported status and note; returns its live lease count.
pub async fn heartbeat(
    pool: &PgPool,
    id: &WorkerId,
    status: WorkerStatus,
    note: Option<&str>,
) -> StoreResult<i64> {
    let mut tx = super::begin(pool).await?;
    // the old status comes from the locked row, so a status change is audited exactly once
    let prev = sqlx::query_scalar!(
        r#"select status as "status: WorkerStatus" from workers where id = $1 for update"#,
        id.as_str()
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query!(
        "update workers set status = $2, note = $3, last_heartbeat = now(), online = true where id = $1",
        id.as_str(),
        status.as_str(),
        note,
    )
    .execute(&mut *tx)
    .await?;
    if prev != status {
        insert_event(
            &mut tx,
            Event {
                kind: "worker_status_changed",
                worker_id: Some(id.as_str()),
                from_status: Some(prev.as_str()),
                to_status: Some(status.as_str()),
                ..Event::default()
            },
        )
        .await?;
    }
    let active = sqlx::query_scalar!(
        r#"select count(*) as "n!" from tasks
           where worker_id = $1 and status in ('leased', 'in_progress', 'blocked')"#,
        id.as_str()
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(active)
}
