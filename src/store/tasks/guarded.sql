-- A holder's status report in one statement, its token checked in it
-- (store::tasks::guarded). $1 token digest, $2 task, $3 the lease the report names,
-- $4 the statuses it applies from (domain::transition::guarded_from), $5 the report,
-- $6 it ends the lease, $7 it frees the slot and area, $8 lease TTL (s) per trust tier
-- (index = level + 1), $9 audit data (the message), $10 on-time limit per estimate point
-- (s), $11 the untrusted tier's level.
-- The task row is locked by `old` and the guard re-checked on its newest version (READ
-- COMMITTED), so a concurrent report, sweep, requeue or revoke either lands first and makes
-- the guard miss, or waits for this one. Its effects are apply.sql's (or renew_lease's,
-- for the status it already has) for these reports.
with w as (
    select id, trust_tier from workers
    where token_digest = $1 and revoked_at is null and online),
old as (
    select t.id, t.status, t.repo, t.lease_id, t.estimate_points, t.pr_url,
           t.status = $5 as repeated
    from tasks t join w on t.worker_id = w.id
    where t.id = $2 and t.lease_id = $3 and t.lease_expires_at >= now()
      and t.status = any($4::text[])
      -- a claim awaiting approval (migration 18) takes the locking path's exact answer
      and t.approval_lease is distinct from t.lease_id
    for update of t),
t as (
    update tasks x set
        status = $5,
        lease_id = case when $6 then null else x.lease_id end,
        lease_expires_at = case when $6 then null
            else now() + make_interval(secs => ($8::float8[])[w.trust_tier + 1]) end,
        holds_area_lock = x.holds_area_lock and not $7,
        pr_opened_at = case when old.repeated then x.pr_opened_at end,
        retry_at = case when old.repeated then x.retry_at end,
        withheld_from = case when old.repeated then x.withheld_from end,
        withheld_until = case when old.repeated then x.withheld_until end,
        updated_at = now()
    from old, w
    where x.id = old.id
    returning old.status as from_status, old.repo, old.lease_id, old.estimate_points,
              old.repeated, x.lease_expires_at,
              $5 = 'completed' and w.trust_tier = $11 and old.pr_url is null as uncredited),
l as (
    update leases set last_report = $5,
        ended_at = case when ended_at is null and $6 then now() else ended_at end,
        end_reason = case when ended_at is null and $6 then $5 else end_reason end,
        -- reputation: delivered within estimate_points x OWP_ON_TIME_PER_POINT
        on_time = case when ended_at is null and $6 and $5 = 'completed'
            then now() - granted_at <= make_interval(secs => $10::float8 * t.estimate_points)
            else on_time end,
        credited = credited and not t.uncredited
    from t
    where leases.id = t.lease_id and not t.repeated),
changed as (
    insert into audit_events (kind, task_id, worker_id, repo, lease_id, from_status, to_status, data, actor)
    select 'task_status_changed', $2, w.id, t.repo, t.lease_id, t.from_status, $5, $9, 'worker:' || w.id
    from t, w where not t.repeated)
select w.id as "worker_id!", t.from_status as "from_status?", t.repeated as "repeated?",
       t.lease_expires_at as "lease_expires_at?"
from w left join t on true
