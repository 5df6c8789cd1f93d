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
SELECT grouped.status_page_id, grouped.component_id, c.name AS component_name,
       grouped.change_ids, grouped.previous_status, grouped.new_status, grouped.cause,
       grouped.incident_id, grouped.maintenance_window_id,
       coalesce(w.notify_subscribers, true) AS notify_subscribers,
       grouped.first_changed_at, grouped.last_changed_at
FROM grouped
JOIN status_page_component c ON c.id = grouped.component_id
LEFT JOIN maintenance_window w ON w.id = grouped.maintenance_window_id
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
-- Subscribers to tell of one change: active, verified, following the component, wanting a type.
-- Those following everything, those following this component, and those following a group
-- that contains it (0020; not already in the second set): three disjoint sets, each read
-- through its own partial index (0010, 0020); none reads the page's other subscribers.
SELECT s.id, s.channel, s.destination
FROM status_subscriber s
WHERE s.status_page_id = %(status_page_id)s
  AND s.component_ids = '{}'
  AND s.group_ids = '{}'
  AND s.is_active
  AND s.is_verified
  AND s.notify_on && %(notify_types)s::text[]
UNION ALL
SELECT s.id, s.channel, s.destination
FROM status_subscriber s
WHERE s.component_ids @> ARRAY[%(component_id)s]::text[]
  AND s.component_ids <> '{}'
  AND s.is_active
  AND s.is_verified
  AND s.status_page_id = %(status_page_id)s
  AND s.notify_on && %(notify_types)s::text[]
UNION ALL
-- "Follows the component through a group": statusdb_component_group_path (0020) is the one
-- definition of it, for any fan-out.
SELECT s.id, s.channel, s.destination
FROM status_subscriber s
WHERE s.group_ids && statusdb_component_group_path(%(component_id)s)
  AND s.group_ids <> '{}'
  AND s.is_active
  AND s.is_verified
  AND NOT s.component_ids @> ARRAY[%(component_id)s]::text[]
  AND s.status_page_id = %(status_page_id)s
  AND s.notify_on && %(notify_types)s::text[];

-- name: outbox_pending_count
-- How many logged changes still wait to be notified (for monitoring).
SELECT count(*) AS pending
FROM status_change
WHERE notified_at IS NULL;
