-- Reverts 0014_page_view_bounds: 0008's page view (comparing the digest it is given with the
-- stored value, unbounded) and PUBLIC's EXECUTE on every function 0014 took it from.
--
-- The stored access token values cannot be turned back into digests (0014 hashed them once
-- more, on purpose), so after this rollback no private page opens until its token is rotated
-- (statusdb.pages.rotate_access_token, or set_visibility). Hence the rollback refuses while
-- private pages exist, unless statusdb.allow_data_loss = on (statusdb rollback
-- --allow-data-loss; see 0006's rollback for the rule).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

DO $$
DECLARE
    private bigint;
BEGIN
    IF current_setting('statusdb.allow_data_loss', true) = 'on' THEN
        RETURN;
    END IF;
    SELECT count(*) INTO private FROM status_page WHERE access_token_hash IS NOT NULL;
    IF private > 0 THEN
        RAISE EXCEPTION 'rolling back 0014_page_view_bounds would lose data: the access tokens of '
                        '% private pages in status_page would stop working (their stored values '
                        'cannot be converted back; rotate each token afterwards). %', private,
        'Pass --allow-data-loss to statusdb rollback (plain yoyo: '
        'PGOPTIONS=''-c statusdb.allow_data_loss=on'') to roll back anyway.'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END;
$$;

REVOKE EXECUTE ON FUNCTION statusdb_status_lock_key(text, text) FROM statusdb_app;

GRANT EXECUTE ON FUNCTION
    statusdb_touch_updated_at(),
    statusdb_incident_set_resolved_at(),
    statusdb_maintenance_window_component_same_page(),
    statusdb_status_incident_set_resolved_at(),
    statusdb_status_subscriber_check_component_ids(),
    statusdb_status_incident_check_component_ids(),
    statusdb_status_page_component_forget_ids(),
    statusdb_maintenance_window_check_time_zone(),
    statusdb_status_rank(text),
    statusdb_priority_status(text),
    statusdb_derive_status(text, text, text, text),
    statusdb_derive_statuses(text[]),
    statusdb_status_lock_key(text, text)
TO PUBLIC;

COMMENT ON COLUMN status_page.access_token_hash IS NULL;

CREATE OR REPLACE FUNCTION statusdb_page_view(
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
BEGIN
    RETURN QUERY
    WITH page AS (
        SELECT p.id, p.name, p.description, p.slug, p.is_public, p.updated_at
        FROM status_page p
        WHERE p.slug = page_slug
          AND (p.is_public OR p.access_token_hash = page_token_hash)
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
               OR (w.status = 'SCHEDULED' AND w.start_time < now() + maintenance_horizon)
            ORDER BY w.start_time, w.id
            LIMIT maintenance_limit
        ) AS w
    )
    SELECT page.id, page.name, page.description, page.slug, page.is_public,
           greatest(page.updated_at, page_components.last_change, page_incidents.last_change),
           page_components.items, page_incidents.items, page_maintenance.items
    FROM page, page_components, page_incidents, page_maintenance;
END;
$$;

COMMENT ON FUNCTION statusdb_page_view(text, bytea, interval, integer) IS
    'A status page as its readers see it; private pages only with their token digest.';
