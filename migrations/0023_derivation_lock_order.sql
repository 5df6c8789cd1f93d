-- statusdb 0023: every change of a status input takes the same locks, in one global order,
-- before it judges; writers with an older snapshot derive from current state or are refused.
-- depends: 0022_page_history_postmortems
--
-- Issue 28. Three races left statuses wrong for plain-SQL clients:
--   * linking a component to a window while another session starts the window (or switches its
--     auto_update_status on), and unlinking it meanwhile: each row trigger judged from a state
--     that missed the other's uncommitted change, and no lock both took came before the
--     judgement (the API was safe only because it locks the window row first);
--   * a REPEATABLE READ / SERIALIZABLE writer whose snapshot predates a committed change of the
--     same status key (an incident opened meanwhile) derived from its old snapshot: slots were
--     only locked (FOR UPDATE), never written, so nothing told it that it was behind;
--   * deadlocks between row triggers of multi-row statements, each locking per row.
--
-- The lock order (CONTRIBUTING.md, "Lock order"), for every client and isolation level:
--   1. the rows the statement itself writes (taken by the executor, before any trigger);
--   2. status_lock slot 0, KEY SHARE (the repair takes it FOR UPDATE);
--   3. maintenance-window slots (4097..8192), ascending, one per window whose links or effect
--      change (new here: the lock a link writer and a window writer share);
--   4. status-key slots (1..4096), ascending: a team's, or a component's without a team;
--   5. component rows (the derivation's UPDATE), groups (their closure, id order: roll-ups), and
--      last the page snapshot rows (page id order).
-- Window slots are a separate range so that 3 always comes before 4 (a link writer must judge
-- under the window's lock which components to lock next). Every trigger collects its statement's
-- rows from the transition tables and takes each step once, set-based, for the whole statement.
--
-- Writing the slot. A derivation now UPDATEs the slot rows it locks (a no-op update: a new row
-- version), once per transaction. A transaction whose snapshot is older than such a version
-- (REPEATABLE READ, SERIALIZABLE) gets a serialization failure (SQLSTATE 40001) when it locks the
-- slot: it would otherwise derive from a state that misses the change. Under READ COMMITTED each
-- statement after the lock takes a fresh snapshot and sees it. So REPEATABLE READ writes are no
-- longer refused outright: they derive from current state, or are refused with 40001 (statusdb
-- translates it to Retryable; clients retry the transaction). The repair (recompute with true)
-- reads everything from its snapshot after taking slot 0 exclusively: it needs READ COMMITTED
-- (the hint said SERIALIZABLE was fine; it is not: nothing a derivation writes conflicts with
-- the repair's reads of slot 0).

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

COMMENT ON TABLE status_lock IS
    'Owner-only rows the status derivation locks (0 = all statuses, 1..4096 = status keys, '
    '4097..8192 = maintenance windows); derivations update the rows they lock (0023).';
COMMENT ON COLUMN status_lock.slot IS
    '0: every status (shared by derivations, exclusive for the repair); 1..4096: hashed status '
    'keys; 4097..8192: hashed maintenance window ids (0023).';

-- --------------------------------------------------------------------------------------------
-- 1. Taking slots

-- Locks (and writes) the given slots in ascending order, after slot 0 shared. Internal: the
-- callers are SECURITY DEFINER (the owner's rights on status_lock).
CREATE FUNCTION statusdb_take_slots(slots bigint[]) RETURNS void
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
    wanted bigint[] := ARRAY(SELECT DISTINCT u.s FROM unnest(slots) AS u (s)
                             WHERE u.s IS NOT NULL ORDER BY u.s);
    locked bigint;
BEGIN
    -- Shared with every other derivation; the repair takes it FOR UPDATE.
    PERFORM 1 FROM status_lock l WHERE l.slot = 0 FOR KEY SHARE;
    IF NOT FOUND THEN  -- first use
        INSERT INTO status_lock (slot) VALUES (0) ON CONFLICT DO NOTHING;
        PERFORM 1 FROM status_lock l WHERE l.slot = 0 FOR KEY SHARE;
    END IF;
    IF cardinality(wanted) = 0 THEN
        RETURN;
    END IF;
    PERFORM 1 FROM status_lock l WHERE l.slot = ANY (wanted) ORDER BY l.slot FOR UPDATE;
    GET DIAGNOSTICS locked = ROW_COUNT;
    IF locked < cardinality(wanted) THEN  -- first use of some slot
        INSERT INTO status_lock (slot) SELECT u.s FROM unnest(wanted) AS u (s) ORDER BY u.s
        ON CONFLICT DO NOTHING;
        PERFORM 1 FROM status_lock l WHERE l.slot = ANY (wanted) ORDER BY l.slot FOR UPDATE;
    END IF;
    -- A new version of each slot, once per transaction (rows this transaction wrote already
    -- are skipped): what tells an older snapshot that it is behind.
    UPDATE status_lock l SET slot = l.slot
    WHERE l.slot = ANY (wanted) AND l.xmin <> pg_current_xact_id()::xid;
END;
$$;
REVOKE EXECUTE ON FUNCTION statusdb_take_slots(bigint[]) FROM PUBLIC;
COMMENT ON FUNCTION statusdb_take_slots(bigint[]) IS
    'Locks slot 0 shared, then the given status_lock slots in ascending order, and writes each '
    '(a new row version once per transaction, 0023). Owner only.';

-- The same, and under REPEATABLE READ or SERIALIZABLE a slot written after the transaction's
-- snapshot is refused with a message saying what to do (the error PostgreSQL raises names
-- nothing a client knows; the SQLSTATE stays 40001, so retry loops retry it).
CREATE FUNCTION statusdb_lock_slots(slots bigint[]) RETURNS void
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
BEGIN
    IF current_setting('transaction_isolation') = 'read committed' THEN
        PERFORM statusdb_take_slots(slots);
        RETURN;
    END IF;
    BEGIN
        PERFORM statusdb_take_slots(slots);
    EXCEPTION WHEN serialization_failure THEN
        RAISE EXCEPTION 'component statuses changed after this transaction''s snapshot was taken'
            USING ERRCODE = 'serialization_failure',
                  DETAIL = 'A status input (an incident, a component''s team or service, a '
                           'maintenance window or its components) of the same status key was '
                           'changed by a transaction that committed after this one started; '
                           'deriving from this snapshot would store a stale status.',
                  HINT = 'Retry the transaction, or use READ COMMITTED (the default).';
    END;
END;
$$;
REVOKE EXECUTE ON FUNCTION statusdb_lock_slots(bigint[]) FROM PUBLIC;
COMMENT ON FUNCTION statusdb_lock_slots(bigint[]) IS
    'statusdb_take_slots, refusing an older snapshot (REPEATABLE READ, SERIALIZABLE) with a '
    'serialization failure that says so (0023). Owner only.';

-- 0012's function, now a mapping onto statusdb_lock_slots: REPEATABLE READ is no longer refused
-- (it derives from current state or gets a serialization failure).
CREATE OR REPLACE FUNCTION statusdb_lock_status_keys(keys bigint[]) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM statusdb_lock_slots(ARRAY(SELECT 1 + (u.k & 4095) FROM unnest(keys) AS u (k)
                                      WHERE u.k IS NOT NULL));
END;
$$;
COMMENT ON FUNCTION statusdb_lock_status_keys(bigint[]) IS
    'Locks (and writes) the status keys'' rows of status_lock in slot order, after slot 0 shared; '
    'an older snapshot whose slot was written since gets a serialization failure (0023).';

-- The slots of maintenance windows (step 3 of the order). Internal.
CREATE FUNCTION statusdb_lock_windows(window_ids text[]) RETURNS void
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM statusdb_lock_slots(ARRAY(
        SELECT 4097 + (hashtextextended('statusdb.window:' || u.id, 0) & 4095)
        FROM unnest(window_ids) AS u (id)
        WHERE u.id IS NOT NULL));
END;
$$;
REVOKE EXECUTE ON FUNCTION statusdb_lock_windows(text[]) FROM PUBLIC;
COMMENT ON FUNCTION statusdb_lock_windows(text[]) IS
    'Locks (and writes) the status_lock slots of the given maintenance windows (4097..8192), in '
    'slot order (0023). Owner only.';

-- The maintenance scheduler's statements (sql/maintenance.sql) take every lock of the windows
-- they move before the rows' triggers do: the windows' slots, then the status keys of their
-- components. statusdb_app may call it; it gains nothing it does not hold by writing a window.
CREATE FUNCTION statusdb_lock_maintenance_windows(window_ids text[]) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    IF cardinality(window_ids) > 10000 THEN
        RAISE EXCEPTION 'window_ids: at most 10000 windows at once'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM statusdb_lock_windows(window_ids);
    -- After the windows' slots: their links as they are now (READ COMMITTED).
    PERFORM statusdb_lock_status_keys(ARRAY(
        SELECT DISTINCT statusdb_status_lock_key(c.team_id, c.id)
        FROM maintenance_window_component mc
        JOIN status_page_component c ON c.id = mc.component_id
        WHERE mc.maintenance_window_id = ANY (window_ids)));
END;
$$;
REVOKE EXECUTE ON FUNCTION statusdb_lock_maintenance_windows(text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION statusdb_lock_maintenance_windows(text[]) TO statusdb_app;
COMMENT ON FUNCTION statusdb_lock_maintenance_windows(text[]) IS
    'For the maintenance scheduler: locks the windows'' status_lock slots, then the status keys '
    'of their components, as the windows'' triggers would (at most 10000 windows; 0023).';

-- The status keys of the given components, then checked again with a fresh snapshot (a
-- concurrent change may have moved one to another team meanwhile: then that key too). The loop
-- of statusdb_refresh_components (0009), without the re-derivation. Internal.
CREATE FUNCTION statusdb_lock_components(component_ids text[]) RETURNS void
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
    locked bigint[] := '{}';
    wanted bigint[];
BEGIN
    LOOP
        SELECT coalesce(array_agg(DISTINCT statusdb_status_lock_key(c.team_id, c.id)), '{}')
        INTO wanted
        FROM status_page_component c
        WHERE c.id = ANY (component_ids);
        EXIT WHEN wanted <@ locked;
        PERFORM statusdb_lock_status_keys(wanted);
        locked := locked || wanted;
    END LOOP;
END;
$$;
REVOKE EXECUTE ON FUNCTION statusdb_lock_components(text[]) FROM PUBLIC;
COMMENT ON FUNCTION statusdb_lock_components(text[]) IS
    'Locks the status keys of the given components (step 4 of the lock order), re-checked until '
    'no component moved to another key meanwhile (0023). Owner only.';


-- Step 5 starts with the component rows the derivation writes. Their writers (a component's
-- team or service changed by UPDATE) hold the row (step 1, the executor's) before they take its
-- status key: a derivation holding that key must not wait for the row, or both wait forever.
-- So the triggers lock the rows NOWAIT inside a subtransaction holding their slots; when a row
-- is taken, they roll the subtransaction back (releasing the slots: the row's writer gets
-- them), wait for the row's writer here without keeping anything, and start again.
CREATE FUNCTION statusdb_wait_for_components(component_ids text[]) RETURNS void
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
    taken text[];
    cid text;
BEGIN
    -- The rows another transaction holds now (a look that waits for nothing and keeps nothing).
    BEGIN
        taken := ARRAY(
            SELECT u.id FROM unnest(component_ids) AS u (id)
            EXCEPT
            SELECT f.id FROM (SELECT c.id FROM status_page_component c
                              WHERE c.id = ANY (component_ids)
                              FOR NO KEY UPDATE SKIP LOCKED) AS f);
        RAISE EXCEPTION 'released' USING ERRCODE = 'SDB01';
    EXCEPTION WHEN SQLSTATE 'SDB01' THEN
        NULL;
    END;
    -- Wait for each holder in turn, holding nothing meanwhile (each wait's lock is released).
    FOREACH cid IN ARRAY coalesce(taken, '{}') LOOP
        BEGIN
            PERFORM 1 FROM status_page_component c WHERE c.id = cid FOR SHARE;
            RAISE EXCEPTION 'released' USING ERRCODE = 'SDB01';
        EXCEPTION WHEN SQLSTATE 'SDB01' THEN
            NULL;
        END;
    END LOOP;
END;
$$;
REVOKE EXECUTE ON FUNCTION statusdb_wait_for_components(text[]) FROM PUBLIC;
COMMENT ON FUNCTION statusdb_wait_for_components(text[]) IS
    'Waits until no other transaction holds the given component rows, keeping no lock: the '
    'back-off of a derivation that found a row taken (0023). Owner only.';

-- --------------------------------------------------------------------------------------------
-- 2. Links of windows and components: statement triggers, the windows' slots before judging
--
-- A link writer and a window writer (status, auto_update_status) now share the window's slot:
-- whichever comes second waits, then judges from a statement that sees the first one's commit.

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
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        SELECT array_agg(o.maintenance_window_id), array_agg(o.component_id)
        INTO old_w, old_c
        FROM old_rows o;
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
            IF stage <> 'rows' OR attempts >= 50 THEN
                RAISE;
            END IF;
            attempts := attempts + 1;
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

DROP TRIGGER maintenance_window_component_refresh_status ON maintenance_window_component;
CREATE TRIGGER maintenance_window_component_refresh_status_insert
AFTER INSERT ON maintenance_window_component
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION statusdb_maintenance_window_component_refresh_status();
CREATE TRIGGER maintenance_window_component_refresh_status_update
AFTER UPDATE ON maintenance_window_component
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION statusdb_maintenance_window_component_refresh_status();
CREATE TRIGGER maintenance_window_component_refresh_status_delete
AFTER DELETE ON maintenance_window_component
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION statusdb_maintenance_window_component_refresh_status();
COMMENT ON TRIGGER maintenance_window_component_refresh_status_insert
    ON maintenance_window_component IS
    'Re-derives the components covered by new links of running windows (0023: per statement).';
COMMENT ON TRIGGER maintenance_window_component_refresh_status_update
    ON maintenance_window_component IS
    'Re-derives the components of changed links (0023: per statement).';
COMMENT ON TRIGGER maintenance_window_component_refresh_status_delete
    ON maintenance_window_component IS
    'Re-derives the components uncovered by removed links (0023: per statement).';

-- --------------------------------------------------------------------------------------------
-- 3. Window status and auto_update_status: a statement trigger, the windows' slots first
--
-- (A statement trigger with transition tables cannot name columns: every update of a window
-- fires it, and it returns at once unless some window's effect changed.)

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
            IF stage <> 'rows' OR attempts >= 50 THEN
                RAISE;
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
COMMENT ON FUNCTION statusdb_maintenance_window_refresh_status() IS
    'Statement trigger (0023): windows entering or leaving effect (IN_PROGRESS with '
    'auto_update_status) lock their slots, then re-derive their components.';

DROP TRIGGER maintenance_window_refresh_status ON maintenance_window;
CREATE TRIGGER maintenance_window_refresh_status
AFTER UPDATE ON maintenance_window
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION statusdb_maintenance_window_refresh_status();
COMMENT ON TRIGGER maintenance_window_refresh_status ON maintenance_window IS
    'Re-derives the components of windows whose effect changed (0023: per statement).';

-- --------------------------------------------------------------------------------------------
-- 4. Incidents: statement triggers, every team's key at once

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
            IF stage <> 'rows' OR attempts >= 50 THEN
                RAISE;
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
COMMENT ON FUNCTION statusdb_incident_refresh_status() IS
    'Statement trigger (0023): incident changes that can move a status lock their teams'' keys '
    'at once, then re-derive each team''s components.';

DROP TRIGGER incident_refresh_status ON incident;
CREATE TRIGGER incident_refresh_status_insert
AFTER INSERT ON incident
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION statusdb_incident_refresh_status();
CREATE TRIGGER incident_refresh_status_update
AFTER UPDATE ON incident
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION statusdb_incident_refresh_status();
CREATE TRIGGER incident_refresh_status_delete
AFTER DELETE ON incident
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION statusdb_incident_refresh_status();
COMMENT ON TRIGGER incident_refresh_status_insert ON incident IS
    'Re-derives the components of the teams of new active incidents (0023: per statement).';
COMMENT ON TRIGGER incident_refresh_status_update ON incident IS
    'Re-derives the components of the teams whose incidents changed (0023: per statement).';
COMMENT ON TRIGGER incident_refresh_status_delete ON incident IS
    'Re-derives the components of the teams of deleted active incidents (0023: per statement).';

-- --------------------------------------------------------------------------------------------
-- 5. The repairs: READ COMMITTED only
--
-- A repair takes slot 0 exclusively and then reads every input. Under REPEATABLE READ or
-- SERIALIZABLE it would read them from a snapshot taken before the lock, missing derivations
-- that committed while it waited, and write stale statuses back (no derivation writes anything
-- the repair's reads conflict with). 0012's hint recommended SERIALIZABLE; it now says READ
-- COMMITTED.

CREATE OR REPLACE FUNCTION statusdb_recompute_statuses(repair boolean) RETURNS TABLE(component_id text, current_status text, derived_status text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
DECLARE
    drifted text[];
BEGIN
    IF repair THEN
        IF current_setting('transaction_isolation') <> 'read committed' THEN
            RAISE EXCEPTION 'component statuses can be repaired in a READ COMMITTED transaction only'
                USING ERRCODE = 'invalid_transaction_state',
                      HINT = 'Run the repair in a READ COMMITTED transaction (the default): it reads '
                             'every input after taking the lock that keeps derivations out.';
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

CREATE OR REPLACE FUNCTION statusdb_recompute_group_statuses(repair boolean) RETURNS TABLE(group_id text, current_status text, derived_status text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
DECLARE
    drifted text[];
BEGIN
    IF repair THEN
        IF current_setting('transaction_isolation') <> 'read committed' THEN
            RAISE EXCEPTION 'group statuses can be repaired in a READ COMMITTED transaction only'
                USING ERRCODE = 'invalid_transaction_state',
                      HINT = 'Run the repair in a READ COMMITTED transaction (the default): it reads '
                             'every input after taking the lock that keeps derivations out.';
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

-- --------------------------------------------------------------------------------------------
-- 6. Group roll-ups do not wait for a group's deleter
--
-- Deleting a component holds its row, then rolls up (locks) its group; deleting the group holds
-- the group, then sets its components' group_id to null (waiting for that row): one statement
-- each, and a deadlock. The roll-up now refuses at once with a serialization failure when a
-- group it must lock is being deleted (0020's body otherwise).

CREATE OR REPLACE FUNCTION statusdb_refresh_groups(group_ids text[]) RETURNS void
    LANGUAGE plpgsql
    SET plan_cache_mode TO 'force_generic_plan'
    AS $$
DECLARE
    locked text[] := '{}';
    wanted text[];
    busy text[];
    notified bigint;
BEGIN
    IF cardinality(group_ids) = 0 THEN
        RETURN;
    END IF;
    PERFORM statusdb_lock_status_keys('{}');
    LOOP
        wanted := statusdb_group_closure(group_ids);
        EXIT WHEN wanted <@ locked;
        -- A group being deleted by another transaction (locked FOR UPDATE, which KEY SHARE
        -- waits for) will wait for the rows of its components this transaction may hold (ON
        -- DELETE SET NULL): waiting for it is a deadlock, so refuse at once, retryably.
        busy := ARRAY(
            SELECT u.id FROM unnest(wanted) AS u (id)
            EXCEPT
            SELECT f.id FROM (SELECT g.id FROM component_group g
                              WHERE g.id = ANY (wanted)
                              FOR KEY SHARE SKIP LOCKED) AS f);
        IF cardinality(busy) > 0 THEN
            RAISE EXCEPTION 'component group % is being deleted by another transaction', busy[1]
                USING ERRCODE = 'serialization_failure',
                      HINT = 'Retry the transaction.';
        END IF;
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


-- --------------------------------------------------------------------------------------------
-- 7. Snapshot rows stay last when a component is deleted with its links
--
-- Deleting a component cascades to its links, whose statement trigger locked the page's
-- snapshot row before the component's group roll-up locked its groups (groups after snapshot
-- rows: a deadlock with a derivation rolling the same group up). The links' refresh now leaves
-- a deleted component's page to the component's own snapshot trigger (0017's body otherwise).

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
        -- Nor a component deleted with its links (0023): its own statement trigger refreshes
        -- the page after its group roll-up, keeping snapshot rows last in the lock order.
        PERFORM statusdb_page_snapshot_refresh(ARRAY(
            SELECT DISTINCT w.status_page_id
            FROM maintenance_window w
            WHERE w.id IN (SELECT o.maintenance_window_id FROM old_rows o
                           WHERE EXISTS (SELECT 1 FROM status_page_component c
                                         WHERE c.id = o.component_id))));
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

