-- name: incident_template_create
-- Insert an incident template on a page; no row when the page does not exist.
INSERT INTO status_incident_template (status_page_id, name, title, message, severity,
                                      affected_component_ids)
SELECT p.id, %(name)s, %(title)s, %(message)s, %(severity)s, %(affected_component_ids)s::text[]
FROM status_page p
WHERE p.id = %(status_page_id)s
RETURNING id, status_page_id, name, title, message, severity, affected_component_ids,
          created_at, updated_at;

-- name: incident_template_get
-- Fetch one incident template by id.
SELECT id, status_page_id, name, title, message, severity, affected_component_ids,
       created_at, updated_at
FROM status_incident_template
WHERE id = %(id)s;

-- name: incident_template_list_for_page
-- A page's incident templates by name, after a name (keyset; none: from the first), bounded (served by status_incident_template_status_page_id_name_key).
SELECT id, status_page_id, name, title, message, severity, affected_component_ids,
       created_at, updated_at
FROM status_incident_template
WHERE status_page_id = %(status_page_id)s
  AND name > COALESCE(%(after_name)s::text, '')
ORDER BY name
LIMIT %(limit)s;

-- name: incident_template_update
-- Change any of name, title, message, severity, affected components (a flag per field says which).
UPDATE status_incident_template
SET name = CASE WHEN %(set_name)s THEN %(name)s ELSE name END,
    title = CASE WHEN %(set_title)s THEN %(title)s ELSE title END,
    message = CASE WHEN %(set_message)s THEN %(message)s ELSE message END,
    severity = CASE WHEN %(set_severity)s THEN %(severity)s ELSE severity END,
    affected_component_ids = CASE WHEN %(set_affected_component_ids)s
                                  THEN %(affected_component_ids)s::text[]
                                  ELSE affected_component_ids END
WHERE id = %(id)s
RETURNING id, status_page_id, name, title, message, severity, affected_component_ids,
          created_at, updated_at;

-- name: incident_template_delete
-- Delete an incident template (incidents made from it are not touched).
DELETE FROM status_incident_template
WHERE id = %(id)s;
