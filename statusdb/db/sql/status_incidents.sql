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
-- One page of a status page's incidents resolved in the last N days, newest resolved first, after a keyset position (none: from the top), each with its postmortem as it reads now (0022; null: none); served by status_incident_resolved_history_idx.
SELECT i.id, i.status_page_id, i.incident_id, i.title, i.message, i.severity, i.status,
       i.affected_component_ids, i.created_at, i.updated_at, i.resolved_at, i.updates,
       pm.revision AS postmortem_revision, pm.body AS postmortem_body,
       pm.published_at AS postmortem_published_at, pm.written_at AS postmortem_updated_at
FROM status_incident i
LEFT JOIN LATERAL (
    SELECT p.revision, p.body, p.written_at,
           (SELECT f.written_at FROM status_incident_postmortem f
            WHERE f.status_incident_id = i.id AND f.revision = 1) AS published_at
    FROM status_incident_postmortem p
    WHERE p.status_incident_id = i.id
    ORDER BY p.revision DESC
    LIMIT 1
) AS pm ON true
WHERE i.status_page_id = %(status_page_id)s
  AND i.status = 'RESOLVED'
  AND i.resolved_at >= now() - make_interval(days => %(days)s::integer)
  AND (i.resolved_at, i.id) < (COALESCE(%(after_resolved_at)s::timestamptz, 'infinity'),
                               COALESCE(%(after_id)s::text, ''))
ORDER BY i.resolved_at DESC, i.id DESC
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

-- name: postmortem_publish
-- Publish a resolved status incident's postmortem: revision 1 (the trigger of migration 0022 refuses an incident that is not RESOLVED, and revision 1 when it exists); no row for an unknown incident.
INSERT INTO status_incident_postmortem (status_incident_id, revision, body, written_by_id)
SELECT i.id, 1, %(body)s, %(written_by_id)s
FROM status_incident i
WHERE i.id = %(status_incident_id)s
RETURNING status_incident_id, revision, body, written_at, written_by_id;

-- name: postmortem_edit
-- Add the next revision of a published postmortem (expected_revision, when given, must be the latest one: the trigger refuses otherwise); no row when none was published.
INSERT INTO status_incident_postmortem (status_incident_id, revision, body, written_by_id)
SELECT p.status_incident_id, %(expected_revision)s::integer + 1, %(body)s, %(written_by_id)s
FROM status_incident_postmortem p
WHERE p.status_incident_id = %(status_incident_id)s AND p.revision = 1
RETURNING status_incident_id, revision, body, written_at, written_by_id;

-- name: postmortem_get
-- A postmortem as it read at an instant (null: now): its latest revision written by then, with its publication time.
SELECT p.status_incident_id, p.revision, p.body, pub.written_at AS published_at,
       p.written_at AS updated_at
FROM status_incident_postmortem p
JOIN status_incident_postmortem pub
  ON pub.status_incident_id = p.status_incident_id AND pub.revision = 1
WHERE p.status_incident_id = %(status_incident_id)s
  AND p.written_at <= COALESCE(%(at)s::timestamptz, 'infinity')
ORDER BY p.revision DESC
LIMIT 1;

-- name: postmortem_revisions
-- Every revision of a status incident's postmortem, oldest first (bounded by the caller's limit).
SELECT status_incident_id, revision, body, written_at, written_by_id
FROM status_incident_postmortem
WHERE status_incident_id = %(status_incident_id)s
ORDER BY revision
LIMIT %(limit)s;
