-- statusdb 0027: maintenance events are written after the derivation, so their payloads list
-- the components' statuses as the change left them (issue 27 item 1).
-- depends: 0026_event_markers_immutable_ids
--
-- 0018's maintenance_window_notify was an AFTER ROW trigger; the statuses a window implies are
-- derived by maintenance_window_refresh_status, an AFTER STATEMENT trigger since 0023, and AFTER
-- ROW triggers fire before AFTER STATEMENT ones. So maintenance_started listed the components
-- as OPERATIONAL although they were UNDER_MAINTENANCE, and maintenance_completed (or
-- maintenance_cancelled of a running window) listed UNDER_MAINTENANCE after they were back.
-- The events are now written by a statement trigger over the statement's old and new rows,
-- named so that it fires after maintenance_window_refresh_status (same timing and level fire in
-- the byte order of their names: "refresh_status" < "report_events"); the rules of what each
-- update means are 0018's (with 0026's marker), unchanged, one window after another in id
-- order. A statement trigger with transition tables cannot name columns, so it runs for every
-- UPDATE of maintenance_window and skips rows whose status, times, rule and zone are unchanged.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

DROP TRIGGER maintenance_window_notify ON maintenance_window;
-- squawk-ignore ban-drop-function
DROP FUNCTION statusdb_maintenance_window_notify();  -- replaced by the function below

CREATE FUNCTION statusdb_maintenance_window_report_events() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    -- One hash join of the statement's old and new rows (ids never change, 0026); only rows
    -- whose status, times, rule or zone changed can mean an event.
    FOR r IN
        SELECT o.id AS was_id,
               o.status AS was_status,
               o.start_time AS was_start_time,
               o.end_time AS was_end_time,
               o.recurrence_rule AS was_recurrence_rule,
               o.recurrence_start AS was_recurrence_start,
               o.time_zone AS was_time_zone,
               n.status AS cur_status,
               n.start_time AS cur_start_time,
               n.end_time AS cur_end_time,
               n.recurrence_rule AS cur_recurrence_rule,
               n.recurrence_start AS cur_recurrence_start,
               n.time_zone AS cur_time_zone
        FROM old_windows o
        JOIN new_windows n ON n.id = o.id
        WHERE (o.status, o.start_time, o.end_time, o.recurrence_rule, o.recurrence_start,
               o.time_zone)
              IS DISTINCT FROM (n.status, n.start_time, n.end_time, n.recurrence_rule,
                                n.recurrence_start, n.time_zone)
        ORDER BY o.id
    LOOP
        IF EXISTS (SELECT 1 FROM maintenance_window_created m
                   WHERE m.maintenance_window_id = r.was_id) THEN
            CONTINUE;  -- created in this transaction: announced once, at commit
        END IF;
        IF r.cur_status = 'CANCELLED' THEN
            IF r.was_status <> 'CANCELLED' THEN
                PERFORM statusdb_maintenance_event(r.was_id, 'maintenance_cancelled',
                                                   r.was_start_time, r.was_end_time, NULL);
            END IF;
            CONTINUE;
        END IF;
        IF r.was_status = 'IN_PROGRESS'
           AND (r.cur_status <> 'IN_PROGRESS' OR r.cur_start_time <> r.was_start_time) THEN
            PERFORM statusdb_maintenance_event(r.was_id, 'maintenance_completed',
                                               r.was_start_time, r.was_end_time, NULL);
        END IF;
        IF r.cur_status = 'IN_PROGRESS'
           AND (r.was_status <> 'IN_PROGRESS' OR r.cur_start_time <> r.was_start_time) THEN
            PERFORM statusdb_maintenance_event(r.was_id, 'maintenance_started',
                                               r.cur_start_time, r.cur_end_time, NULL);
        END IF;
        IF r.cur_status IN ('SCHEDULED', 'IN_PROGRESS') AND r.was_status = r.cur_status
           AND ((r.cur_recurrence_rule, r.cur_recurrence_start, r.cur_time_zone)
                    IS DISTINCT FROM (r.was_recurrence_rule, r.was_recurrence_start, r.was_time_zone)
                OR (r.cur_recurrence_rule IS NULL
                    AND (r.cur_start_time, r.cur_end_time) <> (r.was_start_time, r.was_end_time))
                OR (r.cur_recurrence_rule IS NOT NULL AND r.cur_start_time = r.was_start_time
                    AND r.cur_end_time <> r.was_end_time)) THEN
            PERFORM statusdb_maintenance_event(
                r.was_id, 'maintenance_rescheduled', r.cur_start_time, r.cur_end_time,
                jsonb_build_object('start', statusdb_event_time(r.was_start_time),
                                   'end', statusdb_event_time(r.was_end_time),
                                   'start_local', to_char(r.was_start_time AT TIME ZONE r.was_time_zone,
                                                          'YYYY-MM-DD HH24:MI'),
                                   'end_local', to_char(r.was_end_time AT TIME ZONE r.was_time_zone,
                                                        'YYYY-MM-DD HH24:MI')));
        END IF;
    END LOOP;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION statusdb_maintenance_window_report_events() IS
    'Statement trigger (after the derivation): writes the maintenance_cancelled/started/'
    'completed/rescheduled events of the windows a statement updated.';
REVOKE EXECUTE ON FUNCTION statusdb_maintenance_window_report_events() FROM PUBLIC;

CREATE TRIGGER maintenance_window_report_events
    AFTER UPDATE ON maintenance_window
    REFERENCING OLD TABLE AS old_windows NEW TABLE AS new_windows
    FOR EACH STATEMENT EXECUTE FUNCTION statusdb_maintenance_window_report_events();
