-- Offers the chosen candidates (locked by this transaction) to the worker, with their offer
-- rows and audit events (I7), in one statement (store::claim::grant). $1 task ids in
-- claim order, $2 their new offer ids, $3 whether each takes its area's lock, $4 worker,
-- $5 how long the offer stays open (s). Inconsistent rows are passed over, and no ORDER BY
-- is used, as in grant_leases.sql.
with chosen as (
    select * from unnest($1::text[], $2::text[], $3::bool[])
        as c(task_id, offer_id, area_lock)),
t as (
    update tasks set status = 'offered', worker_id = $4, offer_id = c.offer_id,
        holds_area_lock = c.area_lock, updated_at = now()
    from chosen c
    -- The generic plan must walk the primary key for these ids: joined to the unnest alone
    -- it hashed every ready task, and a plain `status = 'ready'` let it walk the partial
    -- ready-queue index instead (both milliseconds a poll at 10,000 ready tasks). The
    -- status test is a CASE so that no partial index's predicate matches it.
    where tasks.id = any($1::text[]) and tasks.id = c.task_id
      and case when tasks.status = 'ready' then true else false end
      and not exists (select 1 from offers x where x.task_id = c.task_id and x.ended_at is null)
      and not (c.area_lock and exists (select 1 from tasks a
                                      where a.repo = tasks.repo and a.area = tasks.area and a.holds_area_lock))
    returning tasks.id, tasks.repo, c.offer_id),
o as (
    insert into offers (id, task_id, worker_id, expires_at)
    select offer_id, id, $4, now() + make_interval(secs => $5) from t
    returning id, expires_at),
a as (
    insert into audit_events (kind, task_id, worker_id, repo, from_status, to_status, data, actor)
    select 'task_offered', t.id, $4, t.repo, 'ready', 'offered',
           jsonb_build_object('offer_id', t.offer_id, 'expires_at', o.expires_at), 'worker:' || $4
    from t join o on o.id = t.offer_id)
select id as "task_id!", offer_id as "grant_id!" from t
