-- name: status_incident_create
-- Insert a status incident with its first timeline entry (at now(), in UTC); no row when the page does not exist.
INSERT INTO status_incident (status_page_id, incident_id, title, message, severity, status,
                             affected_component_ids, updates)
SELECT p.id, %(incident_id)s, %(title)s, %(message)s, %(severity)s, %(status)s,
       %(affected_component_ids)s::text[],
       jsonb_build_array(jsonb_build_object(
           'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           'status', %(status)s::text,
           'message', %(message)s::text))
FROM status_page p
WHERE p.id = %(status_page_id)s
RETURNING id, status_page_id, incident_id, title, message, severity, status,
          affected_component_ids, created_at, updated_at, resolved_at, updates;

-- name: status_incident_get
-- Fetch one status incident by id.
SELECT id, status_page_id, incident_id, title, message, severity, status, affected_component_ids,
       created_at, updated_at, resolved_at, updates
FROM status_incident
WHERE id = %(id)s;

-- name: status_incident_add_update
-- Append a timeline entry and make its status and message current, atomically (the row lock serialises writers; the timestamp is taken once the lock is held).
UPDATE status_incident
SET status = %(status)s,
    message = %(message)s,
    updates = updates || jsonb_build_array(jsonb_build_object(
        'timestamp', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'status', %(status)s::text,
        'message', %(message)s::text))
WHERE id = %(id)s
RETURNING id, status_page_id, incident_id, title, message, severity, status,
          affected_component_ids, created_at, updated_at, resolved_at, updates;

-- name: status_incident_edit
-- Change any of title, message, severity, affected components (a flag per field says which); the timeline is left alone.
UPDATE status_incident
SET title = CASE WHEN %(set_title)s THEN %(title)s ELSE title END,
    message = CASE WHEN %(set_message)s THEN %(message)s ELSE message END,
    severity = CASE WHEN %(set_severity)s THEN %(severity)s ELSE severity END,
    affected_component_ids = CASE WHEN %(set_affected_component_ids)s
                                  THEN %(affected_component_ids)s::text[]
                                  ELSE affected_component_ids END
WHERE id = %(id)s
RETURNING id, status_page_id, incident_id, title, message, severity, status,
          affected_component_ids, created_at, updated_at, resolved_at, updates;

-- name: status_incident_list_active
-- A page's unresolved status incidents, newest first (served by status_incident_status_page_id_status_idx).
SELECT id, status_page_id, incident_id, title, message, severity, status, affected_component_ids,
       created_at, updated_at, resolved_at, updates
FROM status_incident
WHERE status_page_id = %(status_page_id)s
  AND status IN ('INVESTIGATING', 'IDENTIFIED', 'MONITORING')
ORDER BY created_at DESC, id DESC;

-- name: status_incident_history
-- One page of a status page's incidents resolved in the last N days, newest resolved first, after a keyset position (none: from the top); served by status_incident_resolved_history_idx.
SELECT id, status_page_id, incident_id, title, message, severity, status, affected_component_ids,
       created_at, updated_at, resolved_at, updates
FROM status_incident
WHERE status_page_id = %(status_page_id)s
  AND status = 'RESOLVED'
  AND resolved_at >= now() - make_interval(days => %(days)s::integer)
  AND (resolved_at, id) < (COALESCE(%(after_resolved_at)s::timestamptz, 'infinity'),
                           COALESCE(%(after_id)s::text, ''))
ORDER BY resolved_at DESC, id DESC
LIMIT %(limit)s;

-- name: status_incident_delete
-- Delete a status incident, timeline included.
DELETE FROM status_incident
WHERE id = %(id)s;

-- name: status_incident_create_from_template
-- Insert a status incident from a template in one statement, each override (non-null) replacing the template's value; no row when the template does not exist (or is not visible).
INSERT INTO status_incident (status_page_id, incident_id, title, message, severity, status,
                             affected_component_ids, updates)
SELECT t.status_page_id, %(incident_id)s,
       COALESCE(%(title)s::text, t.title),
       COALESCE(%(message)s::text, t.message),
       COALESCE(%(severity)s::text, t.severity),
       %(status)s,
       COALESCE(%(affected_component_ids)s::text[], t.affected_component_ids),
       jsonb_build_array(jsonb_build_object(
           'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           'status', %(status)s::text,
           'message', COALESCE(%(message)s::text, t.message)))
FROM status_incident_template t
WHERE t.id = %(template_id)s
RETURNING id, status_page_id, incident_id, title, message, severity, status,
          affected_component_ids, created_at, updated_at, resolved_at, updates;
