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

CREATE FUNCTION statusdb_maintenance_window_report_events() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    pair record;
    was maintenance_window%ROWTYPE;
    cur maintenance_window%ROWTYPE;
BEGIN
    FOR pair IN
        SELECT o AS was_row, n AS cur_row
        FROM old_windows o
        JOIN new_windows n ON n.id = o.id  -- ids never change (0026)
        WHERE (o.status, o.start_time, o.end_time, o.recurrence_rule, o.recurrence_start,
               o.time_zone)
              IS DISTINCT FROM (n.status, n.start_time, n.end_time, n.recurrence_rule,
                                n.recurrence_start, n.time_zone)
        ORDER BY n.id
    LOOP
        was := pair.was_row;
        cur := pair.cur_row;
        IF EXISTS (SELECT 1 FROM maintenance_window_created m
                   WHERE m.maintenance_window_id = was.id) THEN
            CONTINUE;  -- created in this transaction: announced once, at commit
        END IF;
        IF cur.status = 'CANCELLED' THEN
            IF was.status <> 'CANCELLED' THEN
                PERFORM statusdb_maintenance_event(cur.id, 'maintenance_cancelled',
                                                   was.start_time, was.end_time, NULL);
            END IF;
            CONTINUE;
        END IF;
        IF was.status = 'IN_PROGRESS'
           AND (cur.status <> 'IN_PROGRESS' OR cur.start_time <> was.start_time) THEN
            PERFORM statusdb_maintenance_event(cur.id, 'maintenance_completed',
                                               was.start_time, was.end_time, NULL);
        END IF;
        IF cur.status = 'IN_PROGRESS'
           AND (was.status <> 'IN_PROGRESS' OR cur.start_time <> was.start_time) THEN
            PERFORM statusdb_maintenance_event(cur.id, 'maintenance_started',
                                               cur.start_time, cur.end_time, NULL);
        END IF;
        IF cur.status IN ('SCHEDULED', 'IN_PROGRESS') AND was.status = cur.status
           AND ((cur.recurrence_rule, cur.recurrence_start, cur.time_zone)
                    IS DISTINCT FROM (was.recurrence_rule, was.recurrence_start, was.time_zone)
                OR (cur.recurrence_rule IS NULL
                    AND (cur.start_time, cur.end_time) <> (was.start_time, was.end_time))
                OR (cur.recurrence_rule IS NOT NULL AND cur.start_time = was.start_time
                    AND cur.end_time <> was.end_time)) THEN
            PERFORM statusdb_maintenance_event(
                cur.id, 'maintenance_rescheduled', cur.start_time, cur.end_time,
                jsonb_build_object('start', statusdb_event_time(was.start_time),
                                   'end', statusdb_event_time(was.end_time),
                                   'start_local', to_char(was.start_time AT TIME ZONE was.time_zone,
                                                          'YYYY-MM-DD HH24:MI'),
                                   'end_local', to_char(was.end_time AT TIME ZONE was.time_zone,
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
