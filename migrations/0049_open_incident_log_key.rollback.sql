-- statusdb 0049 rollback: the schema as 0048 left it.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

CREATE OR REPLACE FUNCTION public.statusdb_incident_refresh_status()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
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
            ARRAY(SELECT c.id FROM status_page_component c
                  WHERE c.team_id = team ORDER BY c.id),
            'INCIDENT', first_incident, NULL);
    END LOOP;
    RETURN NULL;
END;
$function$;

CREATE OR REPLACE FUNCTION public.statusdb_page_snapshot_refresh(page_ids text[])
 RETURNS void
 LANGUAGE plpgsql
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
        WHERE s.page_id = r.page_id
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

ALTER TABLE status_page_snapshot
    ALTER COLUMN components SET COMPRESSION DEFAULT,
    ALTER COLUMN incidents SET COMPRESSION DEFAULT,
    ALTER COLUMN windows SET COMPRESSION DEFAULT,
    ALTER COLUMN groups SET COMPRESSION DEFAULT;

-- The log's component key again: NOT VALID first (no scan under the lock of the ADD), then
-- validated in this transaction, as the rollback restores the schema exactly in one step.
ALTER TABLE status_change ADD CONSTRAINT status_change_component_id_fkey
    FOREIGN KEY (component_id) REFERENCES status_page_component (id) ON DELETE CASCADE NOT VALID;
-- squawk-ignore constraint-missing-not-valid
ALTER TABLE status_change VALIDATE CONSTRAINT status_change_component_id_fkey;

DROP TRIGGER status_page_component_delete_changes ON status_page_component;
-- squawk-ignore ban-drop-function
DROP FUNCTION statusdb_status_page_component_delete_changes();
DROP TRIGGER status_change_check_component_update ON status_change;
DROP TRIGGER status_change_check_component_insert ON status_change;
-- squawk-ignore ban-drop-function
DROP FUNCTION statusdb_status_change_check_component();
