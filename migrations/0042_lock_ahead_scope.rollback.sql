-- statusdb 0042 rollback: statusdb_lock_status_inputs as 0038 made it (no team scope check).

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

CREATE OR REPLACE FUNCTION statusdb_lock_status_inputs(window_ids text[], team_ids text[],
                                            component_ids text[]) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    linked text[];
    wanted bigint[];
    attempts integer := 0;
BEGIN
    IF cardinality(window_ids) > 10000 OR cardinality(team_ids) > 10000
       OR cardinality(component_ids) > 10000 THEN
        RAISE EXCEPTION 'at most 10000 windows, teams and components at once'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    LOOP
        BEGIN
            -- 2-3. Slot 0, then the windows' slots.
            PERFORM statusdb_lock_windows(coalesce(window_ids, '{}'));
            -- 4. In one ascending pass, the keys of the teams, of the components (their
            -- team's, or their own) and of the components linked to the windows (as they are
            -- once the windows' slots are held: a window's trigger re-derives those).
            linked := ARRAY(SELECT u.id FROM unnest(component_ids) AS u (id)
                            WHERE u.id IS NOT NULL
                            UNION
                            SELECT mc.component_id FROM maintenance_window_component mc
                            WHERE mc.maintenance_window_id = ANY (window_ids));
            wanted := ARRAY(
                SELECT statusdb_status_lock_key(u.t, NULL) FROM unnest(team_ids) AS u (t)
                WHERE u.t IS NOT NULL
                UNION
                SELECT statusdb_status_lock_key(c.team_id, c.id) FROM status_page_component c
                WHERE c.id = ANY (linked));
            PERFORM statusdb_lock_status_keys(wanted);
            -- A component that moved to another key while this waited (a fresh snapshot):
            -- taking that key now would break the order, so give every slot back (the
            -- subtransaction) and start again; after 10 rounds take it out of order.
            EXIT WHEN attempts >= 10 OR NOT EXISTS (
                SELECT 1 FROM status_page_component c
                WHERE c.id = ANY (linked)
                  AND statusdb_status_lock_key(c.team_id, c.id) <> ALL (wanted));
            RAISE EXCEPTION 'moved' USING ERRCODE = 'SDB02';
        EXCEPTION WHEN SQLSTATE 'SDB02' THEN
            attempts := attempts + 1;
        END;
    END LOOP;
    PERFORM statusdb_lock_components(linked);
END;
$$;
COMMENT ON FUNCTION statusdb_lock_status_inputs(text[], text[], text[]) IS
    'Lock-ahead for a transaction of several status-input statements: the status_lock slots '
    'of the windows, then the status keys of the teams and components, in the global lock '
    'order (at most 10000 ids each; 0038).';
