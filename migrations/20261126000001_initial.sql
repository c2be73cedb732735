-- OWP Pool schema. Statuses are text with check constraints (readable in psql, cheap to extend).
-- Invariants the database itself enforces are named in comments (see DESIGN.md I1-I8).

create table workers (
    id                   text primary key,
    name                 text not null check (char_length(name) between 1 and 120),
    github_handle        text check (github_handle is null or char_length(github_handle) between 1 and 39),
    token_digest         bytea not null unique check (octet_length(token_digest) = 32), -- sha-256, never the token
    skills               text[] not null default '{}',                                   -- trimmed, lower-cased, unique
    capacity_points      integer not null check (capacity_points between 1 and 1000),
    max_concurrent_tasks integer not null check (max_concurrent_tasks between 1 and 100),
    status               text not null default 'idle' check (status in ('idle', 'working', 'paused')),
    note                 text check (note is null or char_length(note) <= 500),
    trust_tier           smallint not null default 0 check (trust_tier between 0 and 3),
    online               boolean not null default true,
    last_heartbeat       timestamptz not null default now(),
    created_at           timestamptz not null default now()
);
-- the offline-worker sweep scans online workers by heartbeat age
create index workers_online_by_heartbeat on workers (last_heartbeat) where online;

create table repositories (
    repo               text primary key check (char_length(repo) between 1 and 200),
    max_open_prs       integer not null check (max_open_prs between 0 and 10000),
    area_locks_enabled boolean not null default true,
    created_at         timestamptz not null default now(),
    updated_at         timestamptz not null default now()
);

create table tasks (
    id               text primary key,
    repo             text not null references repositories (repo),
    title            text not null check (char_length(title) between 1 and 300),
    description      text not null default '' check (char_length(description) <= 20000),
    required_skills  text[] not null default '{}',
    estimate_points  integer not null check (estimate_points between 1 and 100),
    priority         integer not null default 10,
    area             text check (area is null or char_length(area) between 1 and 100),
    tier             smallint not null default 0 check (tier between 0 and 3),
    status           text not null default 'ready'
                     check (status in ('ready', 'leased', 'in_progress', 'blocked', 'pr_opened',
                                       'completed', 'merged', 'failed')),
    attempt          integer not null default 0 check (attempt >= 0),
    max_attempts     integer not null default 3 check (max_attempts between 1 and 100),
    -- holder of the live lease; the PR opener while pr_opened; the last holder once terminal
    worker_id        text references workers (id),
    lease_id         text,
    lease_expires_at timestamptz,
    -- true while this task holds its (repo, area) lock; see tasks_one_per_area
    holds_area_lock  boolean not null default false,
    pr_url           text,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now(),
    -- a live task always has exactly one current lease, and nothing else has one (I1)
    constraint tasks_live_lease check (
        (status in ('leased', 'in_progress', 'blocked')) = (lease_id is not null and lease_expires_at is not null)),
    constraint tasks_holder check (
        status not in ('leased', 'in_progress', 'blocked', 'pr_opened') or worker_id is not null),
    constraint tasks_ready_unheld check (status <> 'ready' or worker_id is null),
    constraint tasks_area_lock_open check (
        not holds_area_lock or (area is not null and status in ('leased', 'in_progress', 'blocked', 'pr_opened'))),
    constraint tasks_attempts check (attempt <= max_attempts)
);
-- claim order: highest priority, then oldest; partial so it only holds the queue
create index tasks_ready_queue on tasks (priority desc, created_at, id) where status = 'ready';
-- a worker's used capacity (I2)
create index tasks_live_by_worker on tasks (worker_id) where status in ('leased', 'in_progress', 'blocked');
-- a repo's open slots (I4)
create index tasks_open_by_repo on tasks (repo) where status in ('leased', 'in_progress', 'blocked', 'pr_opened');
-- at most one task per (repo, area) holds the area lock (I5)
create unique index tasks_one_per_area on tasks (repo, area) where holds_area_lock;
-- the lease-expiry sweep
create index tasks_live_by_expiry on tasks (lease_expires_at) where status in ('leased', 'in_progress', 'blocked');

-- Every lease ever granted; the current one is also named on its task row.
create table leases (
    id          text primary key,
    task_id     text not null references tasks (id),
    worker_id   text not null references workers (id),
    attempt     integer not null,
    granted_at  timestamptz not null default now(),
    ended_at    timestamptz,
    -- what ended it: a status the holder reported, or lease_expired / worker_offline
    end_reason  text,
    -- the last status the holder reported under this lease (also merged/closed after a PR),
    -- so a retried report that was already applied is answered 200, not lease_lost
    last_report text,
    constraint leases_end check ((ended_at is null) = (end_reason is null))
);
-- at most one live lease per task (I1)
create unique index leases_one_live_per_task on leases (task_id) where ended_at is null;
-- "did this worker ever hold this task?" (lease_lost vs forbidden, idempotent retries)
create index leases_by_task_worker on leases (task_id, worker_id, granted_at desc);

-- What workers delivered: PR links, commits, patches.
create table artifacts (
    id          bigint generated always as identity primary key,
    task_id     text not null references tasks (id),
    worker_id   text references workers (id),
    lease_id    text,
    pr_url      text,
    commit_sha  text,
    patch_url   text,
    extra       jsonb,
    created_at  timestamptz not null default now()
);
create index artifacts_by_task on artifacts (task_id);

-- Append-only; written in the same transaction as the change it records (I7).
create table audit_events (
    id          bigint generated always as identity primary key,
    at          timestamptz not null default now(),
    kind        text not null,
    task_id     text,
    worker_id   text,
    repo        text,
    lease_id    text,
    from_status text,
    to_status   text,
    reason      text,
    data        jsonb
);
create index audit_events_by_task on audit_events (task_id, id) where task_id is not null;

-- One row: what the scheduler leader last reported.
create table scheduler_state (
    singleton     boolean primary key default true check (singleton),
    leader        text,
    leader_since  timestamptz,
    last_sweep_at timestamptz
);
insert into scheduler_state (singleton) values (true);

-- The queue tables churn: vacuum them far more eagerly than the default 20 %.
alter table tasks set (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
alter table workers set (autovacuum_vacuum_scale_factor = 0.02);
