-- Storage settings for the pool's hot rows (issue 12, item 5; figures in docs/BENCHMARKS.md).
--
-- Every request of a worker stamps workers.last_heartbeat (at most once a second per
-- worker): at fleet scale, 50,000 workers heartbeating every 30 s, the most frequent write
-- of the pool. With last_heartbeat in an index each stamp was a new row version plus an
-- entry in all four indexes of workers, written to the WAL with full-page images after
-- each checkpoint. Without an index on it, and with room left in each page (fillfactor),
-- a stamp is a heap-only (HOT) update: one tuple, no index entry, and the page prunes
-- itself. The offline sweep, the index's one user, now reads the online workers
-- sequentially once per OWP_SWEEP_INTERVAL (a few milliseconds at 50,000 workers), which
-- the state overview's counts already did.
drop index workers_online_by_heartbeat;

-- Pages of workers and of leases (whose reports update last_report, quality and the like
-- in place) keep room for HOT updates. A fillfactor applies to pages written from now on.
alter table workers set (fillfactor = 70);
alter table leases set (fillfactor = 85);

-- Tasks change status several times in their short life and every change leaves a dead
-- version in the ready queue and the other partial indexes, which claims walk past until
-- a vacuum removes them. Vacuum the hot tables after 2 % of their rows changed (the
-- default, 20 %, lets a 100,000-task queue collect 20,000 dead versions first) and keep
-- their statistics as fresh, so the planner does not take a queue just imported for empty.
alter table tasks set (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
alter table workers set (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.05);
alter table leases set (autovacuum_vacuum_scale_factor = 0.05);
alter table worker_reputation set (autovacuum_vacuum_scale_factor = 0.05);
