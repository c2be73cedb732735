-- Offers (PRD section 10): instead of claiming, a worker may ask for offers. An offered task
-- is reserved for that worker (status `offered`) until it accepts (a lease), rejects (back to
-- `ready`, never offered to it again) or the offer expires (back to `ready`). While
-- offered, the task holds what a lease would: the worker's capacity, the repo's review
-- slot and its area lock, so I1-I5 count it.

alter table tasks drop constraint tasks_status_check;
alter table tasks add constraint tasks_status_check
    check (status in ('ready', 'offered', 'leased', 'in_progress', 'blocked', 'pr_opened',
                      'completed', 'merged', 'failed', 'cancelled'));

-- the open offer of an offered task, and nothing else has one
alter table tasks add column offer_id text;
alter table tasks add constraint tasks_offer check ((status = 'offered') = (offer_id is not null));

alter table tasks drop constraint tasks_holder;
alter table tasks add constraint tasks_holder check (
    status not in ('offered', 'leased', 'in_progress', 'blocked', 'pr_opened') or worker_id is not null);
alter table tasks drop constraint tasks_area_lock_open;
alter table tasks add constraint tasks_area_lock_open check (
    not holds_area_lock
    or (area is not null and status in ('offered', 'leased', 'in_progress', 'blocked', 'pr_opened')));

-- a worker's used capacity (I2) and a repo's open slots (I4) count offered tasks
drop index tasks_live_by_worker;
create index tasks_held_by_worker on tasks (worker_id)
    where status in ('offered', 'leased', 'in_progress', 'blocked');
drop index tasks_open_by_repo;
create index tasks_open_by_repo on tasks (repo)
    where status in ('offered', 'leased', 'in_progress', 'blocked', 'pr_opened');

create table offers (
    id         text primary key,
    task_id    text not null references tasks (id),
    worker_id  text not null references workers (id),
    created_at timestamptz not null default now(),
    expires_at timestamptz not null,
    ended_at   timestamptz,
    -- accepted, rejected, expired; withdrawn when an admin requeues or cancels the task or
    -- revokes the worker
    outcome    text check (outcome in ('accepted', 'rejected', 'expired', 'withdrawn')),
    -- why the worker rejected it
    reason     text check (reason is null or char_length(reason) between 1 and 100),
    -- the lease an accepted offer became
    lease_id   text,
    constraint offers_end check ((ended_at is null) = (outcome is null)),
    constraint offers_reason check ((outcome = 'rejected') = (reason is not null))
);
-- at most one open offer per task (I1 for reservations)
create unique index offers_one_open_per_task on offers (task_id) where ended_at is null;
-- the expiry duty
create index offers_open_by_expiry on offers (expires_at) where ended_at is null;
-- "did this worker reject this task?" and a task's rejections
create index offers_by_task on offers (task_id, worker_id);
-- retention finds old offers cheaply (see 0003)
create index offers_created_brin on offers using brin (created_at);
