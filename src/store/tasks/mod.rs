//! Tasks: bulk creation, and status reports: one guarded statement when the report
//! qualifies (`guarded`), else applied under the task's row lock (`report`).

mod guarded;
mod report;

pub use guarded::{report_guarded, report_guarded_many, Guarded, GuardedReport, GuardedRules};
pub use report::{update_status, Artifact, StatusResult, StatusUpdate};

use crate::store::Db;

use crate::domain::ids::TaskId;
use crate::domain::new_task::NewTask;
use crate::store::StoreResult;

pub enum Created {
    /// Per input, in order: the task's id and whether this call created it (false: a task
    /// with its repo and `external_id` existed, and nothing was created for it).
    Ok(Vec<(TaskId, bool)>),
    UnknownRepo(String),
    /// `[i].depends_on[j]` names no task.
    UnknownDependency((usize, usize, String)),
}

/// The ids of the tasks not inserted because their repo and `external_id` exist already,
/// written into `out`. A new statement: it sees rows that concurrent imports committed
/// while ours waited.
async fn existing_ids(
    tx: &mut sqlx::PgConnection,
    tasks: &[NewTask],
    inserted: &std::collections::HashSet<String>,
    out: &mut [(TaskId, bool)],
) -> StoreResult<()> {
    // a new statement: it sees rows that concurrent imports committed while ours waited
    let (repos, keys): (Vec<&str>, Vec<&str>) = tasks
        .iter()
        .filter(|t| !inserted.contains(&t.id.0))
        .filter_map(|t| Some((t.repo.as_str(), t.external_id.as_deref()?)))
        .unzip();
    let existing = sqlx::query!(
        "select t.repo, t.external_id as \"external_id!\", t.id
         from unnest($1::text[], $2::text[]) as k(repo, external_id)
         join tasks t on t.repo = k.repo and t.external_id = k.external_id",
        &repos as &[&str],
        &keys as &[&str],
    )
    .fetch_all(&mut *tx)
    .await?;
    for ((id, created), t) in out.iter_mut().zip(tasks) {
        if *created {
            continue;
        }
        let found = existing
            .iter()
            .find(|e| e.repo == t.repo && Some(e.external_id.as_str()) == t.external_id.as_deref());
        *id = TaskId(
            found
                .expect("a task not inserted conflicts with an existing key")
                .id
                .clone(),
        );
    }
    Ok(())
}

/// The first dependency that names no task: (task index, dependency index, id). Tasks are
/// never deleted while others may depend on them (retention keeps open work's tasks).
async fn unknown_dependency(
    tx: &mut sqlx::PgConnection,
    tasks: &[NewTask],
) -> StoreResult<Option<(usize, usize, String)>> {
    let mut ids: Vec<&str> = tasks
        .iter()
        .flat_map(|t| t.depends_on.iter().map(String::as_str))
        .collect();
    if ids.is_empty() {
        return Ok(None);
    }
    ids.sort_unstable();
    ids.dedup();
    let found: Vec<String> =
        sqlx::query_scalar!("select id from tasks where id = any($1)", &ids as &[&str])
            .fetch_all(&mut *tx)
            .await?;
    for (i, t) in tasks.iter().enumerate() {
        for (j, d) in t.depends_on.iter().enumerate() {
            if !found.contains(d) {
                return Ok(Some((i, j, d.clone())));
            }
        }
    }
    Ok(None)
}

/// Creates all tasks in one transaction with their audit events (I7). A task whose repo
/// and `external_id` exist already is not created again: its existing id is answered, so
/// importing one source twice (even concurrently) makes each task once.
pub async fn insert_tasks(pool: &Db, tasks: &[NewTask], actor: &str) -> StoreResult<Created> {
    let mut repos: Vec<&str> = tasks.iter().map(|t| t.repo.as_str()).collect();
    repos.sort_unstable();
    repos.dedup();
    let mut tx = crate::store::begin(pool).await?;
    // key share: a repo cannot disappear under the insert (repos are never deleted today)
    let known: Vec<String> = sqlx::query_scalar!(
        "select repo from repositories where repo = any($1) for key share",
        &repos as &[&str]
    )
    .fetch_all(&mut *tx)
    .await?;
    if let Some(missing) = repos.iter().find(|r| !known.iter().any(|k| k == *r)) {
        return Ok(Created::UnknownRepo(missing.to_string()));
    }
    if let Some(missing) = unknown_dependency(&mut tx, tasks).await? {
        return Ok(Created::UnknownDependency(missing));
    }
    let batch = serde_json::to_value(tasks).expect("tasks serialise to JSON");
    let inserted: Vec<String> = sqlx::query_scalar!(
        r#"with input as (
             select * from jsonb_to_recordset($1) as x(
                 id text, repo text, title text, description text, required_skills jsonb,
                 estimate_points int, priority int, area text, tier smallint, min_reputation smallint,
                 max_attempts int, external_id text, not_before timestamptz, depends_on jsonb,
                 reserved_for text, reserved_until timestamptz)
         ),
         ins as (
             insert into tasks (id, repo, title, description, required_skills, estimate_points,
                                priority, area, tier, min_reputation, max_attempts, external_id,
                                not_before, depends_on, reserved_for, reserved_until)
             select id, repo, title, description,
                    array(select jsonb_array_elements_text(required_skills)),
                    estimate_points, priority, area, tier, min_reputation, max_attempts, external_id,
                    not_before, array(select jsonb_array_elements_text(depends_on)),
                    reserved_for, reserved_until
             from input
             -- one order for every import, so two importing the same keys wait, never deadlock
             order by repo, external_id
             on conflict (repo, external_id) where external_id is not null do nothing
             returning id, repo),
         audit as (
             insert into audit_events (kind, task_id, repo, to_status, actor)
             select 'task_created', id, repo, 'ready', $2 from ins)
         select id as "id!" from ins"#,
        batch,
        actor,
    )
    .fetch_all(&mut *tx)
    .await?;
    let inserted: std::collections::HashSet<String> = inserted.into_iter().collect();
    let mut out: Vec<(TaskId, bool)> = tasks
        .iter()
        .map(|t| (t.id.clone(), inserted.contains(&t.id.0)))
        .collect();
    if inserted.len() < tasks.len() {
        existing_ids(&mut tx, tasks, &inserted, &mut out).await?;
    }
    crate::store::commit(tx).await?;
    Ok(Created::Ok(out))
}

/// The repository a task belongs to (it never changes), or `None` for no such task.
pub async fn repo_of(pool: &Db, task_id: &str) -> StoreResult<Option<String>> {
    Ok(
        sqlx::query_scalar!("select repo from tasks where id = $1", task_id)
            .fetch_optional(pool)
            .await?,
    )
}
