-- The invariant checker: one row per violation, (label, offending row). Run inside a
-- repeatable-read, read-only transaction, so every check sees one committed state.
-- Each label names the invariant of docs/invariants.md it checks. The I7 checks ask for complete
-- history only after the retention horizon (scheduler_state.pruned_before): older events
-- may have been pruned (OWP_RETENTION).
select 'I1 task with more than one live lease' as label, item from (
  select task_id as item from leases where ended_at is null group by task_id having count(*) > 1
) v
union all
select 'I1 live task whose lease row is missing, ended or someone else''s' as label, item from (
  select t.id as item from tasks t left join leases l on l.id = t.lease_id
  where task_is_live(t.status)
  and (l.id is null or l.ended_at is not null or l.worker_id <> t.worker_id or l.task_id <> t.id)
) v
union all
select 'I1 live lease row on a task that is not held under it' as label, item from (
  select l.id as item from leases l join tasks t on t.id = l.task_id
  where l.ended_at is null and t.lease_id is distinct from l.id
) v
union all
select 'I1 offered task whose offer row is missing, ended or someone else''s' as label, item from (
  select t.id as item from tasks t left join offers o on o.id = t.offer_id
  where t.status = 'offered'
  and (o.id is null or o.ended_at is not null or o.worker_id <> t.worker_id or o.task_id <> t.id)
) v
union all
select 'I1 open offer on a task that is not reserved under it' as label, item from (
  select o.id as item from offers o join tasks t on t.id = o.task_id
  where o.ended_at is null and t.offer_id is distinct from o.id
) v
union all
select 'I2 worker over its capacity' as label, item from (
  select w.id || ' (' || sum(t.estimate_points) || '/' || w.capacity_points || ' points, '
  || count(*) || '/' || w.max_concurrent_tasks || ' leases)' as item
  from workers w join tasks t on t.worker_id = w.id and task_holds_capacity(t.status)
  group by w.id
  having sum(t.estimate_points) > w.capacity_points or count(*) > w.max_concurrent_tasks
) v
union all
select 'I3 lease granted without the required skills' as label, item from (
  select l.id as item from leases l join tasks t on t.id = l.task_id join workers w on w.id = l.worker_id
  where not (t.required_skills <@ w.skills)
) v
union all
select 'I4 repo over its review budget' as label, item from (
  select r.repo || ' (' || count(t.id) || '/' || r.max_open_prs || ')' as item
  from repositories r join tasks t on t.repo = r.repo
  and task_is_open(t.status)
  group by r.repo having count(t.id) > r.max_open_prs
) v
union all
select 'I4 repo whose kept open-task count differs from its open tasks' as label, item from (
  select r.repo || ' (kept ' || (coalesce(c.open, 0) + coalesce(d.delta, 0)) || ', open ' || coalesce(o.n, 0) || ')' as item
  from repositories r
  left join repo_open_counts c on c.repo = r.repo
  left join (select repo, sum(delta) as delta from repo_open_changes group by repo) d on d.repo = r.repo
  left join (select repo, count(*) as n from tasks where task_is_open(status) group by repo) o on o.repo = r.repo
  where coalesce(c.open, 0) + coalesce(d.delta, 0) <> coalesce(o.n, 0)
) v
union all
select 'I5 area with more than one open task' as label, item from (
  select t.repo || ':' || t.area as item from tasks t join repositories r on r.repo = t.repo
  where r.area_locks_enabled and t.area is not null
  and task_is_open(t.status)
  group by t.repo, t.area having count(*) > 1
) v
union all
select 'I7 task or lease without exactly one event that created it' as label, item from (
  select e.id as item
  from (select id, 'task_created' as kind, created_at as at from tasks
        union all select id, 'lease_granted', granted_at from leases) e
  join scheduler_state h on e.at >= coalesce(h.pruned_before, '-infinity')
  left join audit_events a on a.kind = e.kind
       and e.id = case a.kind when 'lease_granted' then a.lease_id else a.task_id end
  group by e.id having count(a.id) <> 1
) v
union all
select 'I7 ended lease without exactly one event that ended it' as label, item from (
  select l.id as item from leases l
  join scheduler_state h on l.ended_at >= coalesce(h.pruned_before, '-infinity')
  left join audit_events a on a.lease_id = l.id and (
  (a.kind = 'task_status_changed' and a.to_status = l.end_reason)
  or (a.kind = 'lease_expired' and l.end_reason = 'lease_expired')
  or (a.kind in ('task_requeued', 'task_failed') and a.reason = 'worker_offline'
  and l.end_reason = 'worker_offline')
  or (a.kind = 'task_requeued' and a.reason in ('admin', 'claim_denied') and l.end_reason = 'requeued')
  or (a.kind = 'task_requeued' and a.reason = 'worker_revoked' and l.end_reason = 'worker_revoked')
  or (a.kind = 'task_cancelled' and l.end_reason = 'cancelled'))
  where l.ended_at is not null
  group by l.id having count(a.id) <> 1
) v
union all
select 'I7 requeue without its task_requeued event' as label, item from (
  -- attempt = failed-attempt requeues since the last admin requeue, plus the attempt that
  -- requeue set (0 when there was none)
  select t.id || ' (' || t.attempt || ' failed attempts, ' || count(a.id) || ' requeues)' as item
  from tasks t
  join scheduler_state h on t.created_at >= coalesce(h.pruned_before, '-infinity')
  left join lateral (
    select r.id, (r.data->>'attempt')::int as base from audit_events r
    where r.target = t.id and r.kind = 'task_requeued' and r.reason = 'admin'
    order by r.id desc limit 1) reset on true
  left join audit_events a on a.target = t.id and a.kind = 'task_requeued'
  and a.reason in ('failed', 'closed', 'lease_expired', 'worker_offline')
  and a.id > coalesce(reset.id, 0)
  -- a failed task's last attempt, and a cancelled one's, never came back to the queue
  where t.status <> 'failed' and t.status <> 'cancelled'
  group by t.id, reset.base having count(a.id) + coalesce(reset.base, 0) <> t.attempt
) v
union all
select 'I7 worker whose online flag disagrees with its last online/offline event' as label, item from (
  select w.id as item
  from workers w
  left join (select distinct on (worker_id) worker_id, kind from audit_events
             where kind in ('worker_online', 'worker_offline')
             order by worker_id, id desc) last on last.worker_id = w.id
  cross join scheduler_state h
  where (w.online and last.kind = 'worker_offline')
     or (not w.online and last.kind is distinct from 'worker_offline'
         -- its events may all be older than the horizon, and pruned
         and (last.kind is not null or h.pruned_before is null or w.created_at >= h.pruned_before))
) v
union all
select 'I7 reputation counters that disagree with the lease history' as label, item from (
  select e.worker_id || ' (history: ' || e.attempts || ' attempts, ' || e.prs_merged || ' merged; counters: '
         || coalesce(r.attempts, 0) || ', ' || coalesce(r.prs_merged, 0) || ')' as item
  from worker_reputation_expected e
  left join worker_reputation r using (worker_id)
  where (e.attempts, e.delivered, e.on_time, e.failed, e.expired, e.prs_merged, e.prs_closed,
         e.quality_sum, e.quality_count)
        is distinct from (coalesce(r.attempts, 0), coalesce(r.delivered, 0), coalesce(r.on_time, 0),
         coalesce(r.failed, 0), coalesce(r.expired, 0), coalesce(r.prs_merged, 0),
         coalesce(r.prs_closed, 0), coalesce(r.quality_sum, 0), coalesce(r.quality_count, 0))
) v
union all
select 'I9 reserved task leased to another worker before its reservation ended' as label, item from (
  select l.id as item from leases l join tasks t on t.id = l.task_id
  where t.reserved_for is not null and l.worker_id <> t.reserved_for and l.granted_at < t.reserved_until
) v
union all
select 'I9 task leased before its not_before' as label, item from (
  select l.id as item from leases l join tasks t on t.id = l.task_id
  where t.not_before is not null and l.granted_at < t.not_before
) v
union all
select 'I9 task leased before a dependency was merged or completed' as label, item from (
  select l.id || ' (' || d.id || ')' as item
  from leases l join tasks t on t.id = l.task_id
  join tasks d on d.id = any(t.depends_on)
  join scheduler_state h on l.granted_at >= coalesce(h.pruned_before, '-infinity')
  where not exists (
    select 1 from audit_events a where a.task_id = d.id and a.kind = 'task_status_changed'
      and task_is_delivered(a.to_status) and a.at <= l.granted_at)
) v
union all
select 'I9 a task waits on itself through its dependencies' as label, item from (
  with recursive edge(id, dep) as (
      select id, unnest(depends_on) from tasks where depends_on <> '{}'),
  walk(start, cur) as (
      select id, dep from edge
      union
      select w.start, e.dep from walk w join edge e on e.id = w.cur)
  select distinct start as item from walk where start = cur
) v
union all
select 'I10 a claim awaiting approval is past leased' as label, item from (
  select id as item from tasks where approval_lease = lease_id and status <> 'leased'
) v
union all
select 'I10 work reported under a claim before its approval' as label, item from (
  -- from each claim that waited, along its task's trail (audit_events_by_target): a join
  -- of the two kinds compares every report with every grant (minutes at 20,000 tasks)
  select c.lease_id || ' (' || c.to_status || ')' as item
  from audit_events g
  cross join lateral (
    select c.id, c.lease_id, c.to_status from audit_events c
    where c.target = g.target and c.lease_id = g.lease_id and c.kind = 'task_status_changed'
      and c.actor like 'worker:%' and c.to_status <> 'released'
    -- a fence: flattened, the planner drives from the reports when statistics are stale
    offset 0) c
  where g.kind = 'lease_granted' and g.data ? 'awaiting_approval'
    and not exists (select 1 from audit_events a where a.target = g.target
                    and a.lease_id = g.lease_id and a.kind = 'claim_approved' and a.id < c.id)
) v
