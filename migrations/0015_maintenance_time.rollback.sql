-- statusdb 0015 rollback: drop the scheduler's error table and the wall-clock DTSTART.
-- Series whose DTSTART was a skipped time (recurrence_local_start not the local reading of
-- recurrence_start) then run at recurrence_start's local time, as before 0015.

-- squawk-ignore-file ban-drop-table, ban-drop-column, ban-drop-constraint

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

-- Refuses while it would lose something (the safety catch of 0001-0006: statusdb.allow_data_loss
-- = on, `statusdb rollback --allow-data-loss`): recorded scheduler errors, and series whose
-- DTSTART was a skipped time (they would move from 02:30 to 03:30 on every later day).
DO $$
DECLARE
    errors bigint;
    gap_series bigint;
BEGIN
    IF current_setting('statusdb.allow_data_loss', true) = 'on' THEN
        RETURN;
    END IF;
    SELECT count(*) INTO errors FROM maintenance_window_scheduler_error;
    SELECT count(*) INTO gap_series FROM maintenance_window w
    WHERE w.recurrence_local_start IS NOT NULL
      AND w.recurrence_local_start <> (w.recurrence_start AT TIME ZONE w.time_zone);
    IF errors > 0 OR gap_series > 0 THEN
        RAISE EXCEPTION 'rolling back 0015_maintenance_time would lose data: '
                        'maintenance_window_scheduler_error has % rows, and % recurring windows '
                        'start at a skipped local time (they would run an hour later every day). %',
                        errors, gap_series,
            'Pass --allow-data-loss to statusdb rollback (plain yoyo: '
            'PGOPTIONS=''-c statusdb.allow_data_loss=on'') to roll back anyway.'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END;
$$;

DROP TABLE maintenance_window_scheduler_error;

ALTER TABLE maintenance_window
    DROP CONSTRAINT maintenance_window_recurrence_local_start_check,
    DROP COLUMN recurrence_local_start;
