-- One definition of each rule that SQL needs from the domain (issue 23).
--
-- Status classes: each function mirrors one method of `domain::status::TaskStatus` and
-- every statement in src/store/ says the class by name instead of spelling a list out;
-- tests/api/status_classes.rs checks every status against the domain. Single-expression
-- IMMUTABLE SQL functions are inlined by the planner, so `task_is_live(status)` in a
-- query still matches the partial indexes whose predicates (earlier migrations, which are
-- never edited) spell the same list out.
--
-- `task_is_open` (migration 0012) is `TaskStatus::is_open`: holds a review slot and the
-- area lock.

-- `TaskStatus::is_live`: held under a live lease.
create function task_is_live(status text) returns boolean
    language sql immutable parallel safe
    return status in ('leased', 'in_progress', 'blocked');

-- `TaskStatus::holds_capacity`: counts against the holder's capacity (a live lease, or an
-- offer that reserves the task for it).
create function task_holds_capacity(status text) returns boolean
    language sql immutable parallel safe
    return status in ('offered', 'leased', 'in_progress', 'blocked');

-- `TaskStatus::is_terminal`: nothing moves it any more.
create function task_is_terminal(status text) returns boolean
    language sql immutable parallel safe
    return status in ('completed', 'merged', 'failed', 'cancelled');

-- `TaskStatus::has_outcome`: ended by work (completed, merged, or failed for good), not
-- withdrawn by an admin.
create function task_has_outcome(status text) returns boolean
    language sql immutable parallel safe
    return status in ('completed', 'merged', 'failed');

-- `TaskStatus::is_delivered`: the work was delivered (the reputation's deliveries).
create function task_is_delivered(status text) returns boolean
    language sql immutable parallel safe
    return status in ('completed', 'merged');

-- `TaskStatus::holds_pr`: holds the PR link it reported (not back in the queue, not given
-- up); at most one such task per PR (`tasks_pr_key_held`).
create function task_holds_pr(status text) returns boolean
    language sql immutable parallel safe
    return status in ('leased', 'in_progress', 'blocked', 'pr_opened', 'completed', 'merged');

-- `domain::github_writeback::Event`: the statuses written back to an imported issue.
create function github_writeback_event(status text) returns boolean
    language sql immutable parallel safe
    return status in ('leased', 'pr_opened', 'merged', 'failed');

-- `domain::github_issue::parse_external_id`: `github:owner/repo#42` -> {owner/repo, 42};
-- null for anything else. At most 18 digits: the number must fit the outbox's bigint.
create function github_issue_key(external_id text) returns text[]
    language sql immutable parallel safe
    return regexp_match(external_id, '^github:([^/#]+/[^/#]+)#([0-9]{1,18})$');

-- The write-back trigger says its rules by name. It no longer copies the worker's GitHub
-- handle into the outbox: nothing read it (a comment names no worker).
create or replace function github_outbox_enqueue() returns trigger language plpgsql as $$
declare
    key text[];
begin
    if not exists (select 1 from repositories where repo = new.repo and github_write_back) then
        return null;
    end if;
    key := github_issue_key(new.external_id);
    if key is null then
        return null;
    end if;
    insert into github_outbox (task_id, gh_repo, issue_number, event, pr_url, attempt)
    select new.id, key[1], key[2]::bigint, new.status, new.pr_url, new.attempt;
    return null;
end $$;

drop trigger tasks_github_outbox on tasks;
create trigger tasks_github_outbox
    after update of status on tasks
    for each row
    when (new.status is distinct from old.status
          and github_writeback_event(new.status)
          and new.external_id like 'github:%')
    execute function github_outbox_enqueue();

alter table github_outbox drop column worker_handle;
