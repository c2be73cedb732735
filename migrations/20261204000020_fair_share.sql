-- Fair share between repositories (issue 27): each repository's weight, and a ready queue
-- per repository, so a claim walks the most under-served repository's ready tasks in
-- priority order (store/claim/candidates.rs) instead of one global priority order that let
-- one repository's high-priority backlog starve the others. It replaces the global queue:
-- one index per ready task either way.

alter table repositories add column fair_share integer not null default 1
    check (fair_share between 1 and 1000);

create index tasks_ready_by_repo on tasks (repo, priority desc, created_at, id)
    where status = 'ready';
drop index tasks_ready_queue;
