-- Reverts 0017_page_snapshot: the page view renders at every read again (0014's function), and
-- the snapshots, their triggers, renderer and repair are dropped. Nothing is lost that the
-- tables do not hold: every snapshot is a rendering of the pages' rows (the versions are not
-- kept; caches keyed on them simply miss once: 0017 starts its versions at the clock, in
-- microseconds, so a re-applied 0017 never hands out a version an earlier one did).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';
-- Rolling back drops what the forward migration created; that is its purpose, so the drop
-- warnings (meant for forward migrations) are switched off here.
-- squawk-ignore-file ban-drop-table, ban-drop-function, ban-drop-sequence

DROP FUNCTION statusdb_page_view(text, bytea, interval, integer, bigint);

DROP TRIGGER status_page_snapshot_insert ON status_page;
DROP TRIGGER status_page_snapshot_update ON status_page;
DROP TRIGGER status_page_component_snapshot_insert ON status_page_component;
DROP TRIGGER status_page_component_snapshot_update ON status_page_component;
DROP TRIGGER status_page_component_snapshot_delete ON status_page_component;
DROP TRIGGER status_incident_snapshot_insert ON status_incident;
DROP TRIGGER status_incident_snapshot_update ON status_incident;
DROP TRIGGER status_incident_snapshot_delete ON status_incident;
DROP TRIGGER maintenance_window_snapshot_insert ON maintenance_window;
DROP TRIGGER maintenance_window_snapshot_update ON maintenance_window;
DROP TRIGGER maintenance_window_snapshot_delete ON maintenance_window;
DROP TRIGGER maintenance_window_component_snapshot_insert ON maintenance_window_component;
DROP TRIGGER maintenance_window_component_snapshot_update ON maintenance_window_component;
DROP TRIGGER maintenance_window_component_snapshot_delete ON maintenance_window_component;

DROP FUNCTION statusdb_status_page_snapshot();
DROP FUNCTION statusdb_status_page_component_snapshot();
DROP FUNCTION statusdb_status_incident_snapshot();
DROP FUNCTION statusdb_maintenance_window_snapshot();
DROP FUNCTION statusdb_maintenance_window_component_snapshot();
DROP FUNCTION statusdb_page_snapshot_repair(boolean);
DROP FUNCTION statusdb_page_snapshot_create(text[]);
DROP FUNCTION statusdb_page_snapshot_refresh(text[]);
DROP FUNCTION statusdb_page_render(text[]);

DROP TABLE status_page_snapshot;
DROP SEQUENCE status_page_snapshot_version_seq;

-- 0014's page view, with its grants.
CREATE FUNCTION statusdb_page_view(
    page_slug text, page_token_hash bytea, maintenance_horizon interval, maintenance_limit integer
)
RETURNS TABLE (
    id text, name text, description text, slug text, is_public boolean, updated_at timestamptz,
    components json, incidents json, maintenance json
)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = public, pg_temp
ROWS 1
AS $$
#variable_conflict use_column
DECLARE
    horizon interval := coalesce(maintenance_horizon, interval '7 days');
    window_limit integer := coalesce(maintenance_limit, 20);
    stored_hash bytea;
BEGIN
    IF horizon < interval '0' OR horizon > interval '366 days' THEN
        RAISE EXCEPTION 'maintenance_horizon must be from 0 to 366 days, not %', horizon
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF window_limit < 0 OR window_limit > 200 THEN
        RAISE EXCEPTION 'maintenance_limit must be from 0 to 200, not %', window_limit
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(page_slug) > 100 THEN
        RETURN;  -- no slug is that long: like an unknown slug
    END IF;
    IF octet_length(page_token_hash) = 32 THEN
        stored_hash := sha256(page_token_hash);
    END IF;
    RETURN QUERY
    WITH page AS (
        SELECT p.id, p.name, p.description, p.slug, p.is_public, p.updated_at
        FROM status_page p
        WHERE p.slug = page_slug
          AND (p.is_public OR p.access_token_hash = stored_hash)
    ),
    page_components AS (
        SELECT coalesce(json_agg(json_build_array(c.id, c.name, c.description, c.display_order,
                                                  c.current_status, c.status_updated_at)
                                 ORDER BY c.display_order, c.name, c.id), '[]') AS items,
               max(c.status_updated_at) AS last_change
        FROM page
        JOIN status_page_component c ON c.status_page_id = page.id
    ),
    page_incidents AS (
        SELECT coalesce(json_agg(json_build_array(i.id, i.title, i.message, i.severity, i.status,
                                                  i.affected_component_ids, i.created_at,
                                                  i.updated_at, i.updates)
                                 ORDER BY i.created_at DESC, i.id DESC), '[]') AS items,
               max(i.updated_at) AS last_change
        FROM page
        JOIN status_incident i ON i.status_page_id = page.id
        WHERE i.status IN ('INVESTIGATING', 'IDENTIFIED', 'MONITORING')
    ),
    page_maintenance AS (
        SELECT coalesce(json_agg(json_build_array(w.id, w.title, w.description, w.status,
                                                  w.start_time, w.end_time, w.component_ids)
                                 ORDER BY w.start_time, w.id), '[]') AS items
        FROM (
            SELECT w.id, w.title, w.description, w.status, w.start_time, w.end_time,
                   ARRAY(SELECT mc.component_id
                         FROM maintenance_window_component mc
                         WHERE mc.maintenance_window_id = w.id
                         ORDER BY mc.component_id) AS component_ids
            FROM page
            JOIN maintenance_window w ON w.status_page_id = page.id
            WHERE w.status = 'IN_PROGRESS'
               OR (w.status = 'SCHEDULED' AND w.start_time < now() + horizon)
            ORDER BY w.start_time, w.id
            LIMIT window_limit
        ) AS w
    )
    SELECT page.id, page.name, page.description, page.slug, page.is_public,
           greatest(page.updated_at, page_components.last_change, page_incidents.last_change),
           page_components.items, page_incidents.items, page_maintenance.items
    FROM page, page_components, page_incidents, page_maintenance;
END;
$$;

COMMENT ON FUNCTION statusdb_page_view(text, bytea, interval, integer) IS
    'A status page as its readers see it; private pages only with the SHA-256 digest of their '
    'access token. Horizon 0 to 366 days (null: 7 days), limit 0 to 200 windows (null: 20).';

REVOKE EXECUTE ON FUNCTION statusdb_page_view(text, bytea, interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION statusdb_page_view(text, bytea, interval, integer)
    TO statusdb_app, statusdb_reader;
