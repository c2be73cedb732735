//! Reputation counters (kept by triggers on `leases`, see migration 0005): reading one
//! worker's, the leader's reconciliation with the lease history, and automatic promotion.

use crate::domain::ids::WorkerId;
use crate::store::Db;

use super::StoreResult;
use crate::domain::reputation::{Counts, PromotionRule};

/// `Counts` from a row of the nine `worker_reputation` counters; the rows of different
/// queries are different types, so one macro rather than a `From` per query.
macro_rules! counts_of_row {
    ($r:expr) => {
        $crate::domain::reputation::Counts {
            attempts: $r.attempts,
            delivered: $r.delivered,
            on_time: $r.on_time,
            failed: $r.failed,
            expired: $r.expired,
            prs_merged: $r.prs_merged,
            prs_closed: $r.prs_closed,
            quality_sum: $r.quality_sum,
            quality_count: $r.quality_count,
        }
    };
}
pub(crate) use counts_of_row;

/// A worker's counters with its trust level, for `GET /v1/workers/{id}/reputation`.
pub struct Standing {
    pub counts: Counts,
    pub trust_tier: i16,
}

/// One read: the worker's tier and counters (all zero with no counted attempt yet); `None`
/// for an unknown worker.
pub async fn standing(pool: &Db, worker_id: &WorkerId) -> StoreResult<Option<Standing>> {
    let worker_id = worker_id.as_str();
    let row = sqlx::query!(
        r#"select w.trust_tier,
                  coalesce(r.attempts, 0)::int8 as "attempts!", coalesce(r.delivered, 0)::int8 as "delivered!",
                  coalesce(r.on_time, 0)::int8 as "on_time!", coalesce(r.failed, 0)::int8 as "failed!",
                  coalesce(r.expired, 0)::int8 as "expired!", coalesce(r.prs_merged, 0)::int8 as "prs_merged!",
                  coalesce(r.prs_closed, 0)::int8 as "prs_closed!", coalesce(r.quality_sum, 0)::int8 as "quality_sum!",
                  coalesce(r.quality_count, 0)::int8 as "quality_count!"
           from workers w left join worker_reputation r on r.worker_id = w.id
           where w.id = $1"#,
        worker_id
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| Standing {
        trust_tier: r.trust_tier,
        counts: counts_of_row!(r),
    }))
}

/// What one reconciliation batch found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reconciled {
    /// Workers compared.
    pub checked: u64,
    /// Workers whose counters differed from their history, now repaired.
    pub repaired: u64,
}

/// Compares the counters of up to `batch` workers after `after` (by id) with what their
/// lease history says, and repairs the ones that differ. Returns the batch's figures and
/// the last id it looked at (none once past the last worker).
///
/// Exact under concurrent reports: the counter rows are locked first (skipping rows a
/// report is changing right now; the next run checks them), then a new statement reads
/// the history, so it sees every change that committed before the locks; a change that
/// commits later adds its delta after this transaction, to the repaired value.
pub async fn reconcile_batch(
    pool: &Db,
    after: &str,
    batch: i64,
) -> StoreResult<(Reconciled, Option<String>)> {
    let mut tx = super::begin(pool).await?;
    let ids: Vec<String> = sqlx::query_scalar!(
        "select id from workers where id > $1 order by id limit $2",
        after,
        batch
    )
    .fetch_all(&mut *tx)
    .await?;
    let Some(last) = ids.last().cloned() else {
        return Ok((Reconciled::default(), None));
    };
    let locked: Vec<String> = sqlx::query_scalar!(
        "select worker_id from worker_reputation where worker_id = any($1) for update skip locked",
        &ids
    )
    .fetch_all(&mut *tx)
    .await?;
    let repaired = sqlx::query_scalar!(
        r#"with e as (select * from worker_reputation_expected where worker_id = any($1)),
           fixed as (
               update worker_reputation r set attempts = e.attempts, delivered = e.delivered,
                   on_time = e.on_time, failed = e.failed, expired = e.expired,
                   prs_merged = e.prs_merged, prs_closed = e.prs_closed,
                   quality_sum = e.quality_sum, quality_count = e.quality_count
               from e
               where r.worker_id = e.worker_id and r.worker_id = any($2)
                 and (r.attempts, r.delivered, r.on_time, r.failed, r.expired, r.prs_merged,
                      r.prs_closed, r.quality_sum, r.quality_count)
                     is distinct from (e.attempts, e.delivered, e.on_time, e.failed, e.expired,
                      e.prs_merged, e.prs_closed, e.quality_sum, e.quality_count)
               returning 1),
           -- history but no counters: only a bug could leave that
           added as (
               insert into worker_reputation
               select e.* from e
               where not exists (select 1 from worker_reputation x where x.worker_id = e.worker_id)
                 and (e.attempts, e.prs_merged, e.prs_closed, e.quality_count) <> (0, 0, 0, 0)
               on conflict (worker_id) do nothing
               returning 1)
           select (select count(*) from fixed) + (select count(*) from added) as "n!""#,
        &ids,
        &locked,
    )
    .fetch_one(&mut *tx)
    .await?;
    super::commit(tx).await?;
    let r = Reconciled {
        checked: ids.len() as u64,
        repaired: repaired as u64,
    };
    Ok((r, Some(last)))
}

/// Promotes to `basic` the untrusted workers that meet `rule`, each with its audit event
/// (actor `system`). Workers whose tier an admin set, and revoked workers, are left alone.
pub async fn promote_basic(pool: &Db, rule: &PromotionRule) -> StoreResult<Vec<String>> {
    // only workers with some delivered history can meet any rule worth having
    let rows = sqlx::query!(
        r#"select r.worker_id, r.attempts::int8 as "attempts!", r.delivered::int8 as "delivered!",
                  r.on_time::int8 as "on_time!", r.failed::int8 as "failed!", r.expired::int8 as "expired!",
                  r.prs_merged::int8 as "prs_merged!", r.prs_closed::int8 as "prs_closed!",
                  r.quality_sum::int8 as "quality_sum!", r.quality_count::int8 as "quality_count!"
           from worker_reputation r join workers w on w.id = r.worker_id
           where w.trust_tier < 1 and not w.trust_tier_manual and w.revoked_at is null"#
    )
    .fetch_all(pool)
    .await?;
    let due: Vec<String> = rows
        .into_iter()
        .filter(|r| rule.is_met(&counts_of_row!(r)))
        .map(|r| r.worker_id)
        .collect();
    if due.is_empty() {
        return Ok(due);
    }
    // re-checked under the row lock: an admin's change meanwhile wins
    let promoted = sqlx::query_scalar!(
        "with w as (
             update workers set trust_tier = 1
             where id = any($1) and trust_tier < 1 and not trust_tier_manual and revoked_at is null
             returning id, trust_tier),
         ev as (
             insert into audit_events (kind, worker_id, reason, actor, data)
             select 'worker_trust_tier_changed', id, $2, 'system', jsonb_build_object('from', 0, 'to', 1)
             from w)
         select id from w",
        &due,
        format!("promotion rule: {rule}"),
    )
    .fetch_all(pool)
    .await?;
    Ok(promoted)
}
