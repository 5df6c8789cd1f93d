-- statusdb 0015 rollback: drop the scheduler's error table and the wall-clock DTSTART.
-- Series whose DTSTART was a skipped time (recurrence_local_start not the local reading of
-- recurrence_start) then run at recurrence_start's local time, as before 0015.

-- squawk-ignore-file ban-drop-table, ban-drop-column, ban-drop-constraint

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

DROP TABLE maintenance_window_scheduler_error;

ALTER TABLE maintenance_window
    DROP CONSTRAINT maintenance_window_recurrence_local_start_check,
    DROP COLUMN recurrence_local_start;
