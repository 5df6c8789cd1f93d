-- Rollback of 0026: the 0018 bodies of the maintenance notify triggers and the reminder step,
-- no marker table, ids mutable again. Loses nothing: the marker table never holds a committed row.
-- A rollback drops what its migration created (it must):
-- squawk-ignore-file ban-drop-table, ban-drop-function

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

DROP TRIGGER component_group_id_immutable ON component_group;
DROP TRIGGER delivery_attempt_id_immutable ON delivery_attempt;
DROP TRIGGER destination_allowlist_id_immutable ON destination_allowlist;
DROP TRIGGER incident_id_immutable ON incident;
DROP TRIGGER maintenance_window_id_immutable ON maintenance_window;
DROP TRIGGER notification_event_id_immutable ON notification_event;
DROP TRIGGER status_change_id_immutable ON status_change;
DROP TRIGGER status_incident_id_immutable ON status_incident;
DROP TRIGGER status_incident_template_id_immutable ON status_incident_template;
DROP TRIGGER status_page_id_immutable ON status_page;
DROP TRIGGER status_page_component_id_immutable ON status_page_component;
DROP TRIGGER status_subscriber_id_immutable ON status_subscriber;
DROP TRIGGER team_id_immutable ON team;
DROP TRIGGER status_incident_postmortem_deletion_id_immutable ON status_incident_postmortem_deletion;
DROP FUNCTION statusdb_refuse_id_change();

CREATE OR REPLACE FUNCTION statusdb_maintenance_remind(at timestamptz) RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    due record;
    written integer := 0;
BEGIN
    IF at IS NULL THEN
        RAISE EXCEPTION 'at must not be null'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR due IN
        SELECT w.id, w.start_time, w.end_time
        FROM maintenance_window w
        WHERE w.status = 'SCHEDULED'
          AND w.start_time > at
          AND w.start_time <= at + interval '7 days'
          AND w.start_time - w.reminder_lead <= at
          AND w.reminder_lead > interval '0'
          AND NOT EXISTS (SELECT 1 FROM notification_event e
                          WHERE e.maintenance_window_id = w.id
                            AND e.occurrence_start = w.start_time
                            AND e.kind = 'maintenance_reminder')
        ORDER BY w.start_time, w.id
        LIMIT 1000
        FOR NO KEY UPDATE SKIP LOCKED
    LOOP
        PERFORM statusdb_maintenance_event(due.id, 'maintenance_reminder', due.start_time,
                                           due.end_time, NULL);
        written := written + 1;
    END LOOP;
    RETURN written;
END;
$$;

CREATE OR REPLACE FUNCTION statusdb_maintenance_window_notify() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    IF OLD.created_at = now() THEN
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

CREATE OR REPLACE FUNCTION statusdb_maintenance_window_notify_scheduled() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    current maintenance_window%ROWTYPE;
BEGIN
    SELECT * INTO current FROM maintenance_window w WHERE w.id = NEW.id;
    IF FOUND AND current.status IN ('SCHEDULED', 'IN_PROGRESS') THEN
        PERFORM statusdb_maintenance_event(current.id, 'maintenance_scheduled',
                                           current.start_time, current.end_time, NULL);
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER maintenance_window_mark_created ON maintenance_window;
DROP FUNCTION statusdb_maintenance_window_mark_created();
DROP TABLE maintenance_window_created;
