-- A status report the transition table applies (store::tasks::report::apply): the task,
-- its lease and the audit events, in one statement (I7). $1 task, $2 its status now,
-- $3 the new status, $4 attempt, $5 ends the lease, $6 frees the slot and area, $7 lease
-- TTL (s), $8 PR link, $9 the report, $10 worker, $11 repo, $12 lease, $13 message,
-- $14 requeue reason, $15/$16 retry backoff for everyone / the same worker (s),
-- $17 audit actor, $18 on-time limit (s), $19 quality, $20 PR key, $21 uncredited.
with t as (
    update tasks set
        status = $3, attempt = $4,
        worker_id = case when $3 = 'ready' then null else worker_id end,
        lease_id = case when $5 then null else lease_id end,
        lease_expires_at = case when $5 then null else now() + make_interval(secs => $7) end,
        holds_area_lock = holds_area_lock and not $6,
        pr_url = coalesce($8, pr_url),
        pr_key = coalesce($20, pr_key),
        pr_opened_at = case when $3 = 'pr_opened' then coalesce(pr_opened_at, now()) end,
        -- retry backoff: withheld_from is the holder before this update
        retry_at = now() + make_interval(secs => $15),
        withheld_from = case when $15::float8 is not null then worker_id end,
        withheld_until = now() + make_interval(secs => $16),
        updated_at = now()
    where id = $1 and status = $2
    returning lease_expires_at),
l as (
    update leases set last_report = $9,
        ended_at = case when ended_at is null and $5 then now() else ended_at end,
        end_reason = case when ended_at is null and $5 then $9 else end_reason end,
        -- reputation: delivered within estimate_points x OWP_ON_TIME_PER_POINT
        on_time = case when ended_at is null and $5 and $9 in ('completed', 'pr_opened')
            then now() - granted_at <= make_interval(secs => $18)
            else on_time end,
        quality = coalesce($19, quality),
        credited = credited and not $21,
        -- repository analytics: review wait ends here
        pr_decided_at = case when $9 in ('merged', 'closed') then now() else pr_decided_at end
    -- the task's current lease by its id; after pr_opened (no current lease) the
    -- newest one, which opened the PR (leases_by_task_worker's prefix)
    where id = coalesce($12, (select id from leases where task_id = $1 order by seq desc limit 1))
      and exists (select 1 from t)),
changed as (
    insert into audit_events (kind, task_id, worker_id, repo, lease_id, from_status, to_status, data, actor)
    select 'task_status_changed', $1, $10, $11, $12, $2, $9, $13, $17 from t),
requeued as (
    insert into audit_events (kind, task_id, worker_id, repo, lease_id, from_status, to_status, reason, data, actor)
    select 'task_requeued', $1, $10, $11, $12, $2, 'ready', $14, jsonb_build_object('attempt', $4::int), $17
    from t where $14::text is not null)
select lease_expires_at from t
