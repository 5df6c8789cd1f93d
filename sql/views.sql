-- name: page_view_by_slug
-- A page as its readers see it (components, active incidents, upcoming maintenance) in one trip.
-- A private page is returned only with the right token digest: a wrong or missing token finds
-- nothing, exactly like an unknown slug. Nothing internal (team, service, platform incident,
-- creator, token digest) is selected.
WITH page AS (
    SELECT p.id, p.name, p.description, p.slug, p.is_public, p.updated_at
    FROM status_page p
    WHERE p.slug = %(slug)s
      AND (p.is_public OR p.access_token_hash = %(token_hash)s)
),
components AS (
    SELECT coalesce(json_agg(json_build_array(c.id, c.name, c.description, c.display_order,
                                              c.current_status, c.status_updated_at)
                             ORDER BY c.display_order, c.name, c.id), '[]') AS items,
           max(c.status_updated_at) AS last_change
    FROM page
    JOIN status_page_component c ON c.status_page_id = page.id
),
incidents AS (
    SELECT coalesce(json_agg(json_build_array(i.id, i.title, i.message, i.severity, i.status,
                                              i.affected_component_ids, i.created_at,
                                              i.updated_at, i.updates)
                             ORDER BY i.created_at DESC, i.id DESC), '[]') AS items,
           max(i.updated_at) AS last_change
    FROM page
    JOIN status_incident i ON i.status_page_id = page.id
    WHERE i.status IN ('INVESTIGATING', 'IDENTIFIED', 'MONITORING')
),
maintenance AS (
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
           OR (w.status = 'SCHEDULED' AND w.start_time < now() + %(horizon)s::interval)
        ORDER BY w.start_time, w.id
        LIMIT %(maintenance_limit)s
    ) AS w
)
SELECT page.id, page.name, page.description, page.slug, page.is_public,
       greatest(page.updated_at, components.last_change, incidents.last_change) AS updated_at,
       components.items AS components,
       incidents.items AS incidents,
       maintenance.items AS maintenance
FROM page, components, incidents, maintenance;
