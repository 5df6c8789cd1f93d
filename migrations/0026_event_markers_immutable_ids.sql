-- statusdb 0026: no client-writable value decides whether a maintenance event is written; row ids
-- never change; the reminder step keeps to a team scope.
-- depends: 0025_history_bounds
--
-- ## "Created in this transaction" (issue 26 item 5)
--
-- A window created in a transaction is announced once, at commit (maintenance_scheduled); its
-- later updates in that same transaction write no cancelled/rescheduled/started event. 0018
-- told "created in this transaction" by `OLD.created_at = now()`, and created_at is a column
-- the app may write: `UPDATE maintenance_window SET created_at = now()` before a cancel
-- suppressed maintenance_cancelled. Now the insert itself leaves a marker row in the owner-only
-- table maintenance_window_created (written by a SECURITY DEFINER statement trigger, one
-- INSERT ... SELECT per statement), which the at-commit scheduled trigger deletes again: the
-- marker is visible only inside the creating transaction and never commits. No client can
-- write it, and `SET CONSTRAINTS ... IMMEDIATE` only makes the marker go early (more events,
-- never fewer).
--
-- ## Ids are immutable (issue 26 item 6)
--
-- Other rows, the page snapshot, row_history, notification events and delivery keys refer to
-- rows by id; `UPDATE maintenance_window SET id = ...` left the snapshot with the old id and
-- announced nothing. Every table with an `id` primary key now refuses a change of it, for
-- every client (owner included), with check_violation naming `<table>_id_immutable`. The
-- triggers are `BEFORE UPDATE OF id ... WHEN (NEW.id IS DISTINCT FROM OLD.id)`: an UPDATE that
-- does not name the column never fires them, and one that sets the same value skips the call.
--
-- ## Reminders under a team scope (issue 26 item 7)
--
-- statusdb_maintenance_remind runs as the owner (the app cannot write events), so row-level
-- security did not bound it: under tenancy.set_team(A) it wrote team B's reminders and its
-- count told of B's start times. It now keeps to the scope's team (unscoped: every team, as
-- before).

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

CREATE TABLE maintenance_window_created (
    maintenance_window_id text NOT NULL,
    CONSTRAINT maintenance_window_created_pkey PRIMARY KEY (maintenance_window_id)
);
COMMENT ON TABLE maintenance_window_created IS
    'Owner-only marker: windows inserted by the current transaction (deleted again at commit by '
    'the maintenance_window_notify_scheduled trigger, so no row ever commits).';
COMMENT ON COLUMN maintenance_window_created.maintenance_window_id IS
    'The new window (no foreign key: the row lives only until its transaction commits).';
ALTER TABLE maintenance_window_created ENABLE ROW LEVEL SECURITY;

CREATE FUNCTION statusdb_maintenance_window_mark_created() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    INSERT INTO maintenance_window_created (maintenance_window_id)
    SELECT n.id FROM new_windows n
    ON CONFLICT (maintenance_window_id) DO NOTHING;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION statusdb_maintenance_window_mark_created() IS
    'Statement trigger: marks the windows this statement inserted as created in this transaction.';
REVOKE EXECUTE ON FUNCTION statusdb_maintenance_window_mark_created() FROM PUBLIC;

CREATE TRIGGER maintenance_window_mark_created
    AFTER INSERT ON maintenance_window
    REFERENCING NEW TABLE AS new_windows
    FOR EACH STATEMENT EXECUTE FUNCTION statusdb_maintenance_window_mark_created();

CREATE OR REPLACE FUNCTION statusdb_maintenance_window_notify_scheduled() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    current maintenance_window%ROWTYPE;
BEGIN
    -- The window is no longer new once this transaction commits (the marker never commits).
    DELETE FROM maintenance_window_created m WHERE m.maintenance_window_id = NEW.id;
    SELECT * INTO current FROM maintenance_window w WHERE w.id = NEW.id;
    IF FOUND AND current.status IN ('SCHEDULED', 'IN_PROGRESS') THEN
        PERFORM statusdb_maintenance_event(current.id, 'maintenance_scheduled',
                                           current.start_time, current.end_time, NULL);
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION statusdb_maintenance_window_notify() RETURNS trigger
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

CREATE OR REPLACE FUNCTION statusdb_maintenance_remind(at timestamptz) RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    due record;
    written integer := 0;
    scope text := statusdb_current_team();
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
          -- A team-scoped session (statusdb.tenancy.set_team) reminds of its own team's
          -- windows only, and counts nothing of other teams'.
          AND (scope IS NULL
               OR EXISTS (SELECT 1 FROM status_page p
                          WHERE p.id = w.status_page_id AND p.team_id = scope))
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

CREATE FUNCTION statusdb_refuse_id_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'the id of a % row never changes (% -> %)', TG_TABLE_NAME, OLD.id, NEW.id
        USING ERRCODE = 'check_violation',
              CONSTRAINT = TG_TABLE_NAME || '_id_immutable',
              TABLE = TG_TABLE_NAME,
              COLUMN = 'id';
END;
$$;
COMMENT ON FUNCTION statusdb_refuse_id_change() IS
    'Trigger: refuses an UPDATE that changes a row''s id (other rows, the page snapshot, history '
    'and events refer to it).';
REVOKE EXECUTE ON FUNCTION statusdb_refuse_id_change() FROM PUBLIC;

CREATE TRIGGER component_group_id_immutable
    BEFORE UPDATE OF id ON component_group
    FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id)
    EXECUTE FUNCTION statusdb_refuse_id_change();
CREATE TRIGGER delivery_attempt_id_immutable
    BEFORE UPDATE OF id ON delivery_attempt
    FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id)
    EXECUTE FUNCTION statusdb_refuse_id_change();
CREATE TRIGGER destination_allowlist_id_immutable
    BEFORE UPDATE OF id ON destination_allowlist
    FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id)
    EXECUTE FUNCTION statusdb_refuse_id_change();
CREATE TRIGGER incident_id_immutable
    BEFORE UPDATE OF id ON incident
    FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id)
    EXECUTE FUNCTION statusdb_refuse_id_change();
CREATE TRIGGER maintenance_window_id_immutable
    BEFORE UPDATE OF id ON maintenance_window
    FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id)
    EXECUTE FUNCTION statusdb_refuse_id_change();
CREATE TRIGGER notification_event_id_immutable
    BEFORE UPDATE OF id ON notification_event
    FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id)
    EXECUTE FUNCTION statusdb_refuse_id_change();
CREATE TRIGGER status_change_id_immutable
    BEFORE UPDATE OF id ON status_change
    FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id)
    EXECUTE FUNCTION statusdb_refuse_id_change();
CREATE TRIGGER status_incident_id_immutable
    BEFORE UPDATE OF id ON status_incident
    FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id)
    EXECUTE FUNCTION statusdb_refuse_id_change();
CREATE TRIGGER status_incident_template_id_immutable
    BEFORE UPDATE OF id ON status_incident_template
    FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id)
    EXECUTE FUNCTION statusdb_refuse_id_change();
CREATE TRIGGER status_page_id_immutable
    BEFORE UPDATE OF id ON status_page
    FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id)
    EXECUTE FUNCTION statusdb_refuse_id_change();
CREATE TRIGGER status_page_component_id_immutable
    BEFORE UPDATE OF id ON status_page_component
    FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id)
    EXECUTE FUNCTION statusdb_refuse_id_change();
CREATE TRIGGER status_subscriber_id_immutable
    BEFORE UPDATE OF id ON status_subscriber
    FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id)
    EXECUTE FUNCTION statusdb_refuse_id_change();
CREATE TRIGGER team_id_immutable
    BEFORE UPDATE OF id ON team
    FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id)
    EXECUTE FUNCTION statusdb_refuse_id_change();
CREATE TRIGGER status_incident_postmortem_deletion_id_immutable
    BEFORE UPDATE OF id ON status_incident_postmortem_deletion
    FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id)
    EXECUTE FUNCTION statusdb_refuse_id_change();
