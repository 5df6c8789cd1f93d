-- name: delivery_record
-- Record one delivery attempt (the trigger numbers it, schedules its retry and counts it on the subscriber).
INSERT INTO delivery_attempt (notification_key, subscriber_id, attempt, outcome, error,
                              attempted_at, payload)
VALUES (%(notification_key)s, %(subscriber_id)s, 0, %(outcome)s, %(error)s,
        COALESCE(%(attempted_at)s::timestamptz, now()), %(payload)s::jsonb)
RETURNING id, notification_key, subscriber_id, attempt, outcome, error, attempted_at,
          next_attempt_at, lease_owner, lease_expires_at;

-- name: delivery_record_many
-- Record a batch of attempts in one statement, in subscriber id order (so that two batches lock subscribers in the same order and cannot deadlock); attempts for subscribers that no longer exist are skipped.
INSERT INTO delivery_attempt (notification_key, subscriber_id, attempt, outcome, error,
                              attempted_at, payload)
SELECT b.notification_key, b.subscriber_id, 0, b.outcome, b.error,
       COALESCE(b.attempted_at, now()), b.payload
FROM unnest(%(notification_keys)s::text[], %(subscriber_ids)s::text[], %(outcomes)s::text[],
            %(errors)s::text[], %(attempted_ats)s::timestamptz[], %(payloads)s::jsonb[])
     AS b (notification_key, subscriber_id, outcome, error, attempted_at, payload)
WHERE EXISTS (SELECT 1 FROM status_subscriber s WHERE s.id = b.subscriber_id)
ORDER BY b.subscriber_id, b.notification_key;

-- name: delivery_claim_retries
-- Lease up to `limit` due retries (of active subscribers) to one worker; skips what another worker holds (locked now, or leased and not expired).
WITH due AS (
    SELECT a.id
    FROM delivery_attempt a
    WHERE a.next_attempt_at <= COALESCE(%(now)s::timestamptz, now())
      AND (a.lease_expires_at IS NULL
           OR a.lease_expires_at <= COALESCE(%(now)s::timestamptz, now()))
    ORDER BY a.next_attempt_at, a.id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE delivery_attempt a
SET lease_owner = %(worker)s,
    lease_expires_at = COALESCE(%(now)s::timestamptz, now()) + %(lease)s::interval
FROM due, status_subscriber s
WHERE a.id = due.id AND s.id = a.subscriber_id AND s.is_active
RETURNING a.id, a.notification_key, a.subscriber_id, s.channel, s.destination, a.attempt,
          a.next_attempt_at, a.payload::text AS payload_json;

-- name: delivery_release_retry
-- Give a claimed retry back before its lease expires (this worker's claims only).
UPDATE delivery_attempt
SET lease_owner = NULL,
    lease_expires_at = NULL
WHERE id = %(id)s
  AND lease_owner = %(worker)s;

-- name: delivery_give_up_retry
-- Drop a claimed retry without attempting it (nothing to deliver it with); counts nothing on the subscriber.
UPDATE delivery_attempt
SET next_attempt_at = NULL,
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE id = %(id)s
  AND lease_owner = %(worker)s;

-- name: delivery_list_for_subscriber
-- A subscriber's attempts, newest first, before a time (keyset; none: from the newest), bounded (served by delivery_attempt_subscriber_id_attempted_at_idx).
SELECT id, notification_key, subscriber_id, attempt, outcome, error, attempted_at,
       next_attempt_at, lease_owner, lease_expires_at
FROM delivery_attempt
WHERE subscriber_id = %(subscriber_id)s
  AND attempted_at < COALESCE(%(before)s::timestamptz, 'infinity')
ORDER BY attempted_at DESC, id DESC
LIMIT %(limit)s;

-- name: delivery_list_for_notification
-- A notification's attempts by subscriber and attempt, after a subscriber id (keyset; none: from the first), bounded (served by delivery_attempt_notification_key_subscriber_id_attempt_key).
SELECT id, notification_key, subscriber_id, attempt, outcome, error, attempted_at,
       next_attempt_at, lease_owner, lease_expires_at
FROM delivery_attempt
WHERE notification_key = %(notification_key)s
  AND subscriber_id > COALESCE(%(after_subscriber_id)s::text, '')
ORDER BY subscriber_id, attempt
LIMIT %(limit)s;

-- name: delivery_subscriber_health
-- A subscriber's delivery state: active, permanent failures in a row, and why it was deactivated.
SELECT id AS subscriber_id, is_active, consecutive_permanent_failures, deactivated_at,
       deactivation_reason
FROM status_subscriber
WHERE id = %(subscriber_id)s;

-- name: delivery_pending_retries
-- How many retries are scheduled (for monitoring; served by delivery_attempt_next_attempt_at_idx).
SELECT count(*) AS pending
FROM delivery_attempt
WHERE next_attempt_at IS NOT NULL;

-- name: delivery_purge
-- Delete up to `limit` attempts recorded before a time, except pending retries (retention).
DELETE FROM delivery_attempt
WHERE id IN (SELECT a.id FROM delivery_attempt a
             WHERE a.attempted_at < %(before)s
               AND a.next_attempt_at IS NULL
             LIMIT %(limit)s);
