-- statusdb 0040 rollback: the maintenance window triggers re-derive and announce window by
-- window again (0023's and 0027's bodies); drops the function 0040 created.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

CREATE OR REPLACE FUNCTION statusdb_maintenance_window_refresh_status() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    windows text[];
    ids text[];
    win text;
    stage text;
    attempts integer := 0;
BEGIN
    SELECT array_agg(n.id ORDER BY n.id)
    INTO windows
    FROM new_rows n
    JOIN old_rows o ON o.id = n.id
    WHERE (o.status = 'IN_PROGRESS' AND o.auto_update_status)
          IS DISTINCT FROM (n.status = 'IN_PROGRESS' AND n.auto_update_status);
    IF windows IS NULL THEN
        RETURN NULL;
    END IF;
    LOOP
        stage := 'slots';
        BEGIN
            PERFORM statusdb_lock_windows(windows);
            -- The links as they are once the windows' slots are held (a link writer in flight
            -- has committed, or waits for this transaction).
            SELECT array_agg(DISTINCT mc.component_id)
            INTO ids
            FROM maintenance_window_component mc
            WHERE mc.maintenance_window_id = ANY (windows);
            IF ids IS NULL THEN
                RETURN NULL;
            END IF;
            PERFORM statusdb_lock_components(ids);
            stage := 'rows';
            PERFORM 1 FROM status_page_component c
            WHERE c.id = ANY (ids) ORDER BY c.id FOR NO KEY UPDATE NOWAIT;
            EXIT;
        EXCEPTION WHEN lock_not_available THEN
            IF stage <> 'rows' THEN
                RAISE;
            END IF;
            IF attempts >= 50 THEN  -- 0038: retryable, no longer 55P03 from the NOWAIT
                RAISE EXCEPTION 'the components to re-derive stayed locked by other transactions'
                    USING ERRCODE = 'serialization_failure',
                          DETAIL = 'Their rows were taken again each time this derivation '
                                   'waited for them (50 times).',
                          HINT = 'Retry the transaction.';
            END IF;
            attempts := attempts + 1;
            PERFORM statusdb_wait_for_components(ids);
        END;
    END LOOP;
    FOREACH win IN ARRAY windows LOOP
        PERFORM statusdb_rederive_components(
            ARRAY(SELECT mc.component_id
                  FROM maintenance_window_component mc
                  WHERE mc.maintenance_window_id = win
                  ORDER BY mc.component_id),
            'MAINTENANCE', NULL, win);
    END LOOP;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION statusdb_maintenance_window_report_events() RETURNS trigger
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

-- squawk-ignore ban-drop-function
DROP FUNCTION statusdb_rederive_maintenance_components(text[]);
