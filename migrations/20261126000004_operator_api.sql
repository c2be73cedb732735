-- The operator's control surface: who did what (audit actors), cancelled tasks, admin
-- pause and revocation of workers, and the indexes the list endpoints walk.

-- `cancelled`: a terminal status an admin sets from any non-terminal status.
alter table tasks drop constraint tasks_status_check;
alter table tasks add constraint tasks_status_check
    check (status in ('ready', 'leased', 'in_progress', 'blocked', 'pr_opened',
                      'completed', 'merged', 'failed', 'cancelled'));

-- Who made the change: `admin:<name>` (or `admin`), `worker:<id>`, `system`, `github`.
-- `target`: what it is about (the task, else the worker, else the repo).
alter table audit_events
    add column actor text,
    add column target text generated always as (coalesce(task_id, worker_id, repo)) stored;
update audit_events set actor = case
    when kind in ('lease_expired', 'worker_offline') or reason in ('lease_expired', 'worker_offline') then 'system'
    when worker_id is not null and kind not in ('task_created') then 'worker:' || worker_id
    else 'admin' end;
-- the audit list, newest first, by each filter; (target, id) also serves a task's trail
drop index audit_events_by_task;
create index audit_events_by_target on audit_events (target, id);
create index audit_events_by_kind on audit_events (kind, id);
create index audit_events_by_actor on audit_events (actor, id);

-- An admin's pause is not the worker's own `paused` heartbeat status: the worker cannot
-- lift it. A revoked worker's token stops working at once, on every replica (it is
-- checked on every authentication), and the worker never works again.
alter table workers
    add column paused_by_admin boolean not null default false,
    add column revoked_at timestamptz;

-- The task list in id order (ids are time-ordered), by each filter.
create index tasks_by_status on tasks (status, id);
create index tasks_by_repo on tasks (repo, id);
create index tasks_by_worker on tasks (worker_id, id) where worker_id is not null;
create index workers_by_status on workers (status, id);
