-- statusdb 0003: component statuses derived in the database, and the status-change log.
-- depends: 0002_status_pages
--
-- A component's current_status is derived, never written by clients:
--   * a component with a team_id follows the active (OPEN, ACKNOWLEDGED) incidents of that team
--     (only those with the component's service_identifier, when it has one), each mapped by
--     priority: CRITICAL -> MAJOR_OUTAGE, HIGH -> PARTIAL_OUTAGE, MEDIUM -> DEGRADED_PERFORMANCE,
--     LOW and INFO -> OPERATIONAL;
--   * a component without a team_id takes its manual_status, set by hand;
--   * an IN_PROGRESS maintenance window with auto_update_status that covers the component makes
--     it UNDER_MAINTENANCE, unless the above is worse.
-- The worst status wins (MAJOR_OUTAGE, PARTIAL_OUTAGE, DEGRADED_PERFORMANCE, UNDER_MAINTENANCE,
-- OPERATIONAL). Triggers on every input re-derive the affected components in the same
-- transaction, whoever makes the change, and log each real change to status_change.
--
-- Concurrency. Under READ COMMITTED, a trigger that simply re-reads the incidents can miss a
-- concurrent transaction's change and leave a stale status once both commit. So every re-derive
-- first takes a transaction-scoped advisory lock per "status key" (the component's team, or the
-- component itself when it has no team), and only then reads its inputs: each statement of a
-- VOLATILE plpgsql function takes a fresh snapshot, so it sees every transaction that held the
-- lock before it. Whoever commits last for a key therefore computed from everything committed
-- before it, and no drift remains. REPEATABLE READ transactions keep one snapshot and cannot do
-- this, so writes that re-derive statuses are refused there (READ COMMITTED, the default, and
-- SERIALIZABLE work).

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

-- Set by hand for components without a team (ignored while the component has a team).
ALTER TABLE status_page_component
    ADD COLUMN manual_status text NOT NULL DEFAULT 'OPERATIONAL'
        CONSTRAINT status_page_component_manual_status_check
        CHECK (manual_status IN ('MAJOR_OUTAGE', 'PARTIAL_OUTAGE', 'DEGRADED_PERFORMANCE',
                                 'UNDER_MAINTENANCE', 'OPERATIONAL'));

-- Every change of a component's current_status, in order. The chain holds per component: the
-- first previous_status is OPERATIONAL (every component starts there), each previous_status is
-- the prior row's new_status, and the last new_status is current_status.
-- incident_id and maintenance_window_id record the cause as it was; they are deliberately not
-- foreign keys, so that the log keeps its history when an incident or window is deleted.
CREATE TABLE status_change (
    id text NOT NULL DEFAULT statusdb_new_id(),
    -- Order of changes: per component, changes are serialized by the status lock, so seq order
    -- is the order in which they happened.
    seq bigint GENERATED ALWAYS AS IDENTITY,
    status_page_id text NOT NULL,
    component_id text NOT NULL,
    previous_status text NOT NULL,
    new_status text NOT NULL,
    cause text NOT NULL,
    incident_id text,
    maintenance_window_id text,
    changed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT status_change_pkey PRIMARY KEY (id),
    CONSTRAINT status_change_seq_key UNIQUE (seq),
    CONSTRAINT status_change_status_page_id_fkey FOREIGN KEY (status_page_id)
        REFERENCES status_page (id) ON DELETE CASCADE,
    CONSTRAINT status_change_component_id_fkey FOREIGN KEY (component_id)
        REFERENCES status_page_component (id) ON DELETE CASCADE,
    CONSTRAINT status_change_previous_status_check
        CHECK (previous_status IN ('MAJOR_OUTAGE', 'PARTIAL_OUTAGE', 'DEGRADED_PERFORMANCE',
                                   'UNDER_MAINTENANCE', 'OPERATIONAL')),
    CONSTRAINT status_change_new_status_check
        CHECK (new_status IN ('MAJOR_OUTAGE', 'PARTIAL_OUTAGE', 'DEGRADED_PERFORMANCE',
                              'UNDER_MAINTENANCE', 'OPERATIONAL')),
    CONSTRAINT status_change_is_a_change_check CHECK (previous_status <> new_status),
    CONSTRAINT status_change_cause_check CHECK (cause IN ('INCIDENT', 'MAINTENANCE', 'MANUAL'))
);
-- Per component, in order: the chain check, uptime, and the cascade from a deleted component.
CREATE INDEX status_change_component_id_seq_idx ON status_change (component_id, seq);
-- Per page over time: uptime of a whole page, and the cascade from a deleted page.
CREATE INDEX status_change_status_page_id_changed_at_idx
    ON status_change (status_page_id, changed_at);

-- Rank of a status: lower is worse.
CREATE FUNCTION statusdb_status_rank(status text) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT CASE status
        WHEN 'MAJOR_OUTAGE' THEN 0
        WHEN 'PARTIAL_OUTAGE' THEN 1
        WHEN 'DEGRADED_PERFORMANCE' THEN 2
        WHEN 'UNDER_MAINTENANCE' THEN 3
        WHEN 'OPERATIONAL' THEN 4
    END
$$;

-- How an incident of a given priority shows on its components.
CREATE FUNCTION statusdb_priority_status(priority text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT CASE priority
        WHEN 'CRITICAL' THEN 'MAJOR_OUTAGE'
        WHEN 'HIGH' THEN 'PARTIAL_OUTAGE'
        WHEN 'MEDIUM' THEN 'DEGRADED_PERFORMANCE'
        WHEN 'LOW' THEN 'OPERATIONAL'
        WHEN 'INFO' THEN 'OPERATIONAL'
    END
$$;

-- The status a component should have, from its inputs: its team's active incidents (filtered
-- by service), its manual status (no team), and running maintenance that covers it.
CREATE FUNCTION statusdb_derive_status(
    component_id text, team_id text, service_identifier text, manual_status text
) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT coalesce((
        SELECT s.status
        FROM (VALUES
            (CASE WHEN team_id IS NULL THEN manual_status END),
            ((SELECT statusdb_priority_status(i.priority)
              FROM incident i
              WHERE team_id IS NOT NULL
                AND i.team_id = statusdb_derive_status.team_id
                AND i.status IN ('OPEN', 'ACKNOWLEDGED')
                AND (statusdb_derive_status.service_identifier IS NULL
                     OR i.service_identifier = statusdb_derive_status.service_identifier)
              ORDER BY statusdb_status_rank(statusdb_priority_status(i.priority))
              LIMIT 1)),
            ((SELECT 'UNDER_MAINTENANCE'
              WHERE EXISTS (
                  SELECT 1
                  FROM maintenance_window_component mc
                  JOIN maintenance_window w ON w.id = mc.maintenance_window_id
                  WHERE mc.component_id = statusdb_derive_status.component_id
                    AND w.status = 'IN_PROGRESS'
                    AND w.auto_update_status)))
        ) AS s (status)
        WHERE s.status IS NOT NULL
        ORDER BY statusdb_status_rank(s.status)
        LIMIT 1
    ), 'OPERATIONAL')
$$;

-- Every component with the status it should have, computed from scratch.
CREATE VIEW statusdb_component_derived_status AS
SELECT c.id AS component_id,
       c.status_page_id,
       c.current_status,
       statusdb_derive_status(c.id, c.team_id, c.service_identifier, c.manual_status)
           AS derived_status
FROM status_page_component c;

COMMENT ON VIEW statusdb_component_derived_status IS
    'The status each component should have, computed from scratch from its inputs.';

-- Records one change of a component's status and announces it on the live feed (NOTIFY is
-- delivered to listeners when, and only if, the transaction commits).
CREATE FUNCTION statusdb_log_status_change(
    status_page_id text, component_id text, previous_status text, new_status text,
    cause text, incident_id text, maintenance_window_id text, changed_at timestamptz
) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    change_id text;
BEGIN
    INSERT INTO status_change (status_page_id, component_id, previous_status, new_status, cause,
                               incident_id, maintenance_window_id, changed_at)
    VALUES (status_page_id, component_id, previous_status, new_status, cause, incident_id,
            maintenance_window_id, changed_at)
    RETURNING id INTO change_id;
    PERFORM pg_notify('statusdb_status_change', json_build_object(
        'status_page_id', status_page_id,
        'component_id', component_id,
        'new_status', new_status,
        'change_id', change_id)::text);
END;
$$;

-- The advisory lock key that serializes re-derivation for a component.
CREATE FUNCTION statusdb_status_lock_key(team_id text, component_id text) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN team_id IS NOT NULL
                THEN hashtextextended('statusdb.team:' || team_id, 0)
                ELSE hashtextextended('statusdb.component:' || component_id, 0) END
$$;

-- Takes the status locks, in key order (so that two transactions cannot deadlock on them).
CREATE FUNCTION statusdb_lock_status_keys(keys bigint[]) RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    IF current_setting('transaction_isolation') = 'repeatable read' THEN
        RAISE EXCEPTION 'component statuses cannot be re-derived in a REPEATABLE READ transaction'
            USING ERRCODE = 'invalid_transaction_state',
                  HINT = 'Use READ COMMITTED (the default) or SERIALIZABLE.';
    END IF;
    PERFORM pg_advisory_xact_lock(k)
    FROM (SELECT DISTINCT k FROM unnest(keys) AS u (k) WHERE k IS NOT NULL) AS d
    ORDER BY k;
END;
$$;

-- Re-derives the given components and records each real change. The caller passes the cause
-- (INCIDENT, MAINTENANCE, MANUAL) and, when known, the incident or window behind it.
CREATE FUNCTION statusdb_refresh_components(
    component_ids text[], cause text, incident_id text, maintenance_window_id text
) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    locked bigint[] := '{}';
    wanted bigint[];
    notified bigint;
BEGIN
    IF cardinality(component_ids) = 0 THEN
        RETURN;
    END IF;
    -- Lock the status keys of the components, then check (with a fresh snapshot) that no
    -- concurrent change moved a component to another team meanwhile; if one did, lock that
    -- key too and check again.
    LOOP
        SELECT coalesce(array_agg(DISTINCT statusdb_status_lock_key(c.team_id, c.id)), '{}')
        INTO wanted
        FROM status_page_component c
        WHERE c.id = ANY (component_ids);
        EXIT WHEN wanted <@ locked;
        PERFORM statusdb_lock_status_keys(wanted);
        locked := locked || wanted;
    END LOOP;

    PERFORM set_config('statusdb.deriving', 'on', true);
    WITH derived AS (
        SELECT d.component_id, d.current_status, d.derived_status
        FROM statusdb_component_derived_status d
        WHERE d.component_id = ANY (component_ids)
          AND d.current_status IS DISTINCT FROM d.derived_status
    ),
    changed AS (
        UPDATE status_page_component c
        SET current_status = derived.derived_status,
            status_updated_at = clock_timestamp()
        FROM derived
        WHERE c.id = derived.component_id
        RETURNING c.id, c.status_page_id, derived.current_status AS previous_status,
                  c.current_status AS new_status, c.status_updated_at
    )
    SELECT count(statusdb_log_status_change(changed.status_page_id, changed.id,
                                            changed.previous_status, changed.new_status, cause,
                                            incident_id, maintenance_window_id,
                                            changed.status_updated_at))
    INTO STRICT notified
    FROM changed;
    PERFORM set_config('statusdb.deriving', 'off', true);
END;
$$;

-- Re-derives every component driven by one team.
CREATE FUNCTION statusdb_refresh_team(team_id text, cause text, incident_id text) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    ids text[];
BEGIN
    IF team_id IS NULL THEN
        RETURN;
    END IF;
    -- Lock first, then look the components up with a fresh snapshot.
    PERFORM statusdb_lock_status_keys(ARRAY[statusdb_status_lock_key(team_id, NULL)]);
    SELECT coalesce(array_agg(c.id ORDER BY c.id), '{}')
    INTO ids
    FROM status_page_component c
    WHERE c.team_id = statusdb_refresh_team.team_id;
    PERFORM statusdb_refresh_components(ids, cause, incident_id, NULL);
END;
$$;

-- incident: any change that can move a status re-derives the team's components.
CREATE FUNCTION statusdb_incident_refresh_status() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.status IN ('OPEN', 'ACKNOWLEDGED') THEN
        IF TG_OP = 'UPDATE' AND OLD.team_id IS DISTINCT FROM NEW.team_id THEN
            PERFORM statusdb_lock_status_keys(ARRAY[statusdb_status_lock_key(OLD.team_id, NULL),
                                                    statusdb_status_lock_key(NEW.team_id, NULL)]);
        END IF;
        PERFORM statusdb_refresh_team(OLD.team_id, 'INCIDENT', OLD.id);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.status IN ('OPEN', 'ACKNOWLEDGED')
       AND (TG_OP = 'INSERT' OR OLD.team_id IS DISTINCT FROM NEW.team_id
            OR OLD.status NOT IN ('OPEN', 'ACKNOWLEDGED')) THEN
        PERFORM statusdb_refresh_team(NEW.team_id, 'INCIDENT', NEW.id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER incident_refresh_status
    AFTER INSERT OR DELETE OR UPDATE OF team_id, priority, status, service_identifier
    ON incident
    FOR EACH ROW EXECUTE FUNCTION statusdb_incident_refresh_status();

-- status_page_component: current_status is written only by the derivation. A component's own
-- inputs (team_id, service_identifier, manual_status) are re-derived right here, before the row
-- is written, so that INSERT/UPDATE ... RETURNING already shows the new status. manual_status
-- only matters, and may only change, while the component has no team.
CREATE FUNCTION statusdb_status_page_component_derive() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    previous text := CASE WHEN TG_OP = 'INSERT' THEN 'OPERATIONAL' ELSE OLD.current_status END;
    derived text;
BEGIN
    IF TG_OP = 'UPDATE' AND current_setting('statusdb.deriving', true) = 'on' THEN
        RETURN NEW;  -- written by statusdb_refresh_components
    END IF;
    IF NEW.current_status IS DISTINCT FROM previous AND TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'current_status of component % is derived and cannot be set directly', OLD.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'status_page_component_current_status_derived',
                  HINT = 'Set manual_status on a component without a team, or change incidents '
                         'and maintenance windows.';
    END IF;
    IF NEW.team_id IS NOT NULL
       AND NEW.manual_status IS DISTINCT FROM (CASE WHEN TG_OP = 'INSERT' THEN 'OPERATIONAL'
                                                    ELSE OLD.manual_status END) THEN
        RAISE EXCEPTION 'component % is driven by incidents of team %; its status cannot be set by hand',
                NEW.id, NEW.team_id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'status_page_component_manual_status_needs_no_team',
                  HINT = 'Clear team_id first to set the status by hand.';
    END IF;
    IF TG_OP = 'INSERT' THEN
        NEW.current_status := 'OPERATIONAL';  -- every component starts there; derived below
        NEW.status_updated_at := clock_timestamp();
        PERFORM statusdb_lock_status_keys(ARRAY[statusdb_status_lock_key(NEW.team_id, NEW.id)]);
    ELSIF (NEW.team_id, NEW.service_identifier, NEW.manual_status)
          IS NOT DISTINCT FROM (OLD.team_id, OLD.service_identifier, OLD.manual_status) THEN
        RETURN NEW;  -- no status input changed
    ELSE
        -- Hold the key the component leaves as well as the one it joins.
        PERFORM statusdb_lock_status_keys(ARRAY[statusdb_status_lock_key(OLD.team_id, OLD.id),
                                                statusdb_status_lock_key(NEW.team_id, NEW.id)]);
    END IF;
    derived := statusdb_derive_status(NEW.id, NEW.team_id, NEW.service_identifier,
                                      NEW.manual_status);
    IF derived IS DISTINCT FROM previous THEN
        NEW.current_status := derived;
        NEW.status_updated_at := clock_timestamp();
        -- A new row cannot be referenced yet: its first change is logged after insert.
        IF TG_OP = 'UPDATE' THEN
            PERFORM statusdb_log_status_change(NEW.status_page_id, NEW.id, previous, derived,
                                               'MANUAL', NULL, NULL, NEW.status_updated_at);
        END IF;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER status_page_component_derive
    BEFORE INSERT OR UPDATE ON status_page_component
    FOR EACH ROW EXECUTE FUNCTION statusdb_status_page_component_derive();

CREATE FUNCTION statusdb_status_page_component_log_initial_status() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM statusdb_log_status_change(NEW.status_page_id, NEW.id, 'OPERATIONAL',
                                       NEW.current_status, 'MANUAL', NULL, NULL,
                                       NEW.status_updated_at);
    RETURN NULL;
END;
$$;

CREATE TRIGGER status_page_component_log_initial_status
    AFTER INSERT ON status_page_component
    FOR EACH ROW WHEN (NEW.current_status <> 'OPERATIONAL')
    EXECUTE FUNCTION statusdb_status_page_component_log_initial_status();

-- maintenance_window: a window starts or stops counting when it enters or leaves IN_PROGRESS
-- with auto_update_status. (Its links are removed by cascade on delete, which the link trigger
-- below handles.)
CREATE FUNCTION statusdb_maintenance_window_refresh_status() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    ids text[];
BEGIN
    IF (OLD.status = 'IN_PROGRESS' AND OLD.auto_update_status)
       IS DISTINCT FROM (NEW.status = 'IN_PROGRESS' AND NEW.auto_update_status) THEN
        SELECT coalesce(array_agg(mc.component_id ORDER BY mc.component_id), '{}')
        INTO ids
        FROM maintenance_window_component mc
        WHERE mc.maintenance_window_id = NEW.id;
        PERFORM statusdb_refresh_components(ids, 'MAINTENANCE', NULL, NEW.id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER maintenance_window_refresh_status
    AFTER UPDATE OF status, auto_update_status ON maintenance_window
    FOR EACH ROW EXECUTE FUNCTION statusdb_maintenance_window_refresh_status();

-- maintenance_window_component: covering or uncovering a component of a running window.
CREATE FUNCTION statusdb_maintenance_window_component_refresh_status() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    -- Re-derive the uncovered component unless its window is there and not in effect (a
    -- window being deleted is already gone here).
    IF TG_OP IN ('UPDATE', 'DELETE') AND NOT EXISTS (
        SELECT 1 FROM maintenance_window w
        WHERE w.id = OLD.maintenance_window_id
          AND NOT (w.status = 'IN_PROGRESS' AND w.auto_update_status)
    ) THEN
        PERFORM statusdb_refresh_components(ARRAY[OLD.component_id], 'MAINTENANCE', NULL,
                                            OLD.maintenance_window_id);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM statusdb_refresh_components(ARRAY[NEW.component_id], 'MAINTENANCE', NULL,
                                            NEW.maintenance_window_id)
        FROM maintenance_window w
        WHERE w.id = NEW.maintenance_window_id AND w.status = 'IN_PROGRESS' AND w.auto_update_status;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER maintenance_window_component_refresh_status
    AFTER INSERT OR UPDATE OR DELETE ON maintenance_window_component
    FOR EACH ROW EXECUTE FUNCTION statusdb_maintenance_window_component_refresh_status();

-- For operators (after a restore or a bulk load): compares every component with a from-scratch
-- derivation and, when repair is true, corrects the drift (logged with cause MANUAL). Returns
-- the components that had drifted.
CREATE FUNCTION statusdb_recompute_statuses(repair boolean)
RETURNS TABLE (component_id text, current_status text, derived_status text)
LANGUAGE plpgsql
AS $$
DECLARE
    drifted text[];
BEGIN
    IF repair THEN
        PERFORM statusdb_lock_status_keys(
            ARRAY(SELECT statusdb_status_lock_key(c.team_id, c.id) FROM status_page_component c));
    END IF;
    SELECT coalesce(array_agg(d.component_id ORDER BY d.component_id), '{}')
    INTO drifted
    FROM statusdb_component_derived_status d
    WHERE d.current_status IS DISTINCT FROM d.derived_status;

    RETURN QUERY
    SELECT d.component_id, d.current_status, d.derived_status
    FROM statusdb_component_derived_status d
    WHERE d.component_id = ANY (drifted)
    ORDER BY d.component_id;

    IF repair THEN
        PERFORM statusdb_refresh_components(drifted, 'MANUAL', NULL, NULL);
    END IF;
END;
$$;
