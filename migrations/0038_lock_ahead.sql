-- statusdb 0038: a lock-ahead for transactions of several status-input statements, and the
-- derivation triggers' NOWAIT back-off ends in a retryable error (issue 28).
-- depends: 0037_open_incident_floor
--
-- Deadlocks of the randomized plain-SQL stress (tests/test_derivation_stress.py), classified
-- from the server log (bench/README.md, "Issue 28: deadlocks of the plain-SQL stress"):
--   * single statements take every lock in the global order (CONTRIBUTING.md, "Lock order");
--     the few left (about 1 per 1,000) are the executor's own row locks of a statement racing
--     another statement's cascade (a component deleted while its group is deleted);
--   * in transactions of several statements nearly all are statusdb's: the slots and the
--     derived component rows a first statement's triggers took are held (they must be, until
--     commit: a later derivation of the same key has to see this one's commit) while a second
--     statement takes slots that come earlier in the order; two transactions opening
--     incidents of teams A then B, and B then A, deadlock although their own rows (two new
--     incidents each) never conflict. A trigger cannot take a later statement's locks ahead.
--
-- So a transaction that will run several status-input statements can now take every slot its
-- statements' triggers will take, up front, in the global order, with one call:
-- statusdb_lock_status_inputs(window_ids, team_ids, component_ids): slot 0 shared, the
-- windows' slots (ascending), then the status keys of the teams, of the components and of the
-- windows' components as they are now (ascending; re-checked until no component moved). The triggers then find
-- their slots held (statusdb_take_slots writes a slot once per transaction) and two such
-- transactions queue on their first common slot instead of deadlocking later. statusdb_app may
-- call it: it locks what writing those windows, incidents and components would lock, no more
-- (at most 10000 ids per argument, as statusdb_lock_maintenance_windows). Like every slot
-- lock, under REPEATABLE READ / SERIALIZABLE a slot written after the snapshot is refused with
-- 40001.
--
-- The back-off (0023): a derivation that finds a component row taken releases its slots,
-- waits for the row's writer and starts again; after 50 rounds it raised the NOWAIT's
-- lock_not_available (55P03), which no retry loop retries and statusdb does not translate.
-- It now raises serialization_failure (40001, Retryable). Redefined, from 0023's bodies with
-- only that branch changed: statusdb_maintenance_window_component_refresh_status(),
-- statusdb_maintenance_window_refresh_status(), statusdb_incident_refresh_status().
--
-- Deleting a component cascades to its links, whose statement trigger took the windows' slots
-- after the executor had locked the component's row: out of the order, and pointless (the
-- component is gone: nothing to re-derive). statusdb_maintenance_window_component_refresh_status
-- now skips the removed links of components that no longer exist (as 0023 made its snapshot
-- twin do): a component's delete takes no window slot. And an unlink whose component is being
-- deleted (the delete holds the component's row and cascades to the links the unlink holds)
-- refuses at once with 40001 instead of waiting for the row in the back-off (a single-statement
-- deadlock of the stress), as 0023's group roll-up refuses for a group being deleted.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

CREATE FUNCTION statusdb_lock_status_inputs(window_ids text[], team_ids text[],
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
REVOKE EXECUTE ON FUNCTION statusdb_lock_status_inputs(text[], text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION statusdb_lock_status_inputs(text[], text[], text[]) TO statusdb_app;
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

CREATE OR REPLACE FUNCTION statusdb_maintenance_window_refresh_status() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    windows text[];
    ids text[];
    win text;
    stage text;
    attempts integer := 0;
BEGIN
    SELECT array_agg(n.id ORDER BY n.id)
    INTO windows
    FROM new_rows n
    JOIN old_rows o ON o.id = n.id
    WHERE (o.status = 'IN_PROGRESS' AND o.auto_update_status)
          IS DISTINCT FROM (n.status = 'IN_PROGRESS' AND n.auto_update_status);
    IF windows IS NULL THEN
        RETURN NULL;
    END IF;
    LOOP
        stage := 'slots';
        BEGIN
            PERFORM statusdb_lock_windows(windows);
            -- The links as they are once the windows' slots are held (a link writer in flight
            -- has committed, or waits for this transaction).
            SELECT array_agg(DISTINCT mc.component_id)
            INTO ids
            FROM maintenance_window_component mc
            WHERE mc.maintenance_window_id = ANY (windows);
            IF ids IS NULL THEN
                RETURN NULL;
            END IF;
            PERFORM statusdb_lock_components(ids);
            stage := 'rows';
            PERFORM 1 FROM status_page_component c
            WHERE c.id = ANY (ids) ORDER BY c.id FOR NO KEY UPDATE NOWAIT;
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
            PERFORM statusdb_wait_for_components(ids);
        END;
    END LOOP;
    FOREACH win IN ARRAY windows LOOP
        PERFORM statusdb_rederive_components(
            ARRAY(SELECT mc.component_id
                  FROM maintenance_window_component mc
                  WHERE mc.maintenance_window_id = win
                  ORDER BY mc.component_id),
            'MAINTENANCE', NULL, win);
    END LOOP;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION statusdb_incident_refresh_status() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    moved_t text[];
    moved_i text[];
    team text;
    first_incident text;
    ids text[];
    stage text;
    attempts integer := 0;
BEGIN
    -- (team, incident) of each change that can move a status: an active incident changed or
    -- gone (its old team), an incident becoming active or moving to another team (its new one).
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(n.team_id), array_agg(n.id)
        INTO moved_t, moved_i
        FROM new_rows n
        WHERE n.status IN ('OPEN', 'ACKNOWLEDGED') AND n.team_id IS NOT NULL;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(o.team_id), array_agg(o.id)
        INTO moved_t, moved_i
        FROM old_rows o
        WHERE o.status IN ('OPEN', 'ACKNOWLEDGED') AND o.team_id IS NOT NULL;
    ELSE
        SELECT array_agg(m.team_id), array_agg(m.id)
        INTO moved_t, moved_i
        FROM old_rows o
        JOIN new_rows n ON n.id = o.id
        CROSS JOIN LATERAL (
            SELECT o.team_id, o.id
            WHERE o.status IN ('OPEN', 'ACKNOWLEDGED')
              AND (o.team_id, o.priority, o.status, o.service_identifier)
                  IS DISTINCT FROM (n.team_id, n.priority, n.status, n.service_identifier)
            UNION ALL
            SELECT n.team_id, n.id
            WHERE n.status IN ('OPEN', 'ACKNOWLEDGED')
              AND (o.team_id IS DISTINCT FROM n.team_id
                   OR o.status NOT IN ('OPEN', 'ACKNOWLEDGED'))
        ) AS m (team_id, id)
        WHERE m.team_id IS NOT NULL;
    END IF;
    IF moved_t IS NULL THEN
        RETURN NULL;
    END IF;
    LOOP
        stage := 'slots';
        BEGIN
            -- 4. Every team's key, in slot order, before any team is judged.
            PERFORM statusdb_lock_status_keys(ARRAY(
                SELECT DISTINCT statusdb_status_lock_key(u.t, NULL)
                FROM unnest(moved_t) AS u (t)));
            -- 5. The teams' components (no component joins or leaves a team while its key is
            -- held), or back off.
            ids := ARRAY(SELECT c.id FROM status_page_component c
                         WHERE c.team_id = ANY (moved_t) ORDER BY c.id);
            stage := 'rows';
            PERFORM 1 FROM status_page_component c
            WHERE c.id = ANY (ids) ORDER BY c.id FOR NO KEY UPDATE NOWAIT;
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
            PERFORM statusdb_wait_for_components(ids);
        END;
    END LOOP;
    -- Each team's components, logged with the team's first incident of the statement.
    FOR team, first_incident IN
        SELECT u.t, min(u.i) FROM unnest(moved_t, moved_i) AS u (t, i) GROUP BY u.t ORDER BY u.t
    LOOP
        PERFORM statusdb_rederive_components(
            ARRAY(SELECT c.id FROM status_page_component c
                  WHERE c.team_id = team ORDER BY c.id),
            'INCIDENT', first_incident, NULL);
    END LOOP;
    RETURN NULL;
END;
$$;
