-- Rollback of 0027: the row trigger maintenance_window_notify again (its function, as 0026 left
-- it, was kept). Loses nothing.
-- squawk-ignore-file ban-drop-function

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

DROP TRIGGER maintenance_window_report_events ON maintenance_window;
DROP FUNCTION statusdb_maintenance_window_report_events();

CREATE TRIGGER maintenance_window_notify
    AFTER UPDATE OF status, start_time, end_time, recurrence_rule, recurrence_start, time_zone
    ON maintenance_window
    FOR EACH ROW EXECUTE FUNCTION statusdb_maintenance_window_notify();
