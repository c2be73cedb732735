-- Safe to run in the open: retry backoff, PR slots that cannot leak, bounded history.

-- Retry backoff. A failed or expired attempt puts its task back to `ready` with
-- `retry_at` in the future: nobody claims it before then, and the worker whose attempt
-- failed (`withheld_from`) not before `withheld_until`, so another eligible worker gets it
-- first. All three are cleared when the task is leased again.
alter table tasks
    add column retry_at       timestamptz,
    add column withheld_from  text,
    add column withheld_until timestamptz,
    -- when the task entered pr_opened (OWP_PR_STALE_AFTER counts from here)
    add column pr_opened_at   timestamptz;

-- A repo may pin PR URLs to its forge: a pr_url that does not start with this is refused.
alter table repositories
    add column pr_url_prefix text check (pr_url_prefix is null or char_length(pr_url_prefix) between 9 and 300);

-- Stale PRs: pr_opened tasks by age. Partial, so it holds only the open PRs.
create index tasks_pr_opened_by_age on tasks (pr_opened_at) where status = 'pr_opened';

-- Retention (OWP_RETENTION). BRIN indexes: these tables are appended in time order, a BRIN
-- index costs almost nothing per insert and finds the old end of the table cheaply.
create index audit_events_at_brin on audit_events using brin (at);
create index leases_granted_brin on leases using brin (granted_at);
create index artifacts_created_brin on artifacts using brin (created_at);

-- The horizon the retention duty has pruned up to: history older than this may be gone,
-- and the invariant checker does not ask it to be complete.
alter table scheduler_state add column pruned_before timestamptz;

-- PRs opened before this migration count from their last change.
update tasks set pr_opened_at = updated_at where status = 'pr_opened';
