-- Reverts 0011_global_status_lock: back to 0003's functions (with 0008's security settings).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

CREATE OR REPLACE FUNCTION statusdb_lock_status_keys(keys bigint[]) RETURNS void
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
