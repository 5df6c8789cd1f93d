-- Reverts 0004_maintenance_schedule.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';
-- Rolling back drops what the forward migration created; that is its purpose, so the
-- drop-column, drop-constraint and drop-function warnings (meant for forward migrations) are switched off here.
-- Series keep their rule and current occurrence; they lose their zone (expanded in UTC again)
-- and their first occurrence (COUNT counts from the current one again).
-- squawk-ignore-file ban-drop-column, ban-drop-constraint, ban-drop-function

DROP TRIGGER maintenance_window_time_zone_check ON maintenance_window;
DROP FUNCTION statusdb_maintenance_window_check_time_zone();
ALTER TABLE maintenance_window
    DROP CONSTRAINT maintenance_window_recurrence_rule_syntax_check,
    DROP CONSTRAINT maintenance_window_recurrence_start_check,
    DROP COLUMN recurrence_start,
    DROP COLUMN time_zone;
