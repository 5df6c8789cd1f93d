-- statusdb 0043 rollback: statusdb_lock_status_inputs as 0038 made it (no team scope check),
-- statusdb_maintenance_window_component_refresh_status as 0038 made it.

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

CREATE OR REPLACE FUNCTION statusdb_maintenance_window_component_refresh_status() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    old_w text[];
    old_c text[];
    new_w text[];
    new_c text[];
    due_w text[];
    due_c text[];
    win text;
    stage text;
    attempts integer := 0;
    busy text[];
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        -- 0038: not the links of a component deleted by this statement (ON DELETE CASCADE):
        -- there is nothing left to judge, and its windows' slots would be taken after the
        -- component's row, out of order (deadlocks with the windows' writers).
        SELECT array_agg(o.maintenance_window_id), array_agg(o.component_id)
        INTO old_w, old_c
        FROM old_rows o
        WHERE EXISTS (SELECT 1 FROM status_page_component c WHERE c.id = o.component_id);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        SELECT array_agg(n.maintenance_window_id), array_agg(n.component_id)
        INTO new_w, new_c
        FROM new_rows n;
    END IF;
    IF old_w IS NULL AND new_w IS NULL THEN
        RETURN NULL;
    END IF;
    LOOP
        stage := 'slots';
        BEGIN
            -- 3. The windows' slots, before judging.
            PERFORM statusdb_lock_windows(coalesce(old_w, '{}') || coalesce(new_w, '{}'));
            -- Judged now (a fresh snapshot under READ COMMITTED): a removed link uncovers its
            -- component unless its window is there and not in effect (a window being deleted
            -- is gone already); an added link covers it if its window is in effect.
            SELECT array_agg(d.w ORDER BY d.w, d.c), array_agg(d.c ORDER BY d.w, d.c)
            INTO due_w, due_c
            FROM (
                SELECT o.w, o.c
                FROM unnest(old_w, old_c) AS o (w, c)
                WHERE NOT EXISTS (
                    SELECT 1 FROM maintenance_window mw
                    WHERE mw.id = o.w AND NOT (mw.status = 'IN_PROGRESS' AND mw.auto_update_status))
                UNION
                SELECT n.w, n.c
                FROM unnest(new_w, new_c) AS n (w, c)
                JOIN maintenance_window mw ON mw.id = n.w
                WHERE mw.status = 'IN_PROGRESS' AND mw.auto_update_status
            ) AS d;
            IF due_c IS NULL THEN
                RETURN NULL;
            END IF;
            -- 4. Every status key at once; 5. the rows, or back off.
            PERFORM statusdb_lock_components(due_c);
            stage := 'rows';
            PERFORM 1 FROM status_page_component c
            WHERE c.id = ANY (due_c) ORDER BY c.id FOR NO KEY UPDATE NOWAIT;
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
            -- 0038: a component being deleted (locked FOR UPDATE, which KEY SHARE waits for)
            -- will delete the links this statement holds (ON DELETE CASCADE): waiting for it
            -- is a deadlock, so refuse at once, retryably (a look that keeps no lock).
            BEGIN
                busy := ARRAY(SELECT u.id FROM unnest(due_c) AS u (id)
                              EXCEPT
                              SELECT f.id FROM (SELECT c.id FROM status_page_component c
                                                WHERE c.id = ANY (due_c)
                                                FOR KEY SHARE SKIP LOCKED) AS f);
                RAISE EXCEPTION 'released' USING ERRCODE = 'SDB01';
            EXCEPTION WHEN SQLSTATE 'SDB01' THEN
                NULL;
            END;
            IF cardinality(busy) > 0 THEN
                RAISE EXCEPTION 'component % is being deleted by another transaction', busy[1]
                    USING ERRCODE = 'serialization_failure',
                          HINT = 'Retry the transaction.';
            END IF;
            PERFORM statusdb_wait_for_components(due_c);
        END;
    END LOOP;
    FOR win IN SELECT DISTINCT u.w FROM unnest(due_w) AS u (w) ORDER BY u.w LOOP
        PERFORM statusdb_rederive_components(
            ARRAY(SELECT DISTINCT u.c FROM unnest(due_w, due_c) AS u (w, c) WHERE u.w = win),
            'MAINTENANCE', NULL, win);
    END LOOP;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION statusdb_maintenance_window_component_refresh_status() IS
    'Statement trigger (0023): locks the changed links'' windows, then judges and re-derives the '
    'components covered or uncovered under their status keys.';
