-- statusdb 0011: the from-scratch repair takes one lock instead of one per status key.
-- depends: 0010_fan_out_indexes
--
-- recompute(repair => true) used to lock every status key (one per team, one per component
-- without a team) so that no re-derivation could run meanwhile. On a large installation that is
-- thousands of advisory locks in one transaction, past the lock table's default capacity
-- (max_locks_per_transaction = 64 x max_connections slots): "out of shared memory".
--
-- Now every re-derivation first takes one cluster-wide key in SHARE mode (they never wait for
-- each other on it), and the repair takes that key in EXCLUSIVE mode: it waits for the
-- re-derivations in flight to commit, keeps new ones out until it commits, and holds a single
-- lock whatever the number of components.

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
