//! Workers as operators read them: the list (with each one's reputation score) and one
//! worker with the tasks it holds.

use crate::domain::ids::WorkerId;
use crate::domain::status::WorkerStatus;
use crate::domain::trust::TrustTier;
use crate::store::reputation::counts_of_row;
use crate::store::Db;
use crate::wire::views::{TaskView, WorkerView};

use super::{list_tasks, read_only, TaskFilter};
use crate::store::StoreResult;

pub struct WorkerFilter<'a> {
    /// Just this worker.
    pub id: Option<&'a str>,
    pub online: Option<bool>,
    pub status: Option<WorkerStatus>,
    pub after: Option<&'a str>,
    pub limit: i64,
    /// Seconds of silence after which a worker counts as offline.
    pub heartbeat_timeout_secs: f64,
}

pub async fn list_workers(pool: &Db, f: &WorkerFilter<'_>) -> StoreResult<Vec<WorkerView>> {
    let mut tx = read_only(pool).await?;
    let rows = sqlx::query!(
        r#"select w.id as worker_id, w.name, w.github_handle, w.skills, w.capacity_points,
                  w.max_concurrent_tasks,
                  coalesce(l.points, 0) as "used_points!", coalesce(l.n, 0) as "live_leases!",
                  w.status as "status: WorkerStatus", w.note,
                  (w.online and w.last_heartbeat > now() - make_interval(secs => $5)) as "online!",
                  w.last_heartbeat, w.trust_tier as "trust_tier: TrustTier", w.paused_by_admin as paused,
                  (w.revoked_at is not null) as "revoked!", w.created_at,
                  coalesce(r.attempts, 0)::int8 as "attempts!", coalesce(r.delivered, 0)::int8 as "delivered!",
                  coalesce(r.on_time, 0)::int8 as "on_time!", coalesce(r.failed, 0)::int8 as "failed!",
                  coalesce(r.expired, 0)::int8 as "expired!", coalesce(r.prs_merged, 0)::int8 as "prs_merged!",
                  coalesce(r.prs_closed, 0)::int8 as "prs_closed!", coalesce(r.quality_sum, 0)::int8 as "quality_sum!",
                  coalesce(r.quality_count, 0)::int8 as "quality_count!"
           from workers w
           left join worker_reputation r on r.worker_id = w.id
           left join lateral (
               select sum(estimate_points)::int8 as points,
                      count(*) filter (where t.status <> 'offered') as n from tasks t
               where t.worker_id = w.id and task_holds_capacity(t.status)) l on true
           where ($1::bool is null
                  or $1 = (w.online and w.last_heartbeat > now() - make_interval(secs => $5)))
             and ($2::text is null or w.status = $2)
             and ($3::text is null or w.id > $3)
             and ($6::text is null or w.id = $6)
           order by w.id
           limit $4"#,
        f.online,
        f.status.map(WorkerStatus::as_str),
        f.after,
        f.limit,
        f.heartbeat_timeout_secs,
        f.id,
    )
    .fetch_all(&mut *tx)
    .await?;
    crate::store::commit(tx).await?;
    Ok(rows
        .into_iter()
        .map(|r| WorkerView {
            // the score as the claim compares it (domain::reputation)
            reputation_score: counts_of_row!(r).score(),
            worker_id: r.worker_id,
            name: r.name,
            github_handle: r.github_handle,
            skills: r.skills,
            capacity_points: r.capacity_points,
            max_concurrent_tasks: r.max_concurrent_tasks,
            used_points: r.used_points,
            live_leases: r.live_leases,
            status: r.status,
            note: r.note,
            online: r.online,
            last_heartbeat: r.last_heartbeat,
            trust_tier: r.trust_tier,
            paused: r.paused,
            revoked: r.revoked,
            created_at: r.created_at,
        })
        .collect())
}

/// The worker (`None`: unknown) and the tasks it holds under live leases.
pub async fn worker_detail(
    pool: &Db,
    worker_id: &WorkerId,
    heartbeat_timeout_secs: f64,
) -> StoreResult<Option<(WorkerView, Vec<TaskView>)>> {
    let worker_id = worker_id.as_str();
    let filter = WorkerFilter {
        id: Some(worker_id),
        online: None,
        status: None,
        after: None,
        limit: 1,
        heartbeat_timeout_secs,
    };
    let Some(worker) = list_workers(pool, &filter).await?.pop() else {
        return Ok(None);
    };
    let leases = list_tasks(
        pool,
        &TaskFilter {
            statuses: Some(vec![
                "leased".into(),
                "in_progress".into(),
                "blocked".into(),
            ]),
            repos: None,
            skill: None,
            worker_id: Some(worker_id),
            area: None,
            after: None,
            limit: 1000,
        },
    )
    .await?;
    Ok(Some((worker, leases)))
}
