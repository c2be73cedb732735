-- Leases the chosen candidates (locked by this transaction) to the worker, with their lease
-- rows and audit events (I7), in one statement that answers with the (task, lease) pairs it
-- granted (store::claim::grant). $1 task ids in
-- claim order, $2 their new lease ids, $3 whether each takes its area's lock, $4 worker,
-- $5 lease TTL (s), $6 whether each lease waits for a maintainer's approval
-- (tasks.approval_lease, migration 18). A row left inconsistent (a live lease on a ready task, an area another
-- task holds) is passed over, never a conflict that fails every poll. The chosen candidates
-- never share an area (claim_candidates), so the area check against other tasks suffices.
-- No ORDER BY: the claim's transaction forbids sorts (select_candidates), and a sort's
-- disabled cost would push the plan past jit_above_cost (a second of JIT per poll).
with chosen as (
    select * from unnest($1::text[], $2::text[], $3::bool[], $6::bool[])
        as c(task_id, lease_id, area_lock, approval)),
t as (
    update tasks set status = 'leased', worker_id = $4, lease_id = c.lease_id,
        lease_expires_at = now() + make_interval(secs => $5),
        holds_area_lock = c.area_lock, updated_at = now(),
        approval_lease = case when c.approval then c.lease_id end,
        retry_at = null, withheld_from = null, withheld_until = null
    from chosen c
    -- The generic plan must walk the primary key for these ids: joined to the unnest alone
    -- it hashed every ready task, and a plain `status = 'ready'` let it walk the partial
    -- ready-queue index instead (both milliseconds a poll at 10,000 ready tasks). The
    -- status test is a CASE so that no partial index's predicate matches it.
    where tasks.id = any($1::text[]) and tasks.id = c.task_id
      and case when tasks.status = 'ready' then true else false end
      and not exists (select 1 from leases x where x.task_id = c.task_id and x.ended_at is null)
      and not (c.area_lock and exists (select 1 from tasks a
                                      where a.repo = tasks.repo and a.area = tasks.area and a.holds_area_lock))
    returning tasks.id as task_id, tasks.attempt, tasks.repo, c.lease_id, c.approval),
l as (
    insert into leases (id, task_id, worker_id, attempt)
    select lease_id, task_id, $4, attempt from t),
a as (
    insert into audit_events (kind, task_id, worker_id, repo, lease_id, from_status, to_status, data, actor)
    select 'lease_granted', task_id, $4, repo, lease_id, 'ready', 'leased',
           case when approval then jsonb_build_object('attempt', attempt, 'awaiting_approval', true)
                else jsonb_build_object('attempt', attempt) end,
           'worker:' || $4
    from t)
-- Only the grants: listing the worker's older leases here too (a union) cost more than the
-- round trip it saved, since the growing tasks table's dead versions are never pruned from
-- the index by this statement's plan (docs/BENCHMARKS.md, the growth runs).
select task_id as "task_id!", lease_id as "lease_id!" from t
