-- name: component_create
-- Insert a component on a page.
INSERT INTO status_page_component (status_page_id, name, description, display_order, team_id,
                                   service_identifier)
VALUES (%(status_page_id)s, %(name)s, %(description)s, %(display_order)s, %(team_id)s,
        %(service_identifier)s)
RETURNING id, status_page_id, name, description, display_order, team_id, service_identifier,
          manual_status, current_status, status_updated_at, created_at, updated_at;

-- name: component_get
-- Fetch one component by id.
SELECT id, status_page_id, name, description, display_order, team_id, service_identifier,
       manual_status, current_status, status_updated_at, created_at, updated_at
FROM status_page_component
WHERE id = %(id)s;

-- name: component_list_for_page
-- A page's components in display order.
SELECT id, status_page_id, name, description, display_order, team_id, service_identifier,
       manual_status, current_status, status_updated_at, created_at, updated_at
FROM status_page_component
WHERE status_page_id = %(status_page_id)s
ORDER BY display_order, name, id;

-- name: component_update
-- Change any of name, description, display order, team, service (a flag per field says which).
UPDATE status_page_component
SET name = CASE WHEN %(set_name)s THEN %(name)s ELSE name END,
    description = CASE WHEN %(set_description)s THEN %(description)s ELSE description END,
    display_order = CASE WHEN %(set_display_order)s THEN %(display_order)s ELSE display_order END,
    team_id = CASE WHEN %(set_team_id)s THEN %(team_id)s ELSE team_id END,
    service_identifier = CASE WHEN %(set_service_identifier)s THEN %(service_identifier)s
                              ELSE service_identifier END
WHERE id = %(id)s
RETURNING id, status_page_id, name, description, display_order, team_id, service_identifier,
          manual_status, current_status, status_updated_at, created_at, updated_at;

-- name: component_delete
-- Delete a component (its id leaves subscriber and incident lists by trigger).
DELETE FROM status_page_component
WHERE id = %(id)s;

-- name: component_set_manual_status
-- Set the status of a component without a team; a team-driven one is reported, not changed.
WITH target AS (
    SELECT id, team_id
    FROM status_page_component
    WHERE id = %(id)s
),
updated AS (
    UPDATE status_page_component c
    SET manual_status = %(status)s
    FROM target
    WHERE c.id = target.id AND target.team_id IS NULL
    RETURNING c.id, c.status_page_id, c.name, c.description, c.display_order, c.team_id,
              c.service_identifier, c.manual_status, c.current_status, c.status_updated_at,
              c.created_at, c.updated_at
)
SELECT target.team_id IS NOT NULL AS team_driven, updated.id, updated.status_page_id,
       updated.name, updated.description, updated.display_order, updated.team_id,
       updated.service_identifier, updated.manual_status, updated.current_status,
       updated.status_updated_at, updated.created_at, updated.updated_at
FROM target
LEFT JOIN updated ON updated.id = target.id;
