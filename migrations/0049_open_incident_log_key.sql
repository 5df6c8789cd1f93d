-- statusdb 0049: the open pays no per-row key check on its log, and less at commit (issue 20).
-- depends: 0048_open_incident_own_writes
--
-- Measured on a held bench cluster (bench/README.md, "Issue 20: the open against its floor, the
-- log's key and the render at commit (0049)"): by pg_stat_statements (track = all), auto_explain
-- of one open, and switching one thing at a time in alternated blocks of opens.
--
-- * The foreign key status_change_component_id_fkey is dropped: each logged change (50 per open
--   of the bench, 50 per resolve) fired its RI check trigger, one SPI query per row locking the
--   component FOR KEY SHARE. Why the check is redundant: the log is append-only and written only
--   by statusdb's own functions (the application roles may INSERT nothing into status_change and
--   UPDATE only its lease and delivery columns: grants of 0008), and each of them logs a
--   component it holds: statusdb_rederive_components and
--   statusdb_rederive_maintenance_components log the rows their UPDATE ... RETURNING just wrote
--   (row locked), statusdb_status_page_component_derive the row being updated (BEFORE UPDATE),
--   statusdb_status_page_component_log_initial_status a row being inserted. A concurrent DELETE of
--   such a component waits for that row lock and then deletes the log rows committed meanwhile
--   (below), as the cascade did; under REPEATABLE READ it fails with 40001, as before.
--   What the key still did is kept, set-based, once per statement:
--   - ON DELETE CASCADE: status_page_component_delete_changes, AFTER DELETE ... FOR EACH
--     STATEMENT, deletes the deleted components' log rows (by status_change_component_id_seq_idx);
--     a page's delete cascades to its components (their own key), so to this trigger too. Its
--     name sorts before status_page_component_keep_history_delete, so the deleted changes are
--     folded into the components' versions (status_change_keep_history_delete, 0022) before their
--     versions end, as with the cascade (which ran in the components' AFTER ROW events). TRUNCATE
--     is the owner's alone (a TRUNCATE of the components no longer needs CASCADE for the log).
--   - The check: status_change_check_component_insert (AFTER INSERT, FOR EACH STATEMENT: one
--     anti-join over the transition table) and status_change_check_component_update (AFTER
--     UPDATE OF component_id, per row WHEN it changes: nothing statusdb writes) refuse, with
--     23503 as the key did, log rows naming a component that does not exist. They do not lock
--     the components (every writer above holds them already). Plain-SQL writes by the
--     application roles stay refused (42501, no INSERT grant) whatever component they name.
-- * Planning on every call: pg_stat_statements (track = all, track_planning) showed three of
--   the open's statements planned again at every call, PL/pgSQL's plan cache having settled on
--   custom plans for their `= ANY (array)` parameters: statusdb_page_snapshot_refresh's row
--   lock and its render-and-update statement at commit (~150 + ~260 us per plan under load)
--   and statusdb_incident_refresh_status's lookup of the teams' component ids (~140 us). Both
--   functions now run with plan_cache_mode = force_generic_plan, as statusdb_rederive_components
--   and statusdb_page_render (0048) do; their generic plans reach the rows by key (checked by
--   tests/test_open_log_key.py). Their bodies are otherwise as below.
-- * statusdb_page_snapshot_refresh (0020's body, one condition added): its UPDATE joined the
--   rendered pages to status_page_snapshot by hash over a scan of every snapshot row (the
--   rendered set is a function: the planner guessed 1000 rows); it now reaches them by key
--   (`s.page_id = ANY (page_ids)`, said twice as statusdb_rederive_components does), which a
--   generic plan needs.
-- * status_page_snapshot's json columns (components, incidents, windows, groups) are compressed
--   with lz4 (new values; older ones stay pglz until rewritten, readers see no difference): every
--   render of a changed page compresses its components list again (6.8 kB for 50 components);
--   pglz took ~0.1 ms of it, lz4 a fraction, and decompresses faster for readers too.
-- * statusdb_incident_refresh_status (0038's body): when the statement moved one team (an
--   open, a resolve), the team's component ids are the ones it looked up and locked a statement
--   earlier under the team's key, so it passes those instead of looking them up again.
--
-- Not changed, and why (bench/README.md has the numbers): the snapshot row's UPDATE stays
-- non-HOT, because `version` changes on every render and is indexed (UNIQUE: the feed looks
-- snapshots up by version, feed_page_versions / feed_pages_changed_since); the slug indexes do not
-- change (slug is the same) but one changed indexed column is enough to update all four.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

-- The log's component key, set-based.
CREATE FUNCTION statusdb_status_change_check_component() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    missing text;
BEGIN
    IF TG_LEVEL = 'ROW' THEN  -- an UPDATE that changes component_id (the WHEN clause)
        missing := NEW.component_id;
        PERFORM 1 FROM status_page_component c WHERE c.id = NEW.component_id;
    ELSE
        SELECT n.component_id INTO missing
        FROM new_rows n
        WHERE NOT EXISTS (SELECT 1 FROM status_page_component c WHERE c.id = n.component_id)
        LIMIT 1;
    END IF;
    IF FOUND = (TG_LEVEL = 'STATEMENT') THEN
        RAISE EXCEPTION 'status change names component %, which does not exist', missing
            USING ERRCODE = 'foreign_key_violation',
                  CONSTRAINT = 'status_change_check_component',
                  TABLE = 'status_change',
                  COLUMN = 'component_id';
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION statusdb_status_change_check_component() IS
    'Trigger on INSERT (per statement) and on UPDATE OF component_id (per changed row) of '
    'status_change (0049): refuses log rows naming a component that does not exist (23503); replaces '
    'status_change_component_id_fkey''s per-row check.';
REVOKE EXECUTE ON FUNCTION statusdb_status_change_check_component() FROM PUBLIC;

CREATE TRIGGER status_change_check_component_insert
AFTER INSERT ON status_change
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION statusdb_status_change_check_component();

-- (A column list and transition tables do not go together: per row, only when it changes.)
CREATE TRIGGER status_change_check_component_update
AFTER UPDATE OF component_id ON status_change
FOR EACH ROW WHEN (NEW.component_id IS DISTINCT FROM OLD.component_id)
EXECUTE FUNCTION statusdb_status_change_check_component();

CREATE FUNCTION statusdb_status_page_component_delete_changes() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    DELETE FROM status_change s
    WHERE s.component_id IN (SELECT o.id FROM old_rows o);
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION statusdb_status_page_component_delete_changes() IS
    'Statement trigger on DELETE of status_page_component (0049): deletes the deleted components'' '
    'status changes, as status_change_component_id_fkey''s ON DELETE CASCADE did.';
REVOKE EXECUTE ON FUNCTION statusdb_status_page_component_delete_changes() FROM PUBLIC;

CREATE TRIGGER status_page_component_delete_changes
AFTER DELETE ON status_page_component
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION statusdb_status_page_component_delete_changes();

-- squawk-ignore ban-drop-constraint
ALTER TABLE status_change DROP CONSTRAINT status_change_component_id_fkey;

-- The snapshot's json columns: lz4 for new values.
ALTER TABLE status_page_snapshot
    ALTER COLUMN components SET COMPRESSION lz4,
    ALTER COLUMN incidents SET COMPRESSION lz4,
    ALTER COLUMN windows SET COMPRESSION lz4,
    ALTER COLUMN groups SET COMPRESSION lz4;

-- statusdb_page_snapshot_refresh: 0020's body (schema/functions/), the snapshot rows by key.
CREATE OR REPLACE FUNCTION public.statusdb_page_snapshot_refresh(page_ids text[])
 RETURNS void
 LANGUAGE plpgsql
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
DECLARE
    announced bigint;
BEGIN
    IF coalesce(cardinality(page_ids), 0) = 0 THEN
        RETURN;
    END IF;
    -- 1. The snapshot rows, locked in page order (deleted pages have none).
    PERFORM 1 FROM status_page_snapshot s
    WHERE s.page_id = ANY (page_ids)
    ORDER BY s.page_id
    FOR UPDATE;
    -- 2. A new statement, a new snapshot (READ COMMITTED): the rendering includes what another
    --    writer of these pages committed while we waited for the locks.
    WITH rendered AS (
        SELECT r.* FROM statusdb_page_render(page_ids) AS r
    ),
    changed AS (
        UPDATE status_page_snapshot s
        SET version = nextval('status_page_snapshot_version_seq'),
            slug = r.slug, is_public = r.is_public, access_token_hash = r.access_token_hash,
            name = r.name, description = r.description, updated_at = r.updated_at,
            components = r.components, incidents = r.incidents, windows = r.windows,
            window_starts = r.window_starts, window_scheduled = r.window_scheduled, groups = r.groups
        FROM rendered r
        -- 0049: the snapshot rows by key (said twice: joined alone, a generic plan hashed
        -- every snapshot row of the table).
        WHERE s.page_id = ANY (page_ids)
          AND s.page_id = r.page_id
          AND (s.slug, s.is_public, s.access_token_hash, s.name, s.description, s.updated_at,
               s.components::text, s.incidents::text, s.windows::text, s.groups::text)
              IS DISTINCT FROM
              (r.slug, r.is_public, r.access_token_hash, r.name, r.description, r.updated_at,
               r.components::text, r.incidents::text, r.windows::text, r.groups::text)
        RETURNING s.version
    )
    -- The lowest version readers of the new rendering see (k = 0).
    SELECT count(pg_notify('statusdb_page_version', (changed.version * 256)::text))
    INTO STRICT announced
    FROM changed;
END;
$function$;

-- statusdb_incident_refresh_status: 0038's body (schema/tables/incident.sql), one team's ids
-- passed on as looked up.
CREATE OR REPLACE FUNCTION public.statusdb_incident_refresh_status()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
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
            -- 0049: one team moved (an open, a resolve): its components are `ids`, looked up
            -- above under its held key (no component joins or leaves the team meanwhile).
            CASE WHEN moved_t <@ ARRAY[team] THEN ids
                 ELSE ARRAY(SELECT c.id FROM status_page_component c
                            WHERE c.team_id = team ORDER BY c.id) END,
            'INCIDENT', first_incident, NULL);
    END LOOP;
    RETURN NULL;
END;
$function$;
