-- name: outbox_claim
-- Lease the due changes of up to `limit` components (coalesced per component) to one worker.
WITH heads AS (
    -- The oldest pending change of each component (served by status_change_pending_idx).
    SELECT DISTINCT ON (sc.component_id) sc.id, sc.changed_at
    FROM status_change sc
    WHERE sc.notified_at IS NULL
    ORDER BY sc.component_id, sc.seq
),
locked AS (
    -- Due once the first change is older than the hold-down window; skip what another worker
    -- holds (locked now, or leased and not expired).
    SELECT sc.id, sc.component_id, sc.changed_at
    FROM status_change sc
    WHERE sc.id IN (SELECT h.id FROM heads h
                    WHERE h.changed_at <= now() - %(hold_down)s::interval)
      AND sc.notified_at IS NULL
      AND (sc.lease_expires_at IS NULL OR sc.lease_expires_at < now())
    ORDER BY sc.changed_at, sc.id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
claimed AS (
    -- The whole window of each locked component: its changes coalesce into one notification.
    UPDATE status_change sc
    SET lease_owner = %(worker)s,
        lease_expires_at = now() + %(lease)s::interval
    FROM locked
    WHERE sc.component_id = locked.component_id
      AND sc.notified_at IS NULL
      AND sc.changed_at <= locked.changed_at + %(hold_down)s::interval
    RETURNING sc.id, sc.seq, sc.status_page_id, sc.component_id, sc.previous_status,
              sc.new_status, sc.cause, sc.incident_id, sc.maintenance_window_id, sc.changed_at
),
grouped AS (
    SELECT claimed.component_id,
           min(claimed.status_page_id) AS status_page_id,
           array_agg(claimed.id ORDER BY claimed.seq) AS change_ids,
           min(claimed.seq) AS first_seq,
           (array_agg(claimed.previous_status ORDER BY claimed.seq))[1] AS previous_status,
           (array_agg(claimed.new_status ORDER BY claimed.seq DESC))[1] AS new_status,
           (array_agg(claimed.cause ORDER BY claimed.seq DESC))[1] AS cause,
           (array_agg(claimed.incident_id ORDER BY claimed.seq DESC))[1] AS incident_id,
           (array_agg(claimed.maintenance_window_id ORDER BY claimed.seq DESC))[1]
               AS maintenance_window_id,
           min(claimed.changed_at) AS first_changed_at,
           max(claimed.changed_at) AS last_changed_at
    FROM claimed
    GROUP BY claimed.component_id
)
-- folded_into (issue 27, the folding rule of docs/notifications.md): the one event kind that
-- already tells of this change, so that a subscriber hears of it exactly once. The change's
-- telling event is the latest lifecycle event of what caused it (a status incident publishing
-- its platform incident on this page: created, re-opened, resolved; its maintenance window:
-- started, completed, cancelled), when that event
--   * says what the change did: resolved for a change to OPERATIONAL, created or re-opened for
--     one from OPERATIONAL or UNDER_MAINTENANCE to degraded or an outage (the component went
--     down; a change of how far down, a priority change, is news of its own); started for a
--     change to UNDER_MAINTENANCE, completed or cancelled for one out of it;
--   * covers the component (its component_ids contain it, or are empty: the whole page), so
--     that it reaches every follower of the component;
--   * was written after the component's previous change, so that one event tells one change
--     (a change the event came too early for is news of its own).
-- Subscribers wanting that kind get the event and not the change; the others, the change
-- (statusdb_notification_recipients). No telling event: nothing folded. A status incident
-- published after the hold-down window comes too late to fold the change.
SELECT grouped.status_page_id, p.name AS page_name, p.slug AS page_slug,
       p.time_zone AS page_time_zone, grouped.component_id, c.name AS component_name,
       grouped.change_ids, grouped.previous_status, grouped.new_status, grouped.cause,
       grouped.incident_id, grouped.maintenance_window_id,
       coalesce(w.notify_subscribers, true) AS notify_subscribers,
       grouped.first_changed_at, grouped.last_changed_at,
       CASE
           WHEN told.kind IS NOT NULL
                AND CASE told.kind
                        WHEN 'incident_resolved' THEN grouped.new_status = 'OPERATIONAL'
                        WHEN 'maintenance_started' THEN grouped.new_status = 'UNDER_MAINTENANCE'
                        WHEN 'maintenance_completed'
                            THEN grouped.previous_status = 'UNDER_MAINTENANCE'
                        WHEN 'maintenance_cancelled'
                            THEN grouped.previous_status = 'UNDER_MAINTENANCE'
                        ELSE grouped.previous_status IN ('OPERATIONAL', 'UNDER_MAINTENANCE')
                             AND grouped.new_status NOT IN ('OPERATIONAL', 'UNDER_MAINTENANCE')
                    END
                AND (told.component_ids = '{}'
                     OR told.component_ids @> ARRAY[grouped.component_id])
                AND (previous.changed_at IS NULL OR told.created_at > previous.changed_at)
               THEN ARRAY[told.kind]
           ELSE '{}'::text[]
       END AS folded_into
FROM grouped
JOIN status_page_component c ON c.id = grouped.component_id
JOIN status_page p ON p.id = grouped.status_page_id
LEFT JOIN maintenance_window w ON w.id = grouped.maintenance_window_id
LEFT JOIN LATERAL (
    -- The component's change before this group (status_change_component_id_seq_idx).
    SELECT sc.changed_at
    FROM status_change sc
    WHERE sc.component_id = grouped.component_id
      AND sc.seq < grouped.first_seq
    ORDER BY sc.seq DESC
    LIMIT 1
) AS previous ON true
LEFT JOIN LATERAL (
    -- The latest lifecycle event of the cause (notification_event_*_id_idx).
    SELECT lifecycle.kind, lifecycle.component_ids, lifecycle.created_at
    FROM (SELECT e.seq, e.kind, e.component_ids, e.created_at
          FROM status_incident si
          JOIN notification_event e ON e.status_incident_id = si.id
          WHERE grouped.cause = 'INCIDENT'
            AND si.incident_id = grouped.incident_id
            AND si.status_page_id = grouped.status_page_id
            AND e.kind IN ('incident_created', 'incident_reopened', 'incident_resolved')
          UNION ALL
          SELECT e.seq, e.kind, e.component_ids, e.created_at
          FROM notification_event e
          WHERE grouped.cause = 'MAINTENANCE'
            AND e.maintenance_window_id = grouped.maintenance_window_id
            AND e.kind IN ('maintenance_started', 'maintenance_completed',
                           'maintenance_cancelled')) AS lifecycle
    ORDER BY lifecycle.seq DESC
    LIMIT 1
) AS told ON true
ORDER BY grouped.first_changed_at, grouped.component_id;

-- name: outbox_complete
-- Mark a claimed group notified, only if this worker still owns every row of it.
WITH owned AS (
    SELECT sc.id
    FROM status_change sc
    WHERE sc.id = ANY (%(change_ids)s::text[])
      AND sc.lease_owner = %(worker)s
      AND sc.notified_at IS NULL
    FOR UPDATE
),
complete AS (
    SELECT count(*) = cardinality(%(change_ids)s::text[]) AS ok FROM owned
)
UPDATE status_change sc
SET notified_at = now(),
    outcome = %(outcome)s,
    lease_owner = NULL,
    lease_expires_at = NULL
FROM complete
WHERE complete.ok AND sc.id IN (SELECT owned.id FROM owned);

-- name: outbox_release
-- Give a claimed group back before its lease expires (delivery failed; retry later).
UPDATE status_change
SET lease_owner = NULL,
    lease_expires_at = NULL
WHERE id = ANY (%(change_ids)s::text[])
  AND lease_owner = %(worker)s
  AND notified_at IS NULL;

-- name: outbox_recipients
-- Subscribers to tell of one change: the one predicate (statusdb_notification_recipients, 0018).
-- Active, verified, following the component or all components, wanting one of the change's
-- types and none of the event kinds that already tell of it (folded_into, see outbox_claim).
SELECT r.subscriber_id, r.channel, r.destination
FROM statusdb_notification_recipients(%(status_page_id)s, ARRAY[%(component_id)s]::text[],
                                      %(notify_types)s::text[], %(folded_into)s::text[]) AS r;

-- name: outbox_pending_count
-- How many logged changes still wait to be notified (for monitoring).
SELECT count(*) AS pending
FROM status_change
WHERE notified_at IS NULL;

-- name: event_claim
-- Lease the pending notification events of up to `limit` subjects to one worker: each subject's
-- oldest pending event and up to `per_subject` - 1 of the events after it, in order (issue 27:
-- N quick updates to one incident go out in one round), so that a subject's events reach
-- subscribers in order; what another worker holds is skipped (locked now, or leased and not
-- expired), as in outbox_claim. The outcome a completion records is decided here: MUTED for a
-- window with notify_subscribers off, OBSOLETE for a reminder whose occurrence no longer comes
-- (window cancelled, moved or deleted), else NOTIFIED.
WITH heads AS (
    SELECT DISTINCT ON (e.subject_id) e.id
    FROM notification_event e
    WHERE e.notified_at IS NULL
    ORDER BY e.subject_id, e.seq
),
locked AS (
    SELECT e.id, e.subject_id, e.seq
    FROM notification_event e
    WHERE e.id IN (SELECT h.id FROM heads h)
      AND e.notified_at IS NULL
      AND (e.lease_expires_at IS NULL OR e.lease_expires_at < now())
    ORDER BY e.seq
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
batch AS (
    -- The head and the next pending events of its subject (notification_event_pending_idx).
    SELECT later.id
    FROM locked
    CROSS JOIN LATERAL (
        SELECT e.id
        FROM notification_event e
        WHERE e.subject_id = locked.subject_id
          AND e.notified_at IS NULL
          AND e.seq >= locked.seq
          AND (e.id = locked.id OR e.lease_expires_at IS NULL OR e.lease_expires_at < now())
        ORDER BY e.seq
        LIMIT %(per_subject)s
    ) AS later
),
claimed AS (
    UPDATE notification_event e
    SET lease_owner = %(worker)s,
        lease_expires_at = now() + %(lease)s::interval
    WHERE e.id IN (SELECT batch.id FROM batch)
    RETURNING e.id, e.seq, e.status_page_id, e.kind, e.maintenance_window_id,
              e.occurrence_start, e.component_ids, e.payload, e.created_at, e.subject_id
)
SELECT claimed.id, claimed.status_page_id, p.time_zone AS page_time_zone, claimed.kind,
       claimed.component_ids, claimed.payload, claimed.created_at,
       CASE
           WHEN claimed.kind = 'maintenance_reminder'
                AND (w.id IS NULL OR w.status <> 'SCHEDULED'
                     OR w.start_time <> claimed.occurrence_start)
               THEN 'OBSOLETE'
           WHEN claimed.maintenance_window_id IS NOT NULL
                AND NOT coalesce(w.notify_subscribers, true)
               THEN 'MUTED'
           ELSE 'NOTIFIED'
       END AS outcome,
       claimed.subject_id
FROM claimed
JOIN status_page p ON p.id = claimed.status_page_id
LEFT JOIN maintenance_window w ON w.id = claimed.maintenance_window_id
ORDER BY claimed.seq;

-- name: event_complete
-- Mark a claimed event done, only if this worker still holds it.
UPDATE notification_event
SET notified_at = now(),
    outcome = %(outcome)s,
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE id = %(id)s
  AND lease_owner = %(worker)s
  AND notified_at IS NULL;

-- name: event_release
-- Give a claimed event back before its lease expires (delivery failed; retry later).
UPDATE notification_event
SET lease_owner = NULL,
    lease_expires_at = NULL
WHERE id = %(id)s
  AND lease_owner = %(worker)s
  AND notified_at IS NULL;

-- name: event_recipients
-- Subscribers to tell of one event: the one predicate (statusdb_notification_recipients).
SELECT r.subscriber_id, r.channel, r.destination
FROM statusdb_notification_recipients(%(status_page_id)s, %(component_ids)s::text[],
                                      ARRAY[%(kind)s]::text[], '{}'::text[]) AS r;

-- name: event_pending_count
-- How many notification events still wait to be notified (for monitoring).
SELECT count(*) AS pending
FROM notification_event
WHERE notified_at IS NULL;

-- name: event_remind
-- The scheduler's reminders for its now (statusdb_maintenance_remind, 0018); how many written.
SELECT statusdb_maintenance_remind(%(now)s) AS written;

-- name: outbox_renew
-- Extend this worker's leases on claimed changes (a long fan-out, issue 27); the ids still held.
UPDATE status_change
SET lease_expires_at = now() + %(lease)s::interval
WHERE id = ANY (%(change_ids)s::text[])
  AND lease_owner = %(worker)s
  AND notified_at IS NULL
RETURNING id;

-- name: event_renew
-- Extend this worker's leases on claimed events (a long fan-out, issue 27); the ids still held.
UPDATE notification_event
SET lease_expires_at = now() + %(lease)s::interval
WHERE id = ANY (%(ids)s::text[])
  AND lease_owner = %(worker)s
  AND notified_at IS NULL
RETURNING id;

-- name: outbox_recipients_resume
-- outbox_recipients without the subscribers already recorded in delivery_attempt under the
-- change's key (a re-claimed fan-out with bookkeeping resumes instead of starting over).
SELECT r.subscriber_id, r.channel, r.destination
FROM statusdb_notification_recipients(%(status_page_id)s, ARRAY[%(component_id)s]::text[],
                                      %(notify_types)s::text[], %(folded_into)s::text[]) AS r
WHERE NOT EXISTS (SELECT 1 FROM delivery_attempt a
                  WHERE a.notification_key = %(key)s AND a.subscriber_id = r.subscriber_id);

-- name: event_recipients_resume
-- event_recipients without the subscribers already recorded under the event's key.
SELECT r.subscriber_id, r.channel, r.destination
FROM statusdb_notification_recipients(%(status_page_id)s, %(component_ids)s::text[],
                                      ARRAY[%(kind)s]::text[], '{}'::text[]) AS r
WHERE NOT EXISTS (SELECT 1 FROM delivery_attempt a
                  WHERE a.notification_key = %(key)s AND a.subscriber_id = r.subscriber_id);

-- name: delivery_key_started
-- Whether any attempt is recorded under a notification key (a fan-out to resume).
SELECT EXISTS (SELECT 1 FROM delivery_attempt WHERE notification_key = %(key)s) AS started;
