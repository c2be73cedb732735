//! Review budgets and area locks, locked per repository for one claim (I4, I5).

use std::collections::{HashMap, HashSet};

use sqlx::PgConnection;

use super::*;
use crate::domain::access::{self, RepoAccess};
use crate::store::StoreResult;

pub(super) struct Budget {
    pub(super) max_open: i64,
    pub(super) area_locks: bool,
    pub(super) open: i64,
    pub(super) held_areas: HashSet<String>,
    /// The claiming worker's open tasks here, and the most it may have (None: no cap).
    pub(super) worker_open: i64,
    pub(super) worker_max: Option<i64>,
    /// The repo admits the claiming worker (domain::access), read under its lock.
    pub(super) admits: bool,
    /// The worker's claims here wait for a maintainer's approval (domain::access).
    pub(super) approval: bool,
}

/// A repository row as the claim locks it.
struct RepoRow {
    repo: String,
    max_open_prs: i32,
    area_locks_enabled: bool,
    max_open_prs_per_worker: Option<i32>,
    allow_workers: Option<Vec<String>>,
    deny_workers: Vec<String>,
    min_trust_tier: i16,
    claim_approval: bool,
}

/// Locks the candidates' repos that no other poll is claiming from (or, when all are busy,
/// waits for the first candidate's repo) and reads their open slots and held areas under
/// that lock. Repos missing from the map were not locked: their candidates are skipped.
pub(super) async fn lock_budgets(
    tx: &mut PgConnection,
    repos: &[&str],
    first: &str,
    req: &ClaimRequest<'_>,
    eligible: &Eligibility<'_>,
) -> StoreResult<HashMap<String, Budget>> {
    let default_cap = req.caps.max_open_prs_per_worker;
    let worker = req.worker_id.as_str();
    let budget = |r: RepoRow| {
        let access = RepoAccess {
            allow: r.allow_workers.as_deref(),
            deny: &r.deny_workers,
            min_tier: r.min_trust_tier,
        };
        let admits = access::admits(&r.repo, &access, worker, eligible.tier, eligible.repos);
        let b = Budget {
            max_open: i64::from(r.max_open_prs),
            area_locks: r.area_locks_enabled,
            open: 0,
            held_areas: HashSet::new(),
            worker_open: 0,
            worker_max: r
                .max_open_prs_per_worker
                .or((default_cap > 0).then_some(default_cap))
                .map(i64::from),
            admits: admits.is_ok(),
            approval: access::needs_approval(r.claim_approval, eligible.tier),
        };
        (r.repo, b)
    };
    // Both lock statements end the generic planning the capacity statement asked for the
    // candidates (see select_candidates): count_open's `repo = any($1)` must be planned
    // for its repos, or one repo with many open tasks turns it into a sequential scan.
    let rows = sqlx::query_as!(
        RepoRow,
        r#"select repo, max_open_prs, area_locks_enabled, max_open_prs_per_worker,
                  allow_workers, deny_workers, min_trust_tier, claim_approval
           from repositories, set_config('plan_cache_mode', 'auto', true)
           where repo = any($1) for update of repositories skip locked"#,
        repos as &[&str]
    )
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        // every candidate repo is busy: queue for one, holding no other repo lock
        let r = sqlx::query_as!(
            RepoRow,
            r#"select repo, max_open_prs, area_locks_enabled, max_open_prs_per_worker,
                      allow_workers, deny_workers, min_trust_tier, claim_approval
               from repositories, set_config('plan_cache_mode', 'auto', true)
               where repo = $1 for update of repositories"#,
            first
        )
        .fetch_one(&mut *tx)
        .await?;
        return count_open(tx, HashMap::from([budget(r)]), worker).await;
    }
    let budgets = rows.into_iter().map(budget).collect();
    count_open(tx, budgets, worker).await
}

/// Reads the open slots and held areas of locked repos, and the claiming worker's own
/// open tasks there. A new statement, so a new snapshot: it sees every claim committed
/// before our locks were granted (the worker's own, too: its row is locked).
pub(super) async fn count_open(
    tx: &mut PgConnection,
    mut budgets: HashMap<String, Budget>,
    worker_id: &str,
) -> StoreResult<HashMap<String, Budget>> {
    let locked: Vec<&str> = budgets.keys().map(String::as_str).collect();
    let open = sqlx::query!(
        r#"select repo, count(*) as "open!",
                  count(*) filter (where worker_id = $2) as "worker_open!",
                  coalesce(array_agg(area) filter (where holds_area_lock), '{}') as "areas!: Vec<String>"
           from tasks
           where repo = any($1) and task_is_open(status)
           group by repo"#,
        &locked as &[&str],
        worker_id
    )
    .fetch_all(&mut *tx)
    .await?;
    for r in open {
        if let Some(b) = budgets.get_mut(&r.repo) {
            b.open = r.open;
            b.worker_open = r.worker_open;
            b.held_areas = r.areas.into_iter().collect();
        }
    }
    Ok(budgets)
}
