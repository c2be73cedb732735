//! Which ready tasks a claim looks at, and in what order: skills, tier, reputation, the
//! rejections a worker gave, and repos whose review budget is full left out.

use sqlx::PgConnection;

use super::*;
use crate::store::StoreResult;

/// How far past the wanted count candidates are locked, to absorb lost races.
pub(super) const CANDIDATE_SLACK: i64 = 4;

/// What a task may ask of the worker that claims it.
pub(super) struct Eligibility<'a> {
    pub(super) skills: &'a [String],
    /// Trust level: tasks of `tier` at most this.
    pub(super) tier: i16,
    /// Reputation score: tasks of `min_reputation` at most this.
    pub(super) score: i16,
    /// The repositories the worker takes work from (`None`: any).
    pub(super) repos: Option<&'a [String]>,
}

pub(super) async fn claim_candidates(
    tx: &mut PgConnection,
    req: &ClaimRequest<'_>,
    eligible: &Eligibility<'_>,
    free_points: &mut i32,
    want: i64,
) -> StoreResult<Granted> {
    let offering = matches!(req.grant, Grant::Offer { .. });
    let candidates =
        select_candidates(tx, req.worker_id, eligible, *free_points, want, offering).await?;
    if candidates.is_empty() {
        return Ok(Granted { ids: Vec::new() });
    }
    let mut repos: Vec<&str> = candidates.iter().map(|c| c.repo.as_str()).collect();
    repos.sort_unstable();
    repos.dedup();
    let mut budgets = lock_budgets(tx, &repos, &candidates[0].repo, req, eligible).await?;

    // choose under the locks, then grant all in one statement
    let mut chosen = Vec::new();
    for c in &candidates {
        if chosen.len() as i64 == want {
            break;
        }
        if c.estimate_points > *free_points {
            continue;
        }
        // a repo another poll is claiming from is passed over this time
        let Some(b) = budgets.get_mut(&c.repo) else {
            continue;
        };
        // access as the repo's lock read it: a rule changed since the candidates' hint wins
        if !b.admits || b.open >= b.max_open || b.worker_max.is_some_and(|m| b.worker_open >= m) {
            continue;
        }
        let area = c.area.as_deref().filter(|_| b.area_locks);
        if area.is_some_and(|a| b.held_areas.contains(a)) {
            continue;
        }
        b.open += 1;
        b.worker_open += 1;
        if let Some(a) = area {
            b.held_areas.insert(a.to_string());
        }
        *free_points -= c.estimate_points;
        chosen.push(Chosen {
            task: c.id.as_str(),
            area_lock: area.is_some(),
            approval: b.approval,
        });
    }
    // an inconsistent row passed over leaves its points counted: conservative, and rare
    grant(tx, req, eligible.tier, &chosen).await
}

/// A ready task this poll may claim, locked for this transaction.
pub(super) struct Candidate {
    pub(super) id: String,
    pub(super) repo: String,
    pub(super) area: Option<String>,
    pub(super) estimate_points: i32,
}

/// Locks up to `want` plus some slack of the ready tasks this worker may claim, in claim
/// order: repositories by fair share (the least open work per unit of `fair_share`
/// first), and within one, highest priority, then oldest; never more of a repository's
/// tasks than its free review slots.
pub(super) async fn select_candidates(
    tx: &mut PgConnection,
    worker_id: &str,
    eligible: &Eligibility<'_>,
    free_points: i32,
    want: i64,
    offering: bool,
) -> StoreResult<Vec<Candidate>> {
    // The only good plan walks each repository's tasks_ready_by_repo in order, repositories
    // in fair-share order (a sort of the few open repositories), and stops at the LIMIT. Right
    // after a bulk import the statistics say almost nothing is ready, and the planner may
    // prefer to sort every ready task (20-40 ms per poll at 20k ready). Sorts are forbidden
    // for the claim's transaction (claim_in's capacity statement sets it), which leaves the
    // index walk whatever the statistics say. The same statement forces the generic plan
    // for this query: PostgreSQL kept re-planning it on every poll (its custom plans look a
    // little cheaper than the generic one), about 0.9 ms of database CPU each time for the
    // same plan. The next statement (lock_budgets) turns custom planning back on.
    // Repos with a free slot are a hint here (re-checked under the repo lock below); they
    // keep full repos' tasks, and repos that do not admit this worker (domain::access;
    // decided again under the repo lock), from crowding the candidate list. Their open tasks come from
    // the kept counts (store::open_counts), not a count of every repo's open tasks per poll.
    // Uses tasks_ready_by_repo and tasks_one_per_area.
    let candidates = sqlx::query_as!(
        Candidate,
        r#"with changes as (select repo, sum(delta) as delta from repo_open_changes group by repo),
           open_repos as materialized (
               select r.repo, r.area_locks_enabled,
                      r.max_open_prs - coalesce(c.open, 0) - coalesce(d.delta, 0) as free,
                      -- fair share (domain docs): open work per unit of weight, least first
                      (coalesce(c.open, 0) + coalesce(d.delta, 0))::float8 / r.fair_share as used_share
               from repositories r
               left join repo_open_counts c on c.repo = r.repo
               left join changes d on d.repo = r.repo
               where r.max_open_prs > coalesce(c.open, 0) + coalesce(d.delta, 0)
                 and r.min_trust_tier <= $3
                 and (r.allow_workers is null or $5 = any(r.allow_workers))
                 and not ($5 = any(r.deny_workers))
                 and ($8::text[] is null or r.repo = any($8)))
           select c.id as "id!", c.repo as "repo!", c.area, c.estimate_points as "estimate_points!"
           from (select * from open_repos order by used_share, repo) r
           cross join lateral (
               select t.id, t.repo, t.area, t.estimate_points
               from tasks t
               where t.repo = r.repo and t.status = 'ready'
                 and t.required_skills <@ $1
                 and t.estimate_points <= $2
                 and t.tier <= $3
                 and t.min_reputation <= $6
                 -- a task the worker rejected is never offered to it again
                 and not ($7 and exists (select 1 from offers o where o.task_id = t.id and o.worker_id = $5
                                         and o.outcome = 'rejected'))
                 -- retry backoff (domain::retry): nobody before retry_at, the worker that
                 -- lost the attempt not before withheld_until
                 and (t.retry_at is null or t.retry_at <= now())
                 -- planned work (issue 27): due, held for nobody else, its dependencies done
                 and (t.not_before is null or t.not_before <= now())
                 and (t.reserved_for is null or t.reserved_for = $5 or t.reserved_until <= now())
                 and (t.depends_on = '{}' or not exists (
                     select 1 from tasks d where d.id = any(t.depends_on)
                       and not task_is_delivered(d.status)))
                 and (t.withheld_from is distinct from $5 or t.withheld_until <= now())
                 and not (r.area_locks_enabled and t.area is not null and exists (
                     select 1 from tasks a where a.repo = t.repo and a.area = t.area and a.holds_area_lock))
               order by t.priority desc, t.created_at, t.id
               -- no more of a repository's tasks than its free slots
               limit least($4, r.free)
               for update of t skip locked) c
           limit $4"#,
        eligible.skills,
        free_points,
        eligible.tier,
        want + CANDIDATE_SLACK,
        worker_id,
        eligible.score,
        offering,
        eligible.repos as Option<&[String]>,
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(candidates)
}
