//! The invariant checker: reads one consistent snapshot of the database and the audit log
//! and lists every violation of I1-I7 it can see. Used by the tests (also while they run,
//! to catch transient violations) and by `owp bench`; it lives with the other SQL.

use sqlx::{PgConnection, PgPool};

/// Violations found, each a short sentence naming the invariant and the rows.
pub async fn check(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // one snapshot for every query: the checks see a single committed state
    sqlx::query!("set transaction isolation level repeatable read, read only")
        .execute(&mut *tx)
        .await?;
    let mut found = Found::default();
    check_leases(&mut tx, &mut found).await?;
    check_workers(&mut tx, &mut found).await?;
    check_repos(&mut tx, &mut found).await?;
    check_audit(&mut tx, &mut found).await?;
    tx.commit().await?;
    Ok(found.0)
}

#[derive(Default)]
struct Found(Vec<String>);

impl Found {
    fn add(&mut self, label: &str, rows: Vec<String>) {
        if !rows.is_empty() {
            self.0.push(format!("{label}: {}", rows.join(", ")));
        }
    }
}

/// I1: one live lease per task, and task and lease rows agree.
async fn check_leases(tx: &mut PgConnection, found: &mut Found) -> Result<(), sqlx::Error> {
    found.add(
        "I1 task with more than one live lease",
        sqlx::query_scalar!(
            r#"select task_id as "t!" from leases where ended_at is null group by task_id having count(*) > 1"#
        )
        .fetch_all(&mut *tx)
        .await?,
    );
    found.add(
        "I1 live task whose lease row is missing, ended or someone else's",
        sqlx::query_scalar!(
            r#"select t.id as "t!" from tasks t left join leases l on l.id = t.lease_id
               where t.status in ('leased', 'in_progress', 'blocked')
                 and (l.id is null or l.ended_at is not null or l.worker_id <> t.worker_id or l.task_id <> t.id)"#
        )
        .fetch_all(&mut *tx)
        .await?,
    );
    found.add(
        "I1 live lease row on a task that is not held under it",
        sqlx::query_scalar!(
            r#"select l.id as "l!" from leases l join tasks t on t.id = l.task_id
               where l.ended_at is null and t.lease_id is distinct from l.id"#
        )
        .fetch_all(&mut *tx)
        .await?,
    );
    Ok(())
}

/// I2 and I3: capacity and skills of every holder.
async fn check_workers(tx: &mut PgConnection, found: &mut Found) -> Result<(), sqlx::Error> {
    found.add(
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
    found.add(
        "I3 lease granted without the required skills",
        sqlx::query_scalar!(
            r#"select l.id as "l!" from leases l join tasks t on t.id = l.task_id join workers w on w.id = l.worker_id
               where not (t.required_skills <@ w.skills)"#
        )
        .fetch_all(&mut *tx)
        .await?,
    );
    Ok(())
}

/// I4 and I5: review budgets and area locks.
async fn check_repos(tx: &mut PgConnection, found: &mut Found) -> Result<(), sqlx::Error> {
    found.add(
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
    found.add(
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
    Ok(())
}

/// I7: every state change has its audit event.
async fn check_audit(tx: &mut PgConnection, found: &mut Found) -> Result<(), sqlx::Error> {
    found.add(
        "I7 lease without exactly one lease_granted event",
        sqlx::query_scalar!(
            r#"select l.id as "l!" from leases l
               left join audit_events a on a.lease_id = l.id and a.kind = 'lease_granted'
               group by l.id having count(a.id) <> 1"#
        )
        .fetch_all(&mut *tx)
        .await?,
    );
    found.add(
        "I7 task without exactly one task_created event",
        sqlx::query_scalar!(
            r#"select t.id as "t!" from tasks t
               left join audit_events a on a.task_id = t.id and a.kind = 'task_created'
               group by t.id having count(a.id) <> 1"#
        )
        .fetch_all(&mut *tx)
        .await?,
    );
    found.add(
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
    found.add(
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
    Ok(())
}
