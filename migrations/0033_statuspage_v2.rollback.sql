-- statusdb 0033 rollback: drop the Statuspage v2 document function and the snapshot's history
-- (derived data only: every writer renders it again after a later migrate), and restore the
-- snapshot's writers as 0020 left them.

-- squawk-ignore-file ban-drop-function, ban-drop-column

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

DROP FUNCTION statusdb_page_statuspage(text, bytea, interval, integer, bigint, text);

CREATE OR REPLACE FUNCTION statusdb_page_snapshot_refresh(page_ids text[])
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

CREATE OR REPLACE FUNCTION statusdb_page_snapshot_create(page_ids text[])
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
    announced bigint;
BEGIN
    WITH created AS (
        INSERT INTO status_page_snapshot (page_id, version, slug, is_public, access_token_hash,
                                          name, description, updated_at, components,
                                          incidents, windows, window_starts, window_scheduled, groups)
        SELECT r.page_id, nextval('status_page_snapshot_version_seq'), r.slug, r.is_public,
               r.access_token_hash, r.name, r.description, r.updated_at, r.components,
               r.incidents, r.windows, r.window_starts, r.window_scheduled, r.groups
        FROM statusdb_page_render(page_ids) AS r
        ORDER BY r.page_id
        ON CONFLICT (page_id) DO NOTHING
        RETURNING version
    )
    SELECT count(pg_notify('statusdb_page_version', (created.version * 256)::text))
    INTO STRICT announced
    FROM created;
END;
$function$;

CREATE OR REPLACE FUNCTION statusdb_page_snapshot_repair(repair boolean)
 RETURNS TABLE(page_id text, stored_version bigint)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
#variable_conflict use_column
DECLARE
    missing text[];
    drifted text[];
BEGIN
    -- One pass over the pages (the operator's repair, as statusdb_recompute_statuses: no
    -- argument to bound). Pages without a snapshot are reported with a null version.
    missing := ARRAY(SELECT p.id FROM status_page p
                     WHERE NOT EXISTS (SELECT 1 FROM status_page_snapshot s
                                       WHERE s.page_id = p.id)
                     ORDER BY p.id);
    drifted := ARRAY(
        SELECT s.page_id
        FROM status_page_snapshot s
        JOIN statusdb_page_render(ARRAY(SELECT p.id FROM status_page p)) AS r
          ON r.page_id = s.page_id
        WHERE (s.slug, s.is_public, s.access_token_hash, s.name, s.description, s.updated_at,
               s.components::text, s.incidents::text, s.windows::text,
               s.window_starts, s.window_scheduled, s.groups::text)
              IS DISTINCT FROM
              (r.slug, r.is_public, r.access_token_hash, r.name, r.description, r.updated_at,
               r.components::text, r.incidents::text, r.windows::text,
               r.window_starts, r.window_scheduled, r.groups::text)
        ORDER BY s.page_id);
    RETURN QUERY
    SELECT m, NULL::bigint FROM unnest(missing) AS m
    UNION ALL
    SELECT s.page_id, s.version * 256 FROM status_page_snapshot s
    WHERE s.page_id = ANY (drifted)
    ORDER BY 1;
    IF repair THEN
        PERFORM statusdb_page_snapshot_create(missing);
        PERFORM statusdb_page_snapshot_refresh(drifted);
    END IF;
END;
$function$;

DROP FUNCTION statusdb_page_render_history(text[]);
ALTER TABLE status_page_snapshot DROP COLUMN history;
