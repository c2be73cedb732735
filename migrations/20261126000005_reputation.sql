-- Reputation: per-worker counters of what its attempts came to, kept by triggers on
-- `leases` in the same transaction as the change, so every path that ends a lease (a
-- report, a sweep, an admin) counts, and reading a score is one row, never a scan.
-- `lease_counts` is the one definition of what a lease contributes: the triggers add its
-- change, the leader's reconciliation recounts with it (docs/PROTOCOL.md "Reputation").

-- Set when the lease delivers: within estimate_points x OWP_ON_TIME_PER_POINT of its grant.
alter table leases add column on_time boolean;
-- An admin's rating of the merged PR (1-5), on the lease that opened it.
alter table leases add column quality smallint check (quality between 1 and 5);
-- A worker's leases (reconciliation, per worker).
create index leases_by_worker on leases (worker_id);

-- A task is claimable only by workers whose score is at least this.
alter table tasks add column min_reputation smallint not null default 0
    check (min_reputation between 0 and 100);

-- An admin set this worker's tier: automatic promotion leaves it alone.
alter table workers add column trust_tier_manual boolean not null default false;

create type reputation_counts as (
    attempts      integer, -- delivered + failed + expired
    delivered     integer, -- ended by completed or pr_opened
    on_time       integer, -- delivered within the estimate
    failed        integer, -- ended by failed
    expired       integer, -- ended by lease_expired or worker_offline
    prs_merged    integer,
    prs_closed    integer,
    quality_sum   integer,
    quality_count integer);

create function lease_counts(end_reason text, on_time boolean, last_report text, quality smallint)
returns reputation_counts language sql immutable parallel safe as $$
    select row(
        coalesce(end_reason in ('completed', 'pr_opened', 'failed', 'lease_expired', 'worker_offline'), false)::int,
        coalesce(end_reason in ('completed', 'pr_opened'), false)::int,
        coalesce(end_reason in ('completed', 'pr_opened') and on_time, false)::int,
        coalesce(end_reason = 'failed', false)::int,
        coalesce(end_reason in ('lease_expired', 'worker_offline'), false)::int,
        coalesce(last_report = 'merged', false)::int,
        coalesce(last_report = 'closed', false)::int,
        coalesce(quality, 0)::int,
        (quality is not null)::int)::reputation_counts
$$;

create table worker_reputation (
    worker_id     text primary key references workers (id),
    attempts      integer not null default 0,
    delivered     integer not null default 0,
    on_time       integer not null default 0,
    failed        integer not null default 0,
    expired       integer not null default 0,
    prs_merged    integer not null default 0,
    prs_closed    integer not null default 0,
    quality_sum   integer not null default 0,
    quality_count integer not null default 0);

-- What leases that retention deleted had contributed: reconciliation counts these plus
-- the leases still there.
create table worker_reputation_pruned (like worker_reputation including defaults,
    primary key (worker_id));

-- Static SQL only (plpgsql caches its plans): this runs in the transaction of every lease
-- end, on the lifecycle's hot path.
create function leases_count_reputation() returns trigger language plpgsql as $$
declare
    n reputation_counts := lease_counts(new.end_reason, new.on_time, new.last_report, new.quality);
    o reputation_counts := lease_counts(old.end_reason, old.on_time, old.last_report, old.quality);
begin
    if n is distinct from o then
        insert into worker_reputation as r (worker_id, attempts, delivered, on_time, failed, expired,
                                            prs_merged, prs_closed, quality_sum, quality_count)
        values (new.worker_id, n.attempts - o.attempts, n.delivered - o.delivered,
                n.on_time - o.on_time, n.failed - o.failed, n.expired - o.expired,
                n.prs_merged - o.prs_merged, n.prs_closed - o.prs_closed,
                n.quality_sum - o.quality_sum, n.quality_count - o.quality_count)
        on conflict (worker_id) do update set
            attempts = r.attempts + excluded.attempts, delivered = r.delivered + excluded.delivered,
            on_time = r.on_time + excluded.on_time, failed = r.failed + excluded.failed,
            expired = r.expired + excluded.expired, prs_merged = r.prs_merged + excluded.prs_merged,
            prs_closed = r.prs_closed + excluded.prs_closed,
            quality_sum = r.quality_sum + excluded.quality_sum,
            quality_count = r.quality_count + excluded.quality_count;
    end if;
    return null;
end $$;

-- Fires only when a counted fact changes: the lease ends, is rated, or its PR is decided
-- (not on every progress report, which also sets last_report).
create trigger leases_count_reputation
    after update of end_reason, on_time, last_report, quality on leases
    for each row
    when (old.end_reason is distinct from new.end_reason or old.on_time is distinct from new.on_time
          or old.quality is distinct from new.quality
          or (old.last_report is distinct from new.last_report
              and (new.last_report in ('merged', 'closed') or old.last_report in ('merged', 'closed'))))
    execute function leases_count_reputation();

-- Retention deletes leases in batches: one statement-level trigger keeps what they counted.
create function leases_keep_pruned_reputation() returns trigger language plpgsql as $$
begin
    insert into worker_reputation_pruned as p (worker_id, attempts, delivered, on_time, failed,
                                               expired, prs_merged, prs_closed, quality_sum, quality_count)
    select g.worker_id, sum((c).attempts), sum((c).delivered), sum((c).on_time), sum((c).failed),
           sum((c).expired), sum((c).prs_merged), sum((c).prs_closed), sum((c).quality_sum),
           sum((c).quality_count)
    from (select worker_id, lease_counts(end_reason, on_time, last_report, quality) as c from gone) g
    group by g.worker_id
    order by g.worker_id
    on conflict (worker_id) do update set
        attempts = p.attempts + excluded.attempts, delivered = p.delivered + excluded.delivered,
        on_time = p.on_time + excluded.on_time, failed = p.failed + excluded.failed,
        expired = p.expired + excluded.expired, prs_merged = p.prs_merged + excluded.prs_merged,
        prs_closed = p.prs_closed + excluded.prs_closed,
        quality_sum = p.quality_sum + excluded.quality_sum,
        quality_count = p.quality_count + excluded.quality_count;
    return null;
end $$;

create trigger leases_keep_pruned_reputation
    after delete on leases
    referencing old table as gone
    for each statement
    execute function leases_keep_pruned_reputation();

-- What the history says each worker's counters are: the leases still kept plus the pruned
-- share. The counters must equal this; the leader's reconciliation checks and repairs.
create view worker_reputation_expected as
select w.worker_id,
       coalesce(p.attempts, 0) + coalesce(l.attempts, 0) as attempts,
       coalesce(p.delivered, 0) + coalesce(l.delivered, 0) as delivered,
       coalesce(p.on_time, 0) + coalesce(l.on_time, 0) as on_time,
       coalesce(p.failed, 0) + coalesce(l.failed, 0) as failed,
       coalesce(p.expired, 0) + coalesce(l.expired, 0) as expired,
       coalesce(p.prs_merged, 0) + coalesce(l.prs_merged, 0) as prs_merged,
       coalesce(p.prs_closed, 0) + coalesce(l.prs_closed, 0) as prs_closed,
       coalesce(p.quality_sum, 0) + coalesce(l.quality_sum, 0) as quality_sum,
       coalesce(p.quality_count, 0) + coalesce(l.quality_count, 0) as quality_count
from (select id as worker_id from workers) w
left join worker_reputation_pruned p using (worker_id)
left join lateral (
    select sum((c).attempts)::int as attempts, sum((c).delivered)::int as delivered,
           sum((c).on_time)::int as on_time, sum((c).failed)::int as failed,
           sum((c).expired)::int as expired, sum((c).prs_merged)::int as prs_merged,
           sum((c).prs_closed)::int as prs_closed, sum((c).quality_sum)::int as quality_sum,
           sum((c).quality_count)::int as quality_count
    from (select lease_counts(x.end_reason, x.on_time, x.last_report, x.quality) as c
          from leases x where x.worker_id = w.worker_id) s) l on true;

-- Existing history counts from the start.
insert into worker_reputation
select * from worker_reputation_expected e
where e.attempts > 0 or e.prs_merged > 0 or e.prs_closed > 0;
