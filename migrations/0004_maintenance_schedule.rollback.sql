-- Reverts 0004_maintenance_schedule.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';
-- Rolling back drops what the forward migration created; that is its purpose, so the
-- drop-column, drop-constraint and drop-function warnings (meant for forward migrations) are switched off here.
-- Series keep their rule and current occurrence; they lose their zone (expanded in UTC again)
-- and their first occurrence (COUNT counts from the current one again).
-- squawk-ignore-file ban-drop-column, ban-drop-constraint, ban-drop-function

-- Refuses while a window would lose something (see 0006's rollback for the rule): its time zone
-- (any zone but UTC: a series would expand in UTC after the next migrate) or, for a series, its
-- first occurrence when that is not the current one (COUNT would count from the current one).
DO $$
DECLARE
    zoned bigint;
    moved bigint;
BEGIN
    IF current_setting('statusdb.allow_data_loss', true) = 'on' THEN
        RETURN;
    END IF;
    SELECT count(*) FILTER (WHERE w.time_zone <> 'UTC'),
           count(*) FILTER (WHERE w.recurrence_start <> w.start_time)
    INTO zoned, moved
    FROM maintenance_window w;
    IF zoned > 0 OR moved > 0 THEN
        RAISE EXCEPTION 'rolling back 0004_maintenance_schedule would lose data: '
                        'maintenance_window has % rows with a time zone other than UTC (the '
                        'zone is dropped: their series would recur in UTC) and % series past '
                        'their first occurrence (recurrence_start is dropped: COUNT would count '
                        'again from the current occurrence). %', zoned, moved,
        'Pass --allow-data-loss to statusdb rollback (plain yoyo: '
        'PGOPTIONS=''-c statusdb.allow_data_loss=on'') to roll back anyway.'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END;
$$;

DROP TRIGGER maintenance_window_time_zone_check ON maintenance_window;
DROP FUNCTION statusdb_maintenance_window_check_time_zone();
ALTER TABLE maintenance_window
    DROP CONSTRAINT maintenance_window_recurrence_rule_syntax_check,
    DROP CONSTRAINT maintenance_window_recurrence_start_check,
    DROP COLUMN recurrence_start,
    DROP COLUMN time_zone;
