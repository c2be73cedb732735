-- Claim approval (issue 27): a repository may ask that an untrusted worker's claim wait
-- for a maintainer's approval before work starts. The claim is a lease as any other
-- (it holds the worker's capacity, the repo's slot and the area), marked by
-- tasks.approval_lease = the lease awaiting approval: the mark means something only while
-- it equals tasks.lease_id, so every path that ends the lease ends the wait without
-- knowing about it.
alter table repositories add column claim_approval boolean not null default false;
alter table tasks add column approval_lease text;
