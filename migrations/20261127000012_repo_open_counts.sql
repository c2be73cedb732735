-- Open tasks per repo, kept as they change (issue 12, P5).
--
-- Each poll asks which repos have a free review slot, to keep full repos' tasks from
-- crowding its candidates. Counting every repo's open tasks on every poll cost a poll time
-- in proportion to all the open tasks of the pool: at 100,000 live leases, 100,000 index
-- entries per poll. The count is now a base per repo plus the changes since it was last
-- folded in: triggers on tasks append a signed row when a task starts or stops being open,
-- and a background job (store::open_counts::compact, every second on each replica) folds the
-- changes into the base. Appending never waits for a row lock, so a claim, a report and a
-- sweep that change the same repos cannot deadlock over the counts, whatever their order.
-- In any snapshot, base + changes equals the count of open tasks (the invariant checker
-- compares them). The claim still counts a locked repo's open tasks itself (I4); this count
-- only chooses which repos to look at.
create function task_is_open(status text) returns boolean
    language sql immutable parallel safe
    return status in ('offered', 'leased', 'in_progress', 'blocked', 'pr_opened');

create table repo_open_counts (
    repo text primary key,
    open integer not null
);

-- No index: read whole (it holds about a second of changes) and emptied every second;
-- vacuumed often, so its dead rows do not pile up between autovacuum's usual rounds.
create table repo_open_changes (
    repo  text not null,
    delta integer not null
) with (autovacuum_vacuum_threshold = 500, autovacuum_vacuum_scale_factor = 0);

-- Row triggers that fire only when a task starts or stops being open (a claim, an end, a
-- requeue; not a progress report or a renewal), so the rest of a lifecycle pays nothing.
create function tasks_open_change() returns trigger language plpgsql as $$
begin
    if tg_op <> 'INSERT' then
        if task_is_open(old.status) then
            insert into repo_open_changes (repo, delta) values (old.repo, -1);
        end if;
    end if;
    if tg_op <> 'DELETE' then
        if task_is_open(new.status) then
            insert into repo_open_changes (repo, delta) values (new.repo, 1);
        end if;
    end if;
    return null;
end $$;

create trigger tasks_open_change_insert after insert on tasks
    for each row when (task_is_open(new.status))
    execute function tasks_open_change();
create trigger tasks_open_change_update after update of status, repo on tasks
    for each row when (task_is_open(old.status) <> task_is_open(new.status) or old.repo <> new.repo)
    execute function tasks_open_change();
create trigger tasks_open_change_delete after delete on tasks
    for each row when (task_is_open(old.status))
    execute function tasks_open_change();

insert into repo_open_counts (repo, open)
select repo, count(*) from tasks where task_is_open(status) group by repo;
