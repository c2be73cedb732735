-- Who may take work in a repository, and which repositories a worker takes work from
-- (issue 27; domain::access is the rule, the claim enforces it under the repo's lock).
alter table repositories
    -- null: every worker may; otherwise only these worker ids
    add column allow_workers text[],
    -- never these worker ids (wins over the allow list)
    add column deny_workers text[] not null default '{}',
    -- the lowest trust tier admitted (0 untrusted .. 3 core)
    add column min_trust_tier smallint not null default 0
        check (min_trust_tier between 0 and 3);

-- null: any repository; otherwise only these (the worker's own choice, PATCH /v1/workers/me)
alter table workers add column repos text[];
