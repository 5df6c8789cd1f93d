-- statusdb 0040: a scheduler step re-derives and announces its windows once per statement
-- (issue 20 item 2, `maintenance.advance`).
-- depends: 0039_page_version_lookup
--
-- maintenance.advance already moves every due window in one UPDATE (0032's
-- statusdb_maintenance_advance_by_time, then maintenance_move_series), but the two statement
-- triggers that UPDATE fires still worked window by window:
--
-- * statusdb_maintenance_window_refresh_status called statusdb_rederive_components once per
--   window: one derivation, one UPDATE of status_page_component (with its statement triggers:
--   row history, group roll-up, snapshot mark) and one INSERT into status_change per window,
--   ~110 of each in a bench step.
-- * statusdb_maintenance_window_report_events looped over the changed windows and wrote each
--   event with its own INSERT (statusdb_maintenance_event), 1-2 per window.
--
-- Redefined (each from its current body, 0038 and 0027; nothing else in them changed):
--
-- * statusdb_maintenance_window_refresh_status: the lock phase is unchanged (the windows'
--   slots, then their components' status keys and rows, in the lock order); the FOREACH over
--   the windows becomes one call of the new statusdb_rederive_maintenance_components(windows).
-- * statusdb_maintenance_window_report_events: the loop becomes one INSERT ... SELECT over the
--   statement's transition tables. The rules of what a change means are 0018's, 0026's and
--   0027's, unchanged (a window created in this transaction is announced at commit; cancelled;
--   completed before started for the same window; rescheduled); the payload is
--   statusdb_maintenance_event's, built by the same expressions; the rows are inserted in the
--   loop's order (window id, then completed before started), so event ids (time-ordered)
--   follow the same order.
--
-- Attribution stays what the loop made it: the triggers fire after the whole statement, so
-- the loop's first window (in id order) covering a component re-derived it from the final
-- state and logged the change under its id, and the later windows found nothing to change.
-- The set-based derivation logs each changed component under the least id of the statement's
-- windows covering it, the same window; the status_change rows are inserted in the loop's
-- order (window id, then component id).

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

CREATE FUNCTION statusdb_rederive_maintenance_components(window_ids text[]) RETURNS void
LANGUAGE plpgsql
SET search_path = public, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    component_ids text[];
    notified bigint;
BEGIN
    SELECT array_agg(DISTINCT mc.component_id)
    INTO component_ids
    FROM maintenance_window_component mc
    WHERE mc.maintenance_window_id = ANY (window_ids);
    IF component_ids IS NULL THEN
        RETURN;
    END IF;
    WITH cover AS (
        -- The window a change is logged under: the least id covering the component (the one
        -- statusdb_rederive_components, called window after window in id order, logged).
        SELECT mc.component_id, min(mc.maintenance_window_id) AS window_id
        FROM maintenance_window_component mc
        WHERE mc.maintenance_window_id = ANY (window_ids)
        GROUP BY mc.component_id
    ),
    derived AS (
        SELECT d.component_id, d.current_status, d.derived_status, cover.window_id
        FROM statusdb_derive_statuses(component_ids) AS d
        JOIN cover ON cover.component_id = d.component_id
        WHERE d.current_status IS DISTINCT FROM d.derived_status
    ),
    changed AS (
        UPDATE status_page_component c
        SET current_status = derived.derived_status,
            status_updated_at = clock_timestamp()
        FROM derived
        -- Said twice so that the planner reaches the rows through the primary key.
        WHERE c.id = ANY (component_ids)
          AND c.id = derived.component_id
        RETURNING c.id, c.status_page_id, derived.current_status AS previous_status,
                  c.current_status AS new_status, c.status_updated_at, derived.window_id
    ),
    logged AS (
        INSERT INTO status_change (status_page_id, component_id, previous_status, new_status,
                                   cause, incident_id, maintenance_window_id, changed_at)
        SELECT changed.status_page_id, changed.id, changed.previous_status, changed.new_status,
               'MAINTENANCE', NULL, changed.window_id, changed.status_updated_at
        FROM changed
        ORDER BY changed.window_id, changed.id
        RETURNING status_change.seq
    )
    -- The same announcement statusdb_log_status_change makes, one per logged change.
    SELECT count(pg_notify('statusdb_status_change', logged.seq::text))
    INTO STRICT notified
    FROM logged;
END;
$$;

COMMENT ON FUNCTION statusdb_rederive_maintenance_components(text[]) IS
    'Re-derives, logs and announces the components of the given maintenance windows in one '
    'statement, each change under the least window id covering it (0040); the caller holds '
    'their status locks. Owner only.';
REVOKE EXECUTE ON FUNCTION statusdb_rederive_maintenance_components(text[]) FROM PUBLIC;

-- 0023's body; only the FOREACH over the windows became one set-based call.
CREATE OR REPLACE FUNCTION statusdb_maintenance_window_refresh_status() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    windows text[];
    ids text[];
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
    -- All the windows' components in one statement (0040; was one call per window).
    PERFORM statusdb_rederive_maintenance_components(windows);
    RETURN NULL;
END;
$$;

-- 0027's rules, in one INSERT over the transition tables (0040; was a loop of
-- statusdb_maintenance_event calls, one INSERT per event).
CREATE OR REPLACE FUNCTION statusdb_maintenance_window_report_events() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    WITH changes AS (
        -- One hash join of the statement's old and new rows (ids never change, 0026); only
        -- rows whose status, times, rule or zone changed can mean an event. A window created
        -- in this transaction is announced once, at commit.
        SELECT o.id,
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
          AND NOT EXISTS (SELECT 1 FROM maintenance_window_created m
                          WHERE m.maintenance_window_id = o.id)
    ),
    events AS (
        SELECT r.id, e.ord, e.kind, e.start_at, e.end_at, e.previous
        FROM changes r
        CROSS JOIN LATERAL (
            SELECT 1, 'maintenance_cancelled', r.was_start_time, r.was_end_time, NULL::jsonb
            WHERE r.cur_status = 'CANCELLED' AND r.was_status <> 'CANCELLED'
            UNION ALL
            SELECT 2, 'maintenance_completed', r.was_start_time, r.was_end_time, NULL
            WHERE r.cur_status <> 'CANCELLED'
              AND r.was_status = 'IN_PROGRESS'
              AND (r.cur_status <> 'IN_PROGRESS' OR r.cur_start_time <> r.was_start_time)
            UNION ALL
            SELECT 3, 'maintenance_started', r.cur_start_time, r.cur_end_time, NULL
            WHERE r.cur_status = 'IN_PROGRESS'
              AND (r.was_status <> 'IN_PROGRESS' OR r.cur_start_time <> r.was_start_time)
            UNION ALL
            SELECT 4, 'maintenance_rescheduled', r.cur_start_time, r.cur_end_time,
                   jsonb_build_object(
                       'start', statusdb_event_time(r.was_start_time),
                       'end', statusdb_event_time(r.was_end_time),
                       'start_local', to_char(r.was_start_time AT TIME ZONE r.was_time_zone,
                                              'YYYY-MM-DD HH24:MI'),
                       'end_local', to_char(r.was_end_time AT TIME ZONE r.was_time_zone,
                                            'YYYY-MM-DD HH24:MI'))
            WHERE r.cur_status IN ('SCHEDULED', 'IN_PROGRESS') AND r.was_status = r.cur_status
              AND ((r.cur_recurrence_rule, r.cur_recurrence_start, r.cur_time_zone)
                       IS DISTINCT FROM (r.was_recurrence_rule, r.was_recurrence_start,
                                         r.was_time_zone)
                   OR (r.cur_recurrence_rule IS NULL
                       AND (r.cur_start_time, r.cur_end_time)
                           <> (r.was_start_time, r.was_end_time))
                   OR (r.cur_recurrence_rule IS NOT NULL
                       AND r.cur_start_time = r.was_start_time
                       AND r.cur_end_time <> r.was_end_time))
        ) AS e (ord, kind, start_at, end_at, previous)
    )
    -- statusdb_maintenance_event's row, for every event at once.
    INSERT INTO notification_event (status_page_id, kind, maintenance_window_id,
                                    occurrence_start, component_ids, payload)
    SELECT w.status_page_id, e.kind, w.id, e.start_at, l.ids,
           jsonb_build_object(
               'page', statusdb_event_page(w.status_page_id),
               'window', jsonb_build_object('id', w.id, 'title', w.title,
                                            'description', w.description,
                                            'time_zone', w.time_zone,
                                            'recurring', w.recurrence_rule IS NOT NULL),
               'occurrence', jsonb_build_object(
                   'start', statusdb_event_time(e.start_at),
                   'end', statusdb_event_time(e.end_at),
                   'start_local', to_char(e.start_at AT TIME ZONE w.time_zone,
                                          'YYYY-MM-DD HH24:MI'),
                   'end_local', to_char(e.end_at AT TIME ZONE w.time_zone,
                                        'YYYY-MM-DD HH24:MI')),
               'previous', e.previous,
               'components', statusdb_event_components(l.ids))
    FROM events e
    JOIN maintenance_window w ON w.id = e.id
    CROSS JOIN LATERAL (
        SELECT coalesce(array_agg(mc.component_id ORDER BY mc.component_id), '{}') AS ids
        FROM maintenance_window_component mc
        WHERE mc.maintenance_window_id = w.id
    ) AS l
    ORDER BY e.id, e.ord;
    RETURN NULL;
END;
$$;
