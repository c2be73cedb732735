-- A pool that speaks up: notification channels (a signed generic webhook, Slack- and
-- Discord-compatible incoming webhooks) and the transactional outbox of what they are
-- told. Events are written in the transaction of the change itself (triggers below, or
-- the leader's scans for what only time makes true), one row per channel that asked for
-- the event; the leader delivers them, retrying with backoff, and gives up after a bound
-- (`gave_up_at`, shown by GET /v1/admin/notifications/deliveries?state=failed).

create table notification_channels (
    id         text primary key,
    name       text not null unique check (char_length(name) between 1 and 100),
    kind       text not null check (kind in ('webhook', 'slack', 'discord')),
    url        text not null check (char_length(url) between 1 and 2000),
    -- signs every delivery (X-OWP-Signature); shown once, when the channel is made
    secret     text not null,
    events     text[] not null,
    -- null: every repository (and the pool-wide events)
    repo       text references repositories (repo) on delete cascade,
    created_by text not null,
    created_at timestamptz not null default now()
);

create table notification_outbox (
    id              bigserial primary key,
    channel_id      text not null references notification_channels (id) on delete cascade,
    event           text not null,
    repo            text,
    -- the event's facts, as the pool recorded them (rendered per channel kind on delivery)
    facts           jsonb not null,
    created_at      timestamptz not null default now(),
    attempts        integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    claimed_until   timestamptz,
    delivered_at    timestamptz,
    gave_up_at      timestamptz,
    last_error      text
);
create index notification_outbox_due on notification_outbox (next_attempt_at, id)
    where delivered_at is null and gave_up_at is null;
create index notification_outbox_channel on notification_outbox (channel_id, id);
create index notification_outbox_created on notification_outbox (created_at);

-- Events only time makes true (a PR gone stale, a budget full for long) are announced
-- once per occurrence: the leader's scan inserts its key here and announces only what
-- it inserted.
create table notification_marks (
    key        text primary key,
    created_at timestamptz not null default now()
);
create index notification_marks_created on notification_marks (created_at);

-- Since when a repository's review budget has been full (the leader's scan keeps it).
alter table repositories add column budget_full_since timestamptz;

-- One event, to every channel that asked for it: channels of its repository and the
-- pool-wide ones. Cheap when nobody listens (a scan of a small table).
create function notify_event(p_event text, p_repo text, p_facts jsonb) returns void
language sql as $$
    insert into notification_outbox (channel_id, event, repo, facts)
    select c.id, p_event, p_repo, p_facts
    from notification_channels c
    where p_event = any (c.events) and (c.repo is null or c.repo = p_repo)
$$;

create function notify_task_failed() returns trigger language plpgsql as $$
begin
    perform notify_event('task_failed', new.repo, jsonb_build_object(
        'task_id', new.id, 'title', new.title, 'repo', new.repo,
        'attempt', new.attempt, 'max_attempts', new.max_attempts,
        'worker_id', old.worker_id));
    return null;
end $$;

-- `failed` is terminal: a failure with attempts left requeues the task instead.
create trigger tasks_notify_failed
    after update of status on tasks
    for each row
    when (new.status = 'failed' and old.status is distinct from 'failed')
    execute function notify_task_failed();

create function notify_worker_revoked() returns trigger language plpgsql as $$
begin
    perform notify_event('worker_revoked', null, jsonb_build_object(
        'worker_id', new.id, 'name', new.name, 'github_handle', new.github_handle));
    return null;
end $$;

create trigger workers_notify_revoked
    after update of revoked_at on workers
    for each row
    when (old.revoked_at is null and new.revoked_at is not null)
    execute function notify_worker_revoked();

create function notify_write_back_gave_up() returns trigger language plpgsql as $$
begin
    perform notify_event('write_back_gave_up', t.repo, jsonb_build_object(
        'task_id', new.task_id, 'repo', t.repo,
        'issue', new.gh_repo || '#' || new.issue_number, 'event', new.event,
        'attempts', new.attempts, 'error', new.last_error))
    from tasks t where t.id = new.task_id;
    return null;
end $$;

create trigger github_outbox_notify_gave_up
    after update of gave_up_at on github_outbox
    for each row
    when (old.gave_up_at is null and new.gave_up_at is not null)
    execute function notify_write_back_gave_up();
