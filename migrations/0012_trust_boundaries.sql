-- statusdb 0012: the derivation trusts nothing a client can set; serialisation no client can
-- stall; notifications that tell listeners nothing they may not read; team scopes that reach no
-- other team's incidents; components and windows that stay on their page.
-- depends: 0011_global_status_lock
--
-- Every role that can connect is treated as an adversary (statusdb_app, statusdb_reader, any
-- login). Until now:
--   1. the derivation read session settings as internal state: with statusdb.deriving set, the
--      component trigger let any UPDATE through (manual_status on a team-driven component, a new
--      team_id without re-derivation or log row); with statusdb.all_statuses_locked set, a
--      writer skipped the status locks and raced other writers into wrong statuses;
--   2. it serialised on advisory locks, which every role may take: a reader holding the
--      cluster-wide key (or a team's) stalled every status change;
--   3. the status feed's NOTIFY payload carried page id, component id and status, and LISTEN
--      needs no privilege: any role could watch private pages change;
--   5. a team-scoped session could make a component of its page follow another team, and read
--      that team's incident priority (the status) and incident ids (the log);
--   6. the same-page rules held on INSERT only: UPDATE moved a component (or a maintenance
--      window) with its links onto another page.
-- (Items 4 and 7 to 12 of issue 9 are elsewhere.)

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

-- --------------------------------------------------------------------------------------------
-- 2. Status locks: rows of a table only the owner may touch
--
-- A row lock needs UPDATE privilege on its table (SELECT ... FOR UPDATE / FOR KEY SHARE, LOCK
-- TABLE), and nobody but the owner has any privilege on status_lock: no grants, and row-level
-- security enabled without a policy, so even a role granted SELECT by mistake would see no row.
-- A role without privileges can still get a weak table-level lock on it (a statement is parsed,
-- and its tables locked, before privileges are checked; PREPARE never checks them), but those
-- modes (ACCESS SHARE, ROW SHARE, ROW EXCLUSIVE) conflict with nothing the derivation takes:
-- row locks take ROW SHARE on the table, and the repair below takes a row lock too, never a
-- table lock.
--
-- Rows: slot 0 is the cluster-wide row (0011's "statusdb.status:all" key); slots 1..4096 stand
-- for the status keys of 0003 (one per team, one per component without a team), hashed into a
-- fixed number of rows, so that the hot path only locks rows that exist. Two keys that share a
-- slot are serialised together: correct, only occasionally less concurrent. A slot's row is
-- inserted the first time it is needed (ON CONFLICT DO NOTHING; an uncommitted insert holds
-- off the others like the lock would), not here: the table is data like any other, so that a
-- data-only dump restores into a freshly migrated database without colliding with rows the
-- migration made. Every derivation takes
-- slot 0 FOR KEY SHARE (shared with every other derivation), then its slots FOR UPDATE in slot
-- order (so two derivations cannot deadlock on them); the repair takes slot 0 FOR UPDATE,
-- which waits for every derivation in flight and keeps new ones out until it commits: one lock
-- whatever the number of components, as in 0011. Row locks are kept in the rows themselves, not
-- in the shared lock table, so no number of them exhausts max_locks_per_transaction.
--
-- Unlike advisory locks, row locks do not queue shared lockers behind a waiting exclusive one:
-- under a continuous stream of overlapping derivations the repair may wait until a gap. Run it
-- at a quiet moment (as README says).
CREATE TABLE status_lock (
    slot bigint NOT NULL,
    CONSTRAINT status_lock_pkey PRIMARY KEY (slot)
);
COMMENT ON TABLE status_lock IS
    'Owner-only rows the status derivation locks (0 = all statuses, 1..4096 = status keys).';
COMMENT ON COLUMN status_lock.slot IS
    '0: every status (shared by derivations, exclusive for the repair); 1..4096: hashed status keys.';
ALTER TABLE status_lock ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON TABLE status_lock FROM PUBLIC;

-- The transactions that are running statusdb_recompute_statuses(repair => true): the repair's
-- re-derivation runs outside any trigger, so the component trigger (below) recognises it by
-- this row, inserted by the repair and deleted before it returns, hence never seen by another
-- transaction. Owner-only like status_lock.
CREATE TABLE status_repair (
    xid xid8 NOT NULL,
    CONSTRAINT status_repair_pkey PRIMARY KEY (xid)
);
COMMENT ON TABLE status_repair IS
    'Owner-only: the transaction repairing statuses right now (statusdb_recompute_statuses).';
COMMENT ON COLUMN status_repair.xid IS
    'The repairing transaction (pg_current_xact_id()); the row lives only while the repair runs.';
ALTER TABLE status_repair ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON TABLE status_repair FROM PUBLIC;

-- The status keys of 0003 (statusdb_status_lock_key) stay the callers' currency; this maps them
-- to their rows. The isolation check of 0003 stays: READ COMMITTED statements each take a fresh
-- snapshot after the lock, SERIALIZABLE detects what it cannot see; REPEATABLE READ would derive
-- from a snapshot older than the lock.
--
-- It runs as the owner (SECURITY DEFINER) and statusdb_app may call it: the maintenance
-- scheduler (sql/maintenance.sql) takes the status locks of all the windows it moves at once,
-- in slot order, before the rows' triggers do, so that two schedulers cannot deadlock. That
-- gives the backend no power it lacks: any write of an incident or a component takes the same
-- locks until its transaction ends (the writer of statuses can always hold them up, by keeping
-- its transaction open). It only ever takes slot 0 shared, so it cannot keep the others out as
-- the repair does. statusdb_reader and other roles may not call it.
CREATE OR REPLACE FUNCTION statusdb_lock_status_keys(keys bigint[]) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
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

-- --------------------------------------------------------------------------------------------
-- 3. Notifications carry the change's seq only
--
-- LISTEN needs no privilege, so a payload is readable by every role that can connect. The
-- status feed's payload is now the status_change row's seq (a number saying that a change was
-- logged, nothing about where); statusdb.feed reads the row itself with the listener's own
-- privileges and row-level security (sql/feed.sql). (This is the repo's only NOTIFY channel.)
CREATE OR REPLACE FUNCTION statusdb_log_status_change(
    status_page_id text, component_id text, previous_status text, new_status text,
    cause text, incident_id text, maintenance_window_id text, changed_at timestamptz
) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    change_seq bigint;
BEGIN
    INSERT INTO status_change (status_page_id, component_id, previous_status, new_status, cause,
                               incident_id, maintenance_window_id, changed_at)
    VALUES (status_page_id, component_id, previous_status, new_status, cause, incident_id,
            maintenance_window_id, changed_at)
    RETURNING seq INTO change_seq;
    PERFORM pg_notify('statusdb_status_change', change_seq::text);
END;
$$;

-- Re-derives the given components and logs and announces each real change, in one statement
-- (0009), without taking the status locks: the caller holds them (statusdb_refresh_components
-- below, or the repair, which holds every status with slot 0).
CREATE FUNCTION statusdb_rederive_components(
    component_ids text[], cause text, incident_id text, maintenance_window_id text
) RETURNS void
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    notified bigint;
BEGIN
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
               statusdb_rederive_components.cause, statusdb_rederive_components.incident_id,
               statusdb_rederive_components.maintenance_window_id, changed.status_updated_at
        FROM changed
        ORDER BY changed.id
        RETURNING status_change.seq
    )
    -- The same announcement statusdb_log_status_change makes, one per logged change.
    SELECT count(pg_notify('statusdb_status_change', logged.seq::text))
    INTO STRICT notified
    FROM logged;
END;
$$;

-- 0009's function without the session flag: takes the locks, then re-derives.
CREATE OR REPLACE FUNCTION statusdb_refresh_components(
    component_ids text[], cause text, incident_id text, maintenance_window_id text
) RETURNS void
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    locked bigint[] := '{}';
    wanted bigint[];
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
    PERFORM statusdb_rederive_components(component_ids, cause, incident_id,
                                         maintenance_window_id);
END;
$$;

-- --------------------------------------------------------------------------------------------
-- 1. The component trigger recognises the derivation by what no client controls
--
-- A component's status inputs (team_id, service_identifier, manual_status) changed: re-derived,
-- locked and logged right here, always, whoever writes (statusdb_app, a DBA, the ON DELETE SET
-- NULL of a deleted team), whatever the session has set.
-- Only current_status / status_updated_at written, inputs unchanged: that is the derivation's
-- own UPDATE, and only it may do that. It is recognised by
--   * pg_trigger_depth() > 1: the UPDATE was issued from inside a trigger. statusdb_app cannot
--     write those columns at all (0008's column grants), and no trigger but the derivation's
--     writes them; or
--   * a status_repair row of this transaction: the operators' repair (statusdb_recompute_statuses
--     runs outside any trigger), which only the owner can insert.
-- So a DBA's psql, superuser or owner, is refused too when it writes a status by hand: that
-- would leave the status-change log without the change. (The owner can still drop or disable
-- the trigger: schema changes are its job, and no row rule binds it against itself.)
CREATE OR REPLACE FUNCTION statusdb_status_page_component_derive() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    previous text := CASE WHEN TG_OP = 'INSERT' THEN 'OPERATIONAL' ELSE OLD.current_status END;
    derived text;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF (NEW.team_id, NEW.service_identifier, NEW.manual_status)
           IS NOT DISTINCT FROM (OLD.team_id, OLD.service_identifier, OLD.manual_status) THEN
            IF (NEW.current_status, NEW.status_updated_at)
                   IS NOT DISTINCT FROM (OLD.current_status, OLD.status_updated_at)
               OR pg_trigger_depth() > 1
               OR EXISTS (SELECT 1 FROM status_repair r WHERE r.xid = pg_current_xact_id()) THEN
                RETURN NEW;  -- no status input changed, or the derivation writes
            END IF;
        END IF;
        IF (NEW.current_status, NEW.status_updated_at)
           IS DISTINCT FROM (OLD.current_status, OLD.status_updated_at) THEN
            RAISE EXCEPTION 'current_status of component % is derived and cannot be set directly',
                    OLD.id
                USING ERRCODE = 'check_violation',
                      CONSTRAINT = 'status_page_component_current_status_derived',
                      HINT = 'Set manual_status on a component without a team, or change '
                             'incidents and maintenance windows.';
        END IF;
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

-- The repair: slot 0 FOR UPDATE (one lock keeps every derivation out), marked for the component
-- trigger, re-derived without further locks.
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
END;
$$;

-- The derivation's internals run as the owner, from the SECURITY DEFINER triggers and the
-- repair. Called directly they run as the caller, who may not write what they write; they are
-- no client's business either way (and statusdb_lock_status_keys would lock rows for it).
REVOKE EXECUTE ON FUNCTION
    statusdb_lock_status_keys(bigint[]),
    statusdb_log_status_change(text, text, text, text, text, text, text, timestamptz),
    statusdb_rederive_components(text[], text, text, text),
    statusdb_refresh_components(text[], text, text, text),
    statusdb_refresh_team(text, text, text)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION statusdb_lock_status_keys(bigint[]) TO statusdb_app;

-- --------------------------------------------------------------------------------------------
-- 5. Under a team scope, components follow only the scoped team (or none)
--
-- The derivation runs as the owner across teams (0008), so whatever a component follows shows
-- in its status and its log. A session scoped to team T (statusdb.team_id) may therefore only
-- create or update components whose team_id is T or null; components that follow another team
-- (set up by an unscoped session) are invisible to it, and so are status changes of components
-- it cannot see or caused by incidents it cannot see (other teams' incidents, and deleted ones,
-- whose team is no longer known). Unscoped sessions, the owner and superusers are unaffected.
-- Restrictive policies: they narrow 0008's team policies, which stay as they are.
CREATE POLICY status_page_component_scoped_team ON status_page_component
    AS RESTRICTIVE
    USING ((SELECT statusdb_current_team()) IS NULL
           OR team_id IS NULL
           OR team_id = (SELECT statusdb_current_team()))
    WITH CHECK ((SELECT statusdb_current_team()) IS NULL
                OR team_id IS NULL
                OR team_id = (SELECT statusdb_current_team()));

CREATE POLICY status_change_scoped_team ON status_change
    AS RESTRICTIVE
    USING ((SELECT statusdb_current_team()) IS NULL
           OR (component_id IN (SELECT c.id FROM status_page_component c)
               AND (incident_id IS NULL OR incident_id IN (SELECT i.id FROM incident i))));

-- --------------------------------------------------------------------------------------------
-- 6. Components and maintenance windows stay on their page
--
-- The same-page relations and the columns that could break them:
--   maintenance_window_component: window's page = component's page
--       its own columns (0002's trigger, INSERT and UPDATE), maintenance_window.status_page_id
--       and status_page_component.status_page_id (refused below), the ids (foreign keys, NO
--       ACTION: refused while referenced);
--   status_subscriber.component_ids, status_incident.affected_component_ids: components of the
--       row's page
--       the row's component ids and status_page_id (0002's triggers, INSERT and UPDATE OF
--       either), status_page_component.status_page_id (refused below), status_page_component.id
--       (arrays cannot hold a foreign key: refused below), component deletion (0002 cleans);
--   status_change (status_page_id, component_id): written by the derivation only; the
--       component's page cannot change (below);
--   status_page.id: every reference is a foreign key (NO ACTION).
-- Moving a component or a window to another page is refused outright (create it on the other
-- page instead): its history (status_change), its links and its subscribers belong to its page.
CREATE FUNCTION statusdb_status_page_component_check_page_fixed() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF NEW.id IS DISTINCT FROM OLD.id THEN
        RAISE EXCEPTION 'the id of component % cannot change', OLD.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'status_page_component_id_fixed';
    END IF;
    RAISE EXCEPTION 'component % cannot move to another status page', OLD.id
        USING ERRCODE = 'check_violation',
              CONSTRAINT = 'status_page_component_status_page_id_fixed',
              HINT = 'Create the component on the other page instead.';
END;
$$;

-- Named to fire before status_page_component_derive (BEFORE triggers fire in name order).
CREATE TRIGGER status_page_component_check_page_fixed
    BEFORE UPDATE OF id, status_page_id ON status_page_component
    FOR EACH ROW
    WHEN (NEW.id IS DISTINCT FROM OLD.id OR NEW.status_page_id IS DISTINCT FROM OLD.status_page_id)
    EXECUTE FUNCTION statusdb_status_page_component_check_page_fixed();

CREATE FUNCTION statusdb_maintenance_window_check_page_fixed() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    RAISE EXCEPTION 'maintenance window % cannot move to another status page', OLD.id
        USING ERRCODE = 'check_violation',
              CONSTRAINT = 'maintenance_window_status_page_id_fixed',
              HINT = 'Create the window on the other page instead.';
END;
$$;

CREATE TRIGGER maintenance_window_check_page_fixed
    BEFORE UPDATE OF status_page_id ON maintenance_window
    FOR EACH ROW
    WHEN (NEW.status_page_id IS DISTINCT FROM OLD.status_page_id)
    EXECUTE FUNCTION statusdb_maintenance_window_check_page_fixed();

COMMENT ON FUNCTION statusdb_status_page_component_check_page_fixed() IS
    'Trigger: a component keeps its id and its page (status_page_component_*_fixed).';
COMMENT ON FUNCTION statusdb_maintenance_window_check_page_fixed() IS
    'Trigger: a maintenance window keeps its page (maintenance_window_status_page_id_fixed).';
COMMENT ON FUNCTION statusdb_rederive_components(text[], text, text, text) IS
    'Re-derives, logs and announces the given components in one statement; the caller holds '
    'their status locks. Owner only.';

-- Trigger functions need no EXECUTE privilege to fire; nobody calls them directly (0014 audits
-- what each role may execute).
REVOKE EXECUTE ON FUNCTION
    statusdb_status_page_component_check_page_fixed(),
    statusdb_maintenance_window_check_page_fixed()
FROM PUBLIC;

-- The same-page triggers of 0002 run as the caller (they need no more than the caller's rights),
-- and so resolve table names through the caller's search_path: statusdb_app could put pg_temp
-- first and shadow status_page_component or maintenance_window with temporary tables of its own
-- that say another page's component is on this page. Their tables are now schema-qualified
-- (the bodies are otherwise 0002's); functions and operators are never looked up in pg_temp,
-- and no role but the owner may create anything in public. (Qualified names rather than SET
-- search_path on the functions: that would cost a configuration change per row written.)
CREATE OR REPLACE FUNCTION statusdb_maintenance_window_component_same_page() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1
        FROM public.maintenance_window w
        JOIN public.status_page_component c ON c.status_page_id = w.status_page_id
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

-- (0009's plan_cache_mode restated: CREATE OR REPLACE resets a function's settings.)
CREATE OR REPLACE FUNCTION statusdb_check_component_ids(page_id text, ids text[],
                                                        constraint_name text)
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
    FROM public.status_page_component c
    WHERE c.id = ANY (ids)
    ORDER BY c.id
    FOR KEY SHARE;
    SELECT i INTO missing
    FROM unnest(ids) AS i
    WHERE NOT EXISTS (
        SELECT 1 FROM public.status_page_component c
        WHERE c.id = i AND c.status_page_id = page_id
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
    UPDATE public.status_subscriber s
    SET component_ids = array_remove(s.component_ids, OLD.id),
        is_active = s.is_active AND cardinality(array_remove(s.component_ids, OLD.id)) > 0
    WHERE s.status_page_id = OLD.status_page_id AND s.component_ids @> ARRAY[OLD.id];

    UPDATE public.status_incident i
    SET affected_component_ids = array_remove(i.affected_component_ids, OLD.id)
    WHERE i.status_page_id = OLD.status_page_id AND i.affected_component_ids @> ARRAY[OLD.id];
    RETURN OLD;
END;
$$;
