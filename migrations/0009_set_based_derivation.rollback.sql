-- Reverts 0009_set_based_derivation: statusdb_refresh_components as 0003 made it, and
-- statusdb_check_component_ids back to the default plan caching.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';
-- Rolling back drops what the forward migration created; that is its purpose.
-- squawk-ignore-file ban-drop-function

CREATE OR REPLACE FUNCTION statusdb_refresh_components(
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

DROP FUNCTION statusdb_derive_statuses(text[]);

ALTER FUNCTION statusdb_check_component_ids(text, text[], text) RESET plan_cache_mode;
