-- name: incident_create
-- Open a platform incident; component statuses follow by trigger.
INSERT INTO incident (team_id, title, priority, status, service_identifier)
VALUES (%(team_id)s, %(title)s, %(priority)s, %(status)s, %(service_identifier)s)
RETURNING id, team_id, title, priority, status, service_identifier, created_at, updated_at,
          resolved_at;

-- name: incident_get
-- Fetch one platform incident by id.
SELECT id, team_id, title, priority, status, service_identifier, created_at, updated_at,
       resolved_at
FROM incident
WHERE id = %(id)s;

-- name: incident_list_for_team
-- A team's incidents, newest first; only the active ones (OPEN, ACKNOWLEDGED) when asked.
SELECT id, team_id, title, priority, status, service_identifier, created_at, updated_at,
       resolved_at
FROM incident
WHERE team_id = %(team_id)s
  AND (NOT %(active_only)s OR status IN ('OPEN', 'ACKNOWLEDGED'))
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s;

-- name: incident_update
-- Change any of title, priority, status, service identifier (a flag per field says which).
UPDATE incident
SET title = CASE WHEN %(set_title)s THEN %(title)s ELSE title END,
    priority = CASE WHEN %(set_priority)s THEN %(priority)s ELSE priority END,
    status = CASE WHEN %(set_status)s THEN %(status)s ELSE status END,
    service_identifier = CASE WHEN %(set_service_identifier)s THEN %(service_identifier)s
                              ELSE service_identifier END
WHERE id = %(id)s
RETURNING id, team_id, title, priority, status, service_identifier, created_at, updated_at,
          resolved_at;

-- name: incident_delete
-- Delete a platform incident (status incidents keep their history, unlinked).
DELETE FROM incident
WHERE id = %(id)s;
