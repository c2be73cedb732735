-- Repository analytics read the lease history of a repo's tasks: when the PR a lease opened
-- was merged or closed is kept on that lease, so review wait is one subtraction, with no
-- trip through the audit log.
alter table leases add column pr_decided_at timestamptz;

-- PRs decided before this migration: their task's last change.
update leases l set pr_decided_at = t.updated_at
from tasks t
where t.id = l.task_id and l.last_report in ('merged', 'closed');
