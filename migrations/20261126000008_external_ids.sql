-- A task's key in the system it came from (a GitHub issue, an import file's own id), so
-- that importing the same source twice makes one task: creation with a known
-- (repo, external_id) creates nothing and answers the existing task's id.
alter table tasks add column external_id text
    constraint tasks_external_id_length check (char_length(external_id) between 1 and 200);

-- Partial: tasks without a key (most) cost the index nothing. Every existing row has none,
-- so building it here is a quick scan, not a long write lock.
create unique index tasks_repo_external_id on tasks (repo, external_id)
    where external_id is not null;
