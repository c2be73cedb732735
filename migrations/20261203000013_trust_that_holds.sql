-- Trust that holds (issue 22).
--
-- PR provenance: `pr_key` is what makes two PR links the same pull request
-- (`host/owner/repo#n` for GitHub, else the normalised link; domain::pr_link). At most one
-- task that is not back in the queue or given up holds a PR: a second task naming it is
-- refused (409), and webhooks and sync find the one task by it. Rows from before this
-- migration have no key, so existing duplicates cannot fail it.
alter table tasks add column pr_key text;
create unique index tasks_pr_key_held on tasks (pr_key)
    where pr_key is not null
      and status in ('leased', 'in_progress', 'blocked', 'pr_opened', 'completed', 'merged');

-- Credit: a lease whose delivery the pool cannot vouch for counts for nothing in its
-- worker's reputation (neither attempt nor delivery nor merge): a merge of a PR GitHub
-- says someone else opened, or opened before the lease was granted; a `completed` without
-- a PR link from an untrusted worker. `lease_counts` stays the one definition of what a
-- lease contributes.
alter table leases add column credited boolean not null default true;

create function lease_counts(end_reason text, on_time boolean, last_report text, quality smallint,
                             credited boolean)
returns reputation_counts language sql immutable parallel safe as $$
    select case when credited then lease_counts(end_reason, on_time, last_report, quality)
                else row(0, 0, 0, 0, 0, 0, 0, 0, 0)::reputation_counts end
$$;

create or replace function leases_count_reputation() returns trigger language plpgsql as $$
declare
    n reputation_counts := lease_counts(new.end_reason, new.on_time, new.last_report, new.quality, new.credited);
    o reputation_counts := lease_counts(old.end_reason, old.on_time, old.last_report, old.quality, old.credited);
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

drop trigger leases_count_reputation on leases;
create trigger leases_count_reputation
    after update of end_reason, on_time, last_report, quality, credited on leases
    for each row
    when (old.end_reason is distinct from new.end_reason or old.on_time is distinct from new.on_time
          or old.quality is distinct from new.quality or old.credited is distinct from new.credited
          or (old.last_report is distinct from new.last_report
              and (new.last_report in ('merged', 'closed') or old.last_report in ('merged', 'closed'))))
    execute function leases_count_reputation();

create or replace function leases_keep_pruned_reputation() returns trigger language plpgsql as $$
begin
    insert into worker_reputation_pruned as p (worker_id, attempts, delivered, on_time, failed,
                                               expired, prs_merged, prs_closed, quality_sum, quality_count)
    select g.worker_id, sum((c).attempts), sum((c).delivered), sum((c).on_time), sum((c).failed),
           sum((c).expired), sum((c).prs_merged), sum((c).prs_closed), sum((c).quality_sum),
           sum((c).quality_count)
    from (select worker_id, lease_counts(end_reason, on_time, last_report, quality, credited) as c from gone) g
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

create or replace view worker_reputation_expected as
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
    from (select lease_counts(x.end_reason, x.on_time, x.last_report, x.quality, x.credited) as c
          from leases x where x.worker_id = w.worker_id) s) l on true;

-- Bounded storage per task: artifacts are counted per lease (OWP_MAX_ARTIFACTS_PER_LEASE).
create index artifacts_by_lease on artifacts (lease_id) where lease_id is not null;

-- Per-worker review budget: a repository may cap the open PRs of one worker
-- (null: OWP_MAX_OPEN_PRS_PER_WORKER applies).
alter table repositories add column max_open_prs_per_worker integer
    check (max_open_prs_per_worker between 0 and 10000);
