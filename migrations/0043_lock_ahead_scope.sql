-- statusdb 0043: the lock-ahead keeps to the session's team scope (issue 28).
-- depends: 0042_fan_out_covering_locale
--
-- statusdb_lock_status_inputs (0038) is SECURITY DEFINER and statusdb_app may call it, but it
-- ignored statusdb.team_id: a session scoped to team A could lock team B's status key, B's
-- windows' slots and B's components' keys and hold them to commit, stalling every writer of B
-- (their triggers queue on those slots). CONTRIBUTING rule 15: owner functions the app may call
-- filter by statusdb_current_team() when it is set, or refuse.
--
-- Refused, not filtered: a caller that names another team's id has a bug (its writes to those
-- rows would not reach them either: the policies hide them), and silently locking less than
-- asked would let its later statements take those slots out of order, the deadlocks the
-- lock-ahead exists to prevent. So under a scope every id must be the scoped team (team_ids),
-- a window of one of its pages (window_ids), or a component of one of its pages that follows
-- it or no team (component_ids, as the policies let it write); otherwise insufficient_privilege
-- (42501, statusdb's Unauthorized), before any lock is taken. An id that does not exist is
-- refused the same way (a slot is a hash of the id: an unknown id could still pick another
-- team's slot). Unscoped sessions: unchanged.
--
-- Replaced in place, not versioned: it is a security fix that makes the function keep rule 15,
-- which every app-callable owner function promises; a new name would leave the old one open.
-- Redefined (from 0038's body, only the scope check added before the loop):
-- statusdb_lock_status_inputs(text[], text[], text[]).
--
-- A drift of one statement (found writing the lock-ahead into maintenance.update): a running
-- window's auto_update_status switched off and its links replaced in the same statement
-- (maintenance.update(..., auto_update_status=False, component_ids=[...]), or any writable CTE
-- doing both) left the unlinked components UNDER_MAINTENANCE. The links' trigger judges after
-- the statement: a removed link of a window not in effect uncovers nothing, it reasoned, as the
-- window's own trigger re-derives the window's components when its effect changes; but that
-- trigger re-derives the links that are left, and the removed ones were nobody's. A removed
-- link is now judged due also when the window was changed by this transaction (its updated_at
-- is now(), which statusdb_touch_updated_at stamps on every update): at worst a re-derivation
-- that changes nothing. Redefined (from 0038's body, only that condition added):
-- statusdb_maintenance_window_component_refresh_status().

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
    scope text := statusdb_current_team();
    outside text;
BEGIN
    IF cardinality(window_ids) > 10000 OR cardinality(team_ids) > 10000
       OR cardinality(component_ids) > 10000 THEN
        RAISE EXCEPTION 'at most 10000 windows, teams and components at once'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- 0043: a session scoped to a team (CONTRIBUTING rule 15) locks only what it could write:
    -- its own team's key, its pages' windows, its pages' components that follow it or no team.
    -- Anything else is refused before any lock is taken (an id of another team, or none).
    IF scope IS NOT NULL THEN
        SELECT u.t INTO outside FROM unnest(team_ids) AS u (t)
        WHERE u.t IS NOT NULL AND u.t <> scope
        LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'team_ids: % is not the team this session is scoped to', outside
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'A scoped session locks only its own team''s status inputs.';
        END IF;
        SELECT u.w INTO outside FROM unnest(window_ids) AS u (w)
        WHERE u.w IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM maintenance_window mw
                          JOIN status_page p ON p.id = mw.status_page_id
                          WHERE mw.id = u.w AND p.team_id = scope)
        LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'window_ids: % is not a maintenance window of this session''s team',
                            outside
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'A scoped session locks only its own team''s status inputs.';
        END IF;
        SELECT u.c INTO outside FROM unnest(component_ids) AS u (c)
        WHERE u.c IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM status_page_component c
                          JOIN status_page p ON p.id = c.status_page_id
                          WHERE c.id = u.c AND p.team_id = scope
                            AND (c.team_id IS NULL OR c.team_id = scope))
        LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'component_ids: % is not a component of this session''s team', outside
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'A scoped session locks only its own team''s status inputs.';
        END IF;
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
    'order (at most 10000 ids each; 0038). A session scoped to a team may name only its team, '
    'its pages'' windows and its components (else 42501; 0043).';

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
                    WHERE mw.id = o.w AND NOT (mw.status = 'IN_PROGRESS' AND mw.auto_update_status)
                      -- 0043: unless this transaction changed the window (touch_updated_at
                      -- stamps now()): it may have left its effect in this very statement, whose
                      -- window trigger re-derives only the links that are left.
                      AND mw.updated_at <> now())
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
    'components covered or uncovered under their status keys (0043: a removed link of a window '
    'this transaction changed is always judged).';
