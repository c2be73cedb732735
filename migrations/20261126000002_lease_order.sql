-- Leases of a task are ordered by when they were granted. `granted_at` is now(), the start
-- of the claim transaction, so a claim that waited for its worker's row lock can carry an
-- older time than a lease granted and ended meanwhile. A sequence value is taken at insert,
-- after every lock of the claim is held: it orders the leases of a task as they happened.
alter table leases add column seq bigint generated always as identity;

drop index leases_by_task_worker;
-- the caller's newest lease on a task (lease_lost vs forbidden); by its prefix also the newest
-- lease of a task (a task has a handful of leases, sorted cheaply). No index of its own:
-- every lease is written twice (granted, ended), and each index costs on both.
create index leases_by_task_worker on leases (task_id, worker_id, seq desc);
