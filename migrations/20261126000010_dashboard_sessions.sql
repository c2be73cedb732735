-- Dashboard sign-in: an admin token exchanged once for a session (browsers' EventSource
-- cannot send headers). Kept as digests; a session lives until it expires, is signed out,
-- or the admin token it came from is no longer configured.
create table dashboard_sessions (
    digest       bytea primary key,
    -- the admin token's digest: rotating the token out ends its sessions
    admin_digest bytea not null,
    actor        text not null,
    csrf         text not null,
    created_at   timestamptz not null default now(),
    expires_at   timestamptz not null
);
create index dashboard_sessions_expiry on dashboard_sessions (expires_at);
