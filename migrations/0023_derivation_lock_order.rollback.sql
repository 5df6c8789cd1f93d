-- Rollback of 0023: the row triggers of 0003, the slot locks of 0012 (REPEATABLE READ refused
-- again) and the repairs' isolation check of 0012/0020, as they were.

-- squawk-ignore-file ban-drop-function

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

DROP TRIGGER incident_refresh_status_insert ON incident;
DROP TRIGGER incident_refresh_status_update ON incident;
DROP TRIGGER incident_refresh_status_delete ON incident;
DROP TRIGGER maintenance_window_refresh_status ON maintenance_window;
DROP TRIGGER maintenance_window_component_refresh_status_insert ON maintenance_window_component;
DROP TRIGGER maintenance_window_component_refresh_status_update ON maintenance_window_component;
DROP TRIGGER maintenance_window_component_refresh_status_delete ON maintenance_window_component;

CREATE OR REPLACE FUNCTION statusdb_lock_status_keys(keys bigint[]) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
DECLARE
    slots bigint[];
    locked bigint;
BEGIN
    IF current_setting('transaction_isolation') = 'repeatable read' THEN
        RAISE EXCEPTION 'component statuses cannot be re-derived in a REPEATABLE READ transaction'
            USING ERRCODE = 'invalid_transaction_state',
                  HINT = 'Use READ COMMITTED (the default) or SERIALIZABLE.';
    END IF;
    -- Shared with every other derivation; the repair takes it FOR UPDATE. (Already holding it,
    -- in any mode, returns at once: that is the repair's own re-derivation.)
    PERFORM 1 FROM status_lock l WHERE l.slot = 0 FOR KEY SHARE;
    IF NOT FOUND THEN  -- first use
        INSERT INTO status_lock (slot) VALUES (0) ON CONFLICT DO NOTHING;
        PERFORM 1 FROM status_lock l WHERE l.slot = 0 FOR KEY SHARE;
    END IF;
    slots := ARRAY(SELECT DISTINCT 1 + (u.k & 4095) FROM unnest(keys) AS u (k)
                   WHERE u.k IS NOT NULL);
    PERFORM 1 FROM status_lock l WHERE l.slot = ANY (slots) ORDER BY l.slot FOR UPDATE;
    GET DIAGNOSTICS locked = ROW_COUNT;
    IF locked < cardinality(slots) THEN  -- first use of some slot
        INSERT INTO status_lock (slot) SELECT s FROM unnest(slots) AS u (s) ORDER BY s
        ON CONFLICT DO NOTHING;
        PERFORM 1 FROM status_lock l WHERE l.slot = ANY (slots) ORDER BY l.slot FOR UPDATE;
    END IF;
END;
$$;

COMMENT ON FUNCTION statusdb_lock_status_keys(keys bigint[]) IS 'Takes the status keys'' advisory locks in key order (after the shared cluster-wide key); refuses REPEATABLE READ.';

CREATE OR REPLACE FUNCTION statusdb_maintenance_window_component_refresh_status() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
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

COMMENT ON FUNCTION statusdb_maintenance_window_component_refresh_status() IS 'Trigger: covering or uncovering a component of a running window re-derives it.';

CREATE OR REPLACE FUNCTION statusdb_maintenance_window_refresh_status() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
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

COMMENT ON FUNCTION statusdb_maintenance_window_refresh_status() IS 'Trigger: a window entering or leaving IN_PROGRESS (with auto_update_status) re-derives its components.';

CREATE OR REPLACE FUNCTION statusdb_incident_refresh_status() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
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

COMMENT ON FUNCTION statusdb_incident_refresh_status() IS 'Trigger: an incident change that can move a status re-derives its team''s components.';

CREATE OR REPLACE FUNCTION statusdb_recompute_statuses(repair boolean) RETURNS TABLE(component_id text, current_status text, derived_status text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
DECLARE
    drifted text[];
BEGIN
    IF repair THEN
        IF current_setting('transaction_isolation') = 'repeatable read' THEN
            RAISE EXCEPTION 'component statuses cannot be re-derived in a REPEATABLE READ '
                            'transaction'
                USING ERRCODE = 'invalid_transaction_state',
                      HINT = 'Use READ COMMITTED (the default) or SERIALIZABLE.';
        END IF;
        PERFORM 1 FROM status_lock l WHERE l.slot = 0 FOR UPDATE;
        IF NOT FOUND THEN  -- first use
            INSERT INTO status_lock (slot) VALUES (0) ON CONFLICT DO NOTHING;
            PERFORM 1 FROM status_lock l WHERE l.slot = 0 FOR UPDATE;
        END IF;
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

    IF repair AND cardinality(drifted) > 0 THEN
        INSERT INTO status_repair (xid) VALUES (pg_current_xact_id()) ON CONFLICT DO NOTHING;
        PERFORM statusdb_rederive_components(drifted, 'MANUAL', NULL, NULL);
        DELETE FROM status_repair r WHERE r.xid = pg_current_xact_id();
    END IF;
    IF repair THEN
        PERFORM 1 FROM statusdb_recompute_group_statuses(true);
    END IF;
END;
$$;

COMMENT ON FUNCTION statusdb_recompute_statuses(repair boolean) IS 'For operators: compares every component with a from-scratch derivation; with true, repairs the drift (logged as MANUAL). Returns the drifted components.';

CREATE OR REPLACE FUNCTION statusdb_recompute_group_statuses(repair boolean) RETURNS TABLE(group_id text, current_status text, derived_status text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
DECLARE
    drifted text[];
BEGIN
    IF repair THEN
        IF current_setting('transaction_isolation') = 'repeatable read' THEN
            RAISE EXCEPTION 'group statuses cannot be re-derived in a REPEATABLE READ transaction'
                USING ERRCODE = 'invalid_transaction_state',
                      HINT = 'Use READ COMMITTED (the default) or SERIALIZABLE.';
        END IF;
        PERFORM 1 FROM status_lock l WHERE l.slot = 0 FOR UPDATE;
        IF NOT FOUND THEN  -- first use
            INSERT INTO status_lock (slot) VALUES (0) ON CONFLICT DO NOTHING;
            PERFORM 1 FROM status_lock l WHERE l.slot = 0 FOR UPDATE;
        END IF;
    END IF;
    SELECT coalesce(array_agg(d.group_id ORDER BY d.group_id), '{}')
    INTO drifted
    FROM statusdb_group_derived_status d
    WHERE d.current_status IS DISTINCT FROM d.derived_status;

    RETURN QUERY
    SELECT d.group_id, d.current_status, d.derived_status
    FROM statusdb_derive_group_statuses(drifted) AS d
    ORDER BY d.group_id;

    IF repair AND cardinality(drifted) > 0 THEN
        INSERT INTO status_repair (xid) VALUES (pg_current_xact_id()) ON CONFLICT DO NOTHING;
        PERFORM statusdb_refresh_groups(drifted);
        DELETE FROM status_repair r WHERE r.xid = pg_current_xact_id();
    END IF;
END;
$$;

COMMENT ON FUNCTION statusdb_recompute_group_statuses(repair boolean) IS 'For operators: compares every group with a from-scratch derivation; with true, repairs the drift. Returns the drifted groups.';

CREATE TRIGGER incident_refresh_status AFTER INSERT OR DELETE OR UPDATE OF team_id, priority, status, service_identifier ON incident FOR EACH ROW EXECUTE FUNCTION statusdb_incident_refresh_status();
CREATE TRIGGER maintenance_window_refresh_status AFTER UPDATE OF status, auto_update_status ON maintenance_window FOR EACH ROW EXECUTE FUNCTION statusdb_maintenance_window_refresh_status();
CREATE TRIGGER maintenance_window_component_refresh_status AFTER INSERT OR DELETE OR UPDATE ON maintenance_window_component FOR EACH ROW EXECUTE FUNCTION statusdb_maintenance_window_component_refresh_status();

COMMENT ON TABLE status_lock IS 'Owner-only rows the status derivation locks (0 = all statuses, 1..4096 = status keys).';
COMMENT ON COLUMN status_lock.slot IS '0: every status (shared by derivations, exclusive for the repair); 1..4096: hashed status keys.';

CREATE OR REPLACE FUNCTION statusdb_refresh_groups(group_ids text[]) RETURNS void
    LANGUAGE plpgsql
    SET plan_cache_mode TO 'force_generic_plan'
    AS $$
DECLARE
    locked text[] := '{}';
    wanted text[];
    notified bigint;
BEGIN
    IF cardinality(group_ids) = 0 THEN
        RETURN;
    END IF;
    PERFORM statusdb_lock_status_keys('{}');
    LOOP
        wanted := statusdb_group_closure(group_ids);
        EXIT WHEN wanted <@ locked;
        PERFORM 1 FROM component_group g WHERE g.id = ANY (wanted) ORDER BY g.id
        FOR NO KEY UPDATE;
        locked := locked || wanted;
        group_ids := wanted;
    END LOOP;
    WITH derived AS (
        SELECT d.group_id, d.current_status, d.derived_status
        FROM statusdb_derive_group_statuses(locked) AS d
        WHERE d.current_status IS DISTINCT FROM d.derived_status
    ),
    changed AS (
        UPDATE component_group g
        SET current_status = derived.derived_status,
            status_updated_at = clock_timestamp()
        FROM derived
        WHERE g.id = ANY (locked)
          AND g.id = derived.group_id
        RETURNING g.id, g.status_page_id, derived.current_status AS previous_status,
                  g.current_status AS new_status, g.status_updated_at
    ),
    logged AS (
        INSERT INTO component_group_status_change (status_page_id, group_id, previous_status,
                                                   new_status, changed_at)
        SELECT changed.status_page_id, changed.id, changed.previous_status, changed.new_status,
               changed.status_updated_at
        FROM changed
        ORDER BY changed.id
        RETURNING component_group_status_change.seq
    )
    SELECT count(pg_notify('statusdb_status_change', logged.seq::text))
    INTO STRICT notified
    FROM logged;
END;
$$;

CREATE OR REPLACE FUNCTION statusdb_maintenance_window_component_snapshot() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
BEGIN
    -- The window's page (a window deleted with its components: its own trigger refreshes it).
    IF TG_OP = 'INSERT' THEN
        PERFORM statusdb_page_snapshot_refresh(ARRAY(
            SELECT DISTINCT w.status_page_id
            FROM maintenance_window w
            WHERE w.id IN (SELECT n.maintenance_window_id FROM new_rows n)));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM statusdb_page_snapshot_refresh(ARRAY(
            SELECT DISTINCT w.status_page_id
            FROM maintenance_window w
            WHERE w.id IN (SELECT o.maintenance_window_id FROM old_rows o)));
    ELSE
        PERFORM statusdb_page_snapshot_refresh(ARRAY(
            SELECT DISTINCT w.status_page_id
            FROM maintenance_window w
            WHERE w.id IN (SELECT n.maintenance_window_id FROM new_rows n
                           UNION SELECT o.maintenance_window_id FROM old_rows o)));
    END IF;
    RETURN NULL;
END;
$$;

DROP FUNCTION statusdb_lock_maintenance_windows(text[]);
DROP FUNCTION statusdb_wait_for_components(text[]);
DROP FUNCTION statusdb_lock_windows(text[]);
DROP FUNCTION statusdb_lock_components(text[]);
DROP FUNCTION statusdb_lock_slots(bigint[]);
DROP FUNCTION statusdb_take_slots(bigint[]);
