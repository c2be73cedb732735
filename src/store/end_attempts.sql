-- store::sweeps::end_attempts: ends the live leases of locked tasks as failed attempts.
-- $1 task ids, $2 their new statuses, $3 attempts, $6 / $7 retry backoff in seconds (null:
-- none); $4 the end reason, $5 its own event (null: none). The workers' reputation moves
-- once per worker, in worker order; the row trigger stands aside (migration
-- sweep_counts_reputation).
with input as (
    select * from unnest($1::text[], $2::text[], $3::int[], $6::float8[], $7::float8[])
        as i(id, new_status, new_attempt, retry_in, withheld_for)),
old as (
    select t.id, t.worker_id, t.lease_id, t.status from tasks t join input using (id)),
old_lease as (
    select l.id, l.worker_id,
           lease_counts(l.end_reason, l.on_time, l.last_report, l.quality, l.credited) as c
    from leases l join old o on l.id = o.lease_id where l.ended_at is null),
upd as (
    update tasks t set status = i.new_status, attempt = i.new_attempt,
        worker_id = null, lease_id = null, lease_expires_at = null,
        holds_area_lock = false, updated_at = now(),
        retry_at = now() + make_interval(secs => i.retry_in),
        withheld_from = case when i.retry_in is not null then t.worker_id end,
        withheld_until = now() + make_interval(secs => i.withheld_for)
    from input i
    where t.id = i.id and task_is_live(t.status)
    returning t.id, t.repo, t.status as new_status, t.attempt),
ended as (
    update leases l set ended_at = now(), end_reason = $4
    from old o join upd u using (id)
    where l.id = o.lease_id and l.ended_at is null
    returning l.id, l.worker_id,
              lease_counts(l.end_reason, l.on_time, l.last_report, l.quality, l.credited) as c),
delta as (
    select e.worker_id, sum((e.c).attempts - (b.c).attempts) as attempts,
           sum((e.c).delivered - (b.c).delivered) as delivered,
           sum((e.c).on_time - (b.c).on_time) as on_time,
           sum((e.c).failed - (b.c).failed) as failed,
           sum((e.c).expired - (b.c).expired) as expired,
           sum((e.c).prs_merged - (b.c).prs_merged) as prs_merged,
           sum((e.c).prs_closed - (b.c).prs_closed) as prs_closed,
           sum((e.c).quality_sum - (b.c).quality_sum) as quality_sum,
           sum((e.c).quality_count - (b.c).quality_count) as quality_count
    from ended e join old_lease b using (id)
    group by e.worker_id),
rep as (
    insert into worker_reputation as r (worker_id, attempts, delivered, on_time, failed,
                                        expired, prs_merged, prs_closed, quality_sum, quality_count)
    select worker_id, attempts, delivered, on_time, failed, expired, prs_merged,
           prs_closed, quality_sum, quality_count
    from delta
    where (attempts, delivered, on_time, failed, expired, prs_merged, prs_closed,
           quality_sum, quality_count) is distinct from (0, 0, 0, 0, 0, 0, 0, 0, 0)
    order by worker_id
    on conflict (worker_id) do update set
        attempts = r.attempts + excluded.attempts, delivered = r.delivered + excluded.delivered,
        on_time = r.on_time + excluded.on_time, failed = r.failed + excluded.failed,
        expired = r.expired + excluded.expired, prs_merged = r.prs_merged + excluded.prs_merged,
        prs_closed = r.prs_closed + excluded.prs_closed,
        quality_sum = r.quality_sum + excluded.quality_sum,
        quality_count = r.quality_count + excluded.quality_count),
ev_ended as (
    insert into audit_events (kind, task_id, worker_id, repo, lease_id, from_status, to_status, reason, data, actor)
    select $5, u.id, o.worker_id, u.repo, o.lease_id, o.status, u.new_status, $4,
           jsonb_build_object('attempt', u.attempt), 'system'
    from upd u join old o using (id) where $5::text is not null),
ev_next as (
    insert into audit_events (kind, task_id, worker_id, repo, lease_id, from_status, to_status, reason, data, actor)
    select case when u.new_status = 'ready' then 'task_requeued' else 'task_failed' end,
           u.id, o.worker_id, u.repo, o.lease_id, o.status, u.new_status, $4,
           jsonb_build_object('attempt', u.attempt), 'system'
    from upd u join old o using (id))
select count(*) as "leases!",
       count(*) filter (where new_status = 'ready') as "requeued!",
       count(*) filter (where new_status = 'failed') as "failed!"
from upd
