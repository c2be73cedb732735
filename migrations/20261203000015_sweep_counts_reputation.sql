-- The sweeps count reputation per worker, not per lease (issue 24, P5).
--
-- A sweep ends up to a thousand leases in one statement. The row trigger
-- `leases_count_reputation` upserted the worker's counters once per lease: a thousand
-- versions of one row per batch when one worker held them all, each update walking the
-- versions before it. A statement that counts the leases it ends itself, summed per worker
-- in worker order (`store::sweeps::end_attempts`), says so for its transaction with
-- `set local owp.reputation_counted = 'statement'`, and the row trigger stands aside.
-- `lease_counts` stays the one definition of what a lease contributes; reconciliation and
-- the reputation tests compare the counters with it.
drop trigger leases_count_reputation on leases;
create trigger leases_count_reputation
    after update of end_reason, on_time, last_report, quality, credited on leases
    for each row
    when ((old.end_reason is distinct from new.end_reason or old.on_time is distinct from new.on_time
           or old.quality is distinct from new.quality or old.credited is distinct from new.credited
           or (old.last_report is distinct from new.last_report
               and (new.last_report in ('merged', 'closed') or old.last_report in ('merged', 'closed'))))
          and current_setting('owp.reputation_counted', true) is distinct from 'statement')
    execute function leases_count_reputation();
