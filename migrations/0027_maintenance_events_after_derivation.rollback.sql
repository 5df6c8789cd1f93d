-- Rollback of 0027: the row trigger maintenance_window_notify again, with its function as 0026
-- left it. Loses nothing.
-- squawk-ignore-file ban-drop-function

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

DROP TRIGGER maintenance_window_report_events ON maintenance_window;
DROP FUNCTION statusdb_maintenance_window_report_events();

CREATE FUNCTION statusdb_maintenance_window_notify() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM maintenance_window_created m
               WHERE m.maintenance_window_id = OLD.id) THEN
        RETURN NULL;  -- created in this transaction: announced once, at commit
    END IF;
    IF NEW.status = 'CANCELLED' THEN
        IF OLD.status <> 'CANCELLED' THEN
            PERFORM statusdb_maintenance_event(NEW.id, 'maintenance_cancelled',
                                               OLD.start_time, OLD.end_time, NULL);
        END IF;
        RETURN NULL;
    END IF;
    IF OLD.status = 'IN_PROGRESS'
       AND (NEW.status <> 'IN_PROGRESS' OR NEW.start_time <> OLD.start_time) THEN
        PERFORM statusdb_maintenance_event(NEW.id, 'maintenance_completed',
                                           OLD.start_time, OLD.end_time, NULL);
    END IF;
    IF NEW.status = 'IN_PROGRESS'
       AND (OLD.status <> 'IN_PROGRESS' OR NEW.start_time <> OLD.start_time) THEN
        PERFORM statusdb_maintenance_event(NEW.id, 'maintenance_started',
                                           NEW.start_time, NEW.end_time, NULL);
    END IF;
    IF NEW.status IN ('SCHEDULED', 'IN_PROGRESS') AND OLD.status = NEW.status
       AND ((NEW.recurrence_rule, NEW.recurrence_start, NEW.time_zone)
                IS DISTINCT FROM (OLD.recurrence_rule, OLD.recurrence_start, OLD.time_zone)
            OR (NEW.recurrence_rule IS NULL
                AND (NEW.start_time, NEW.end_time) <> (OLD.start_time, OLD.end_time))
            OR (NEW.recurrence_rule IS NOT NULL AND NEW.start_time = OLD.start_time
                AND NEW.end_time <> OLD.end_time)) THEN
        PERFORM statusdb_maintenance_event(
            NEW.id, 'maintenance_rescheduled', NEW.start_time, NEW.end_time,
            jsonb_build_object('start', statusdb_event_time(OLD.start_time),
                               'end', statusdb_event_time(OLD.end_time),
                               'start_local', to_char(OLD.start_time AT TIME ZONE OLD.time_zone,
                                                      'YYYY-MM-DD HH24:MI'),
                               'end_local', to_char(OLD.end_time AT TIME ZONE OLD.time_zone,
                                                    'YYYY-MM-DD HH24:MI')));
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION statusdb_maintenance_window_notify() IS
    'Trigger: writes the maintenance_cancelled/started/completed/rescheduled event of a window '
    'update.';
REVOKE EXECUTE ON FUNCTION statusdb_maintenance_window_notify() FROM PUBLIC;

CREATE TRIGGER maintenance_window_notify
    AFTER UPDATE OF status, start_time, end_time, recurrence_rule, recurrence_start, time_zone
    ON maintenance_window
    FOR EACH ROW EXECUTE FUNCTION statusdb_maintenance_window_notify();
