-- GitHub closes the loop: webhook deliveries already handled (a redelivery is a no-op),
-- repos that write their tasks' progress back to GitHub, and the transactional outbox
-- of that write-back.

alter table repositories add column github_write_back boolean not null default false;

create table github_deliveries (
    delivery_id text primary key check (char_length(delivery_id) between 1 and 200),
    event       text not null,
    outcome     text not null,
    received_at timestamptz not null default now()
);
-- retention prunes by age
create index github_deliveries_received on github_deliveries (received_at);

-- One row per written-back task event (leased, pr_opened, merged, failed), inserted by
-- the trigger below in the transaction of the change itself, whatever path made it. The
-- leader's duty delivers it as a few GitHub calls (`steps_done` counts those GitHub
-- accepted), retrying with backoff, and gives up after a bound (`gave_up_at`).
create table github_outbox (
    id              bigserial primary key,
    task_id         text not null,
    gh_repo         text not null,
    issue_number    bigint not null,
    event           text not null check (event in ('leased', 'pr_opened', 'merged', 'failed')),
    pr_url          text,
    worker_handle   text,
    attempt         integer not null,
    created_at      timestamptz not null default now(),
    steps_done      integer not null default 0,
    attempts        integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    claimed_until   timestamptz,
    -- the last try of a comment had no clear answer: look for it before posting again
    uncertain       boolean not null default false,
    delivered_at    timestamptz,
    gave_up_at      timestamptz,
    last_error      text
);
create index github_outbox_pending on github_outbox (gh_repo, issue_number, id)
    where delivered_at is null and gave_up_at is null;
create index github_outbox_task on github_outbox (task_id);

create function github_outbox_enqueue() returns trigger language plpgsql as $$
declare
    key text[];
begin
    if not exists (select 1 from repositories where repo = new.repo and github_write_back) then
        return null;
    end if;
    key := regexp_match(new.external_id, '^github:([^/#]+/[^/#]+)#([0-9]+)$');
    if key is null then
        return null;
    end if;
    insert into github_outbox (task_id, gh_repo, issue_number, event, pr_url, worker_handle, attempt)
    select new.id, key[1], key[2]::bigint, new.status, new.pr_url,
           (select github_handle from workers where id = new.worker_id), new.attempt;
    return null;
end $$;

-- Narrow on purpose: only tasks imported from GitHub, only the statuses written back.
create trigger tasks_github_outbox
    after update of status on tasks
    for each row
    when (new.status is distinct from old.status
          and new.status in ('leased', 'pr_opened', 'merged', 'failed')
          and new.external_id like 'github:%')
    execute function github_outbox_enqueue();

-- webhooks find a task by its PR's link
create index tasks_pr_url on tasks (pr_url) where pr_url is not null;
