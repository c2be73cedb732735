//! The invariant checker: reads one consistent snapshot of the database and the audit log
//! and lists every violation of I1-I7 it can see. Used by the tests (also while they run,
//! to catch transient violations) and by `owp bench`.

use sqlx::PgPool;

/// Violations found, each a short sentence naming the invariant and the rows.
pub async fn check(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // one snapshot for every query: the checks see a single committed state
    sqlx::query!("set transaction isolation level repeatable read, read only")
        .execute(&mut *tx)
        .await?;
    let mut v = Vec::new();
    let mut found = |label: &str, rows: Vec<String>| {
        if !rows.is_empty() {
            v.push(format!("{label}: {}", rows.join(", ")));
        }
    };

    found(
        "I1 task with more than one live lease",
        sqlx::query_scalar!(
            r#"select task_id as "t!" from leases where ended_at is null group by task_id having count(*) > 1"#
        )
        .fetch_all(&mut *tx)
        .await?,
    );
    found(
        "I1 live task whose lease row is missing, ended or someone else's",
        sqlx::query_scalar!(
            r#"select t.id as "t!" from tasks t left join leases l on l.id = t.lease_id
               where t.status in ('leased', 'in_progress', 'blocked')
                 and (l.id is null or l.ended_at is not null or l.worker_id <> t.worker_id or l.task_id <> t.id)"#
        )
        .fetch_all(&mut *tx)
        .await?,
    );
    found(
        "I1 live lease row on a task that is not held under it",
        sqlx::query_scalar!(
            r#"select l.id as "l!" from leases l join tasks t on t.id = l.task_id
               where l.ended_at is null and t.lease_id is distinct from l.id"#
        )
        .fetch_all(&mut *tx)
        .await?,
    );
    found(
        "I2 worker over its capacity",
        sqlx::query_scalar!(
            r#"select w.id || ' (' || sum(t.estimate_points) || '/' || w.capacity_points || ' points, '
                      || count(*) || '/' || w.max_concurrent_tasks || ' leases)' as "w!"
               from workers w join tasks t on t.worker_id = w.id and t.status in ('leased', 'in_progress', 'blocked')
               group by w.id
               having sum(t.estimate_points) > w.capacity_points or count(*) > w.max_concurrent_tasks"#
        )
        .fetch_all(&mut *tx)
        .await?,
    );
    found(
        "I3 lease granted without the required skills",
        sqlx::query_scalar!(
            r#"select l.id as "l!" from leases l join tasks t on t.id = l.task_id join workers w on w.id = l.worker_id
               where not (t.required_skills <@ w.skills)"#
        )
        .fetch_all(&mut *tx)
        .await?,
    );
    found(
        "I4 repo over its review budget",
        sqlx::query_scalar!(
            r#"select r.repo || ' (' || count(t.id) || '/' || r.max_open_prs || ')' as "r!"
               from repositories r join tasks t on t.repo = r.repo
                    and t.status in ('leased', 'in_progress', 'blocked', 'pr_opened')
               group by r.repo having count(t.id) > r.max_open_prs"#
        )
        .fetch_all(&mut *tx)
        .await?,
    );
    found(
        "I5 area with more than one open task",
        sqlx::query_scalar!(
            r#"select t.repo || ':' || t.area as "a!" from tasks t join repositories r on r.repo = t.repo
               where r.area_locks_enabled and t.area is not null
                 and t.status in ('leased', 'in_progress', 'blocked', 'pr_opened')
               group by t.repo, t.area having count(*) > 1"#
        )
        .fetch_all(&mut *tx)
        .await?,
    );
    found(
        "I7 lease without exactly one lease_granted event",
        sqlx::query_scalar!(
            r#"select l.id as "l!" from leases l
               left join audit_events a on a.lease_id = l.id and a.kind = 'lease_granted'
               group by l.id having count(a.id) <> 1"#
        )
        .fetch_all(&mut *tx)
        .await?,
    );
    found(
        "I7 task without exactly one task_created event",
        sqlx::query_scalar!(
            r#"select t.id as "t!" from tasks t
               left join audit_events a on a.task_id = t.id and a.kind = 'task_created'
               group by t.id having count(a.id) <> 1"#
        )
        .fetch_all(&mut *tx)
        .await?,
    );
    found(
        "I7 ended lease without exactly one event that ended it",
        sqlx::query_scalar!(
            r#"select l.id as "l!" from leases l
               left join audit_events a on a.lease_id = l.id and (
                    (a.kind = 'task_status_changed' and a.to_status = l.end_reason)
                 or (a.kind = 'lease_expired' and l.end_reason = 'lease_expired')
                 or (a.kind in ('task_requeued', 'task_failed') and a.reason = 'worker_offline'
                     and l.end_reason = 'worker_offline'))
               where l.ended_at is not null
               group by l.id having count(a.id) <> 1"#
        )
        .fetch_all(&mut *tx)
        .await?,
    );
    found(
        "I7 requeue without its task_requeued event",
        sqlx::query_scalar!(
            r#"select t.id || ' (' || t.attempt || ' failed attempts, ' || count(a.id) || ' requeues)' as "t!"
               from tasks t
               left join audit_events a on a.task_id = t.id and a.kind = 'task_requeued'
                    and a.reason in ('failed', 'closed', 'lease_expired', 'worker_offline')
               where t.status <> 'failed'
               group by t.id having count(a.id) <> t.attempt"#
        )
        .fetch_all(&mut *tx)
        .await?,
    );
    tx.commit().await?;
    Ok(v)
}
