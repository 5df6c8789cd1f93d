-- Reverts 0012_trust_boundaries: the functions as 0003, 0008, 0009 and 0011 left them (session
-- flags, advisory locks, the JSON payload), and none of the new tables, policies or triggers.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';
-- Rolling back drops what the forward migration created; that is its purpose.
-- squawk-ignore-file ban-drop-function, ban-drop-table

-- 0002 (statusdb_check_component_ids with 0009's plan_cache_mode)
CREATE OR REPLACE FUNCTION statusdb_maintenance_window_component_same_page() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1
        FROM maintenance_window w
        JOIN status_page_component c ON c.status_page_id = w.status_page_id
        WHERE w.id = NEW.maintenance_window_id AND c.id = NEW.component_id
    ) THEN
        RAISE EXCEPTION 'component % is not on the page of maintenance window %',
                NEW.component_id, NEW.maintenance_window_id
            USING ERRCODE = 'foreign_key_violation',
                  CONSTRAINT = 'maintenance_window_component_same_page';
    END IF;
    RETURN NEW;
END;
$$;

CREATE OR REPLACE FUNCTION statusdb_check_component_ids(page_id text, ids text[], constraint_name text)
RETURNS void
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    missing text;
BEGIN
    IF cardinality(ids) = 0 THEN
        RETURN;
    END IF;
    PERFORM 1
    FROM status_page_component c
    WHERE c.id = ANY (ids)
    ORDER BY c.id
    FOR KEY SHARE;
    SELECT i INTO missing
    FROM unnest(ids) AS i
    WHERE NOT EXISTS (
        SELECT 1 FROM status_page_component c WHERE c.id = i AND c.status_page_id = page_id
    )
    LIMIT 1;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'component % is not a component of status page %', missing, page_id
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = constraint_name;
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION statusdb_status_page_component_forget_ids() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE status_subscriber s
    SET component_ids = array_remove(s.component_ids, OLD.id),
        is_active = s.is_active AND cardinality(array_remove(s.component_ids, OLD.id)) > 0
    WHERE s.status_page_id = OLD.status_page_id AND s.component_ids @> ARRAY[OLD.id];

    UPDATE status_incident i
    SET affected_component_ids = array_remove(i.affected_component_ids, OLD.id)
    WHERE i.status_page_id = OLD.status_page_id AND i.affected_component_ids @> ARRAY[OLD.id];
    RETURN OLD;
END;
$$;

DROP TRIGGER maintenance_window_check_page_fixed ON maintenance_window;
DROP FUNCTION statusdb_maintenance_window_check_page_fixed();
DROP TRIGGER status_page_component_check_page_fixed ON status_page_component;
DROP FUNCTION statusdb_status_page_component_check_page_fixed();

DROP POLICY status_change_scoped_team ON status_change;
DROP POLICY status_page_component_scoped_team ON status_page_component;

-- 0011
CREATE OR REPLACE FUNCTION statusdb_lock_status_keys(keys bigint[]) RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    IF current_setting('transaction_isolation') = 'repeatable read' THEN
        RAISE EXCEPTION 'component statuses cannot be re-derived in a REPEATABLE READ transaction'
            USING ERRCODE = 'invalid_transaction_state',
                  HINT = 'Use READ COMMITTED (the default) or SERIALIZABLE.';
    END IF;
    IF current_setting('statusdb.all_statuses_locked', true) = 'on' THEN
        RETURN;  -- this transaction holds the exclusive key: nothing else can re-derive
    END IF;
    -- Shared with every other re-derivation, exclusive only for statusdb_recompute_statuses.
    PERFORM pg_advisory_xact_lock_shared(hashtextextended('statusdb.status:all', 0));
    PERFORM pg_advisory_xact_lock(k)
    FROM (SELECT DISTINCT k FROM unnest(keys) AS u (k) WHERE k IS NOT NULL) AS d
    ORDER BY k;
END;
$$;

-- 0003
CREATE OR REPLACE FUNCTION statusdb_log_status_change(
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

-- 0009
CREATE OR REPLACE FUNCTION statusdb_refresh_components(
    component_ids text[], cause text, incident_id text, maintenance_window_id text
) RETURNS void
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
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
        FROM statusdb_derive_statuses(component_ids) AS d
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
                  c.current_status AS new_status, c.status_updated_at
    ),
    logged AS (
        INSERT INTO status_change (status_page_id, component_id, previous_status, new_status,
                                   cause, incident_id, maintenance_window_id, changed_at)
        SELECT changed.status_page_id, changed.id, changed.previous_status, changed.new_status,
               statusdb_refresh_components.cause, statusdb_refresh_components.incident_id,
               statusdb_refresh_components.maintenance_window_id, changed.status_updated_at
        FROM changed
        ORDER BY changed.id
        RETURNING status_change.id, status_change.status_page_id, status_change.component_id,
                  status_change.new_status
    )
    -- The same announcement statusdb_log_status_change makes, one per logged change.
    SELECT count(pg_notify('statusdb_status_change', json_build_object(
               'status_page_id', logged.status_page_id,
               'component_id', logged.component_id,
               'new_status', logged.new_status,
               'change_id', logged.id)::text))
    INTO STRICT notified
    FROM logged;
    PERFORM set_config('statusdb.deriving', 'off', true);
END;
$$;

-- 0003, with 0008's security settings
CREATE OR REPLACE FUNCTION statusdb_status_page_component_derive() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
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

-- 0011
CREATE OR REPLACE FUNCTION statusdb_recompute_statuses(repair boolean)
RETURNS TABLE (component_id text, current_status text, derived_status text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    drifted text[];
BEGIN
    IF repair THEN
        -- The isolation check, then the one lock that keeps every re-derivation out.
        PERFORM statusdb_lock_status_keys('{}');
        PERFORM pg_advisory_xact_lock(hashtextextended('statusdb.status:all', 0));
        -- Held to the end of the transaction, so the per-key locks are not needed until then.
        PERFORM set_config('statusdb.all_statuses_locked', 'on', true);
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

DROP FUNCTION statusdb_rederive_components(text[], text, text, text);

-- EXECUTE was PUBLIC's, as for every function PostgreSQL creates.
REVOKE EXECUTE ON FUNCTION statusdb_lock_status_keys(bigint[]) FROM statusdb_app;
GRANT EXECUTE ON FUNCTION
    statusdb_lock_status_keys(bigint[]),
    statusdb_log_status_change(text, text, text, text, text, text, text, timestamptz),
    statusdb_refresh_components(text[], text, text, text),
    statusdb_refresh_team(text, text, text)
TO PUBLIC;

DROP TABLE status_repair;
DROP TABLE status_lock;
