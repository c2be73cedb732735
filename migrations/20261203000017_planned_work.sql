-- Planned work (issue 27): a task may wait for a time (`not_before`), for other tasks to be
-- done (`depends_on`: merged or completed), and be held for one worker for a while
-- (`reserved_for` until `reserved_until`). The claim leaves such a task out until then.
alter table tasks
    add column not_before timestamptz,
    add column depends_on text[] not null default '{}',
    add column reserved_for text,
    add column reserved_until timestamptz,
    add constraint tasks_reservation_whole
        check ((reserved_for is null) = (reserved_until is null));
