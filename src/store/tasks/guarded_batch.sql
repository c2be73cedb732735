-- Many holders' status reports in one statement, each its own worker's token checked in it
-- (store::tasks::guarded, report_guarded_many): guarded.sql for a set. Per report, by
-- position: $1 token digest, $2 task (all different), $3 the lease the report names, $4 the
-- statuses it applies from, comma-separated (domain::transition::guarded_from), $5 the
-- report, $6 it ends the lease, $7 it frees the slot and area, $8 the message (audit data);
-- for all: $9 lease TTL (s) per trust tier (index = level + 1), $10 on-time limit per
-- estimate point (s), $11 the untrusted tier's level.
-- The task rows are locked in id order (ORDER BY before FOR UPDATE), so two batches, or a
-- batch and any other statement that locks tasks in id order, never wait on each other in
-- a cycle; each guard is re-checked on the row's newest version (READ COMMITTED), as in
-- guarded.sql. One row per report comes back, in input order: no worker (the token is no
-- online worker's), a worker and no transition (the guard missed), or the applied report.
with i as (
    select * from unnest($1::bytea[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::bool[], $7::bool[], $8::text[])
        with ordinality as i(digest, task, lease, from_list, report, ends, frees, message, n)),
-- a lateral lookup per report: one index probe each, whatever the planner guesses of the
-- array's length against the workers table's size
w as (
    select i.n, wk.id, wk.trust_tier from i cross join lateral (
        select id, trust_tier from workers
        where token_digest = i.digest and revoked_at is null and online) wk),
old as (
    select t.id, t.status, t.repo, t.lease_id, t.estimate_points, t.pr_url,
           t.status = i.report as repeated, i.n, i.report, i.ends, i.frees, i.message,
           w.id as worker_id, w.trust_tier
    from i join w on w.n = i.n join tasks t on t.id = i.task and t.worker_id = w.id
    where t.lease_id = i.lease and t.lease_expires_at >= now()
      and t.status = any(string_to_array(i.from_list, ','))
      -- a claim awaiting approval (migration 18) takes the locking path's exact answer
      and t.approval_lease is distinct from t.lease_id
    order by t.id
    for update of t),
t as (
    update tasks x set
        status = old.report,
        lease_id = case when old.ends then null else x.lease_id end,
        lease_expires_at = case when old.ends then null
            else now() + make_interval(secs => ($9::float8[])[old.trust_tier + 1]) end,
        holds_area_lock = x.holds_area_lock and not old.frees,
        pr_opened_at = case when old.repeated then x.pr_opened_at end,
        retry_at = case when old.repeated then x.retry_at end,
        withheld_from = case when old.repeated then x.withheld_from end,
        withheld_until = case when old.repeated then x.withheld_until end,
        updated_at = now()
    from old
    where x.id = old.id
    returning old.n, old.id, old.worker_id, old.status as from_status, old.repo,
              old.lease_id, old.estimate_points, old.repeated, old.report, old.ends,
              old.message, x.lease_expires_at,
              old.report = 'completed' and old.trust_tier = $11 and old.pr_url is null
                  as uncredited),
l as (
    update leases set last_report = t.report,
        ended_at = case when ended_at is null and t.ends then now() else ended_at end,
        end_reason = case when ended_at is null and t.ends then t.report else end_reason end,
        -- reputation: delivered within estimate_points x OWP_ON_TIME_PER_POINT
        on_time = case when ended_at is null and t.ends and t.report = 'completed'
            then now() - granted_at <= make_interval(secs => $10::float8 * t.estimate_points)
            else on_time end,
        credited = credited and not t.uncredited
    from t
    where leases.id = t.lease_id and not t.repeated),
changed as (
    insert into audit_events (kind, task_id, worker_id, repo, lease_id, from_status, to_status, data, actor)
    select 'task_status_changed', t.id, t.worker_id, t.repo, t.lease_id, t.from_status,
           t.report,
           case when t.message is not null then jsonb_build_object('message', t.message) end,
           'worker:' || t.worker_id
    from t where not t.repeated
    order by t.n)
select i.n as "n!", w.id as "worker_id?", t.from_status as "from_status?",
       t.repeated as "repeated?", t.lease_expires_at as "lease_expires_at?"
from i left join w on w.n = i.n left join t on t.n = i.n
order by i.n
