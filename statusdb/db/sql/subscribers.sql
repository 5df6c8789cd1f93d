-- name: subscriber_subscribe
-- Subscribe a destination to a page, or renew its existing subscription (created tells which).
-- On renewal the preferences are replaced (the components given, and no groups: "empty: all of
-- them" means the whole page again), the subscription is reactivated, and both tokens are
-- replaced (an EMAIL destination is unverified again until the new verification token is used).
INSERT INTO status_subscriber AS s (status_page_id, channel, destination, component_ids,
                                    notify_on, is_verified, verify_token_hash,
                                    verify_token_expires_at, unsubscribe_token_hash)
VALUES (%(status_page_id)s, %(channel)s, %(destination)s, %(component_ids)s, %(notify_on)s,
        %(is_verified)s, %(verify_token_hash)s, now() + %(verify_ttl)s::interval,
        %(unsubscribe_token_hash)s)
ON CONFLICT ON CONSTRAINT status_subscriber_status_page_id_channel_destination_key DO UPDATE
SET component_ids = excluded.component_ids,
    group_ids = excluded.group_ids,
    notify_on = excluded.notify_on,
    is_active = true,
    is_verified = excluded.is_verified,
    verify_token_hash = excluded.verify_token_hash,
    verify_token_expires_at = excluded.verify_token_expires_at,
    unsubscribe_token_hash = excluded.unsubscribe_token_hash
-- xmax is 0 on a freshly inserted row version, and the locking transaction's id on one written
-- by the DO UPDATE branch.
RETURNING (s.xmax = 0) AS created, s.id, s.status_page_id, s.channel, s.destination,
          s.component_ids, s.notify_on, s.is_verified, s.is_active, s.verify_token_expires_at,
          s.created_at, s.updated_at;

-- name: subscriber_verify
-- Use a verification token: verified, and the token forgotten; or the row it expired on.
WITH verified AS (
    UPDATE status_subscriber
    SET is_verified = true,
        verify_token_hash = NULL,
        verify_token_expires_at = NULL
    WHERE verify_token_hash = %(verify_token_hash)s
      AND verify_token_expires_at > now()
    RETURNING id, status_page_id, channel, destination, component_ids, notify_on, is_verified,
              is_active, verify_token_expires_at, created_at, updated_at
)
SELECT false AS expired, id, status_page_id, channel, destination, component_ids, notify_on,
       is_verified, is_active, verify_token_expires_at, created_at, updated_at
FROM verified
UNION ALL
SELECT true AS expired, id, status_page_id, channel, destination, component_ids, notify_on,
       is_verified, is_active, verify_token_expires_at, created_at, updated_at
FROM status_subscriber
WHERE verify_token_hash = %(verify_token_hash)s
  AND verify_token_expires_at <= now()
  AND NOT EXISTS (SELECT 1 FROM verified);

-- name: subscriber_unsubscribe
-- Deactivate a subscriber by id and forget its pending verification; a no-op when already done.
WITH changed AS (
    UPDATE status_subscriber
    SET is_active = false,
        verify_token_hash = NULL,
        verify_token_expires_at = NULL
    WHERE id = %(id)s
      AND (is_active OR verify_token_hash IS NOT NULL)
    RETURNING id, status_page_id, channel, destination, component_ids, notify_on, is_verified,
              is_active, verify_token_expires_at, created_at, updated_at
)
SELECT id, status_page_id, channel, destination, component_ids, notify_on, is_verified,
       is_active, verify_token_expires_at, created_at, updated_at
FROM changed
UNION ALL
SELECT id, status_page_id, channel, destination, component_ids, notify_on, is_verified,
       is_active, verify_token_expires_at, created_at, updated_at
FROM status_subscriber
WHERE id = %(id)s
  AND NOT EXISTS (SELECT 1 FROM changed);

-- name: subscriber_unsubscribe_by_token
-- Like subscriber_unsubscribe, for the subscriber whose unsubscribe token digest is given.
WITH changed AS (
    UPDATE status_subscriber
    SET is_active = false,
        verify_token_hash = NULL,
        verify_token_expires_at = NULL
    WHERE unsubscribe_token_hash = %(unsubscribe_token_hash)s
      AND (is_active OR verify_token_hash IS NOT NULL)
    RETURNING id, status_page_id, channel, destination, component_ids, notify_on, is_verified,
              is_active, verify_token_expires_at, created_at, updated_at
)
SELECT id, status_page_id, channel, destination, component_ids, notify_on, is_verified,
       is_active, verify_token_expires_at, created_at, updated_at
FROM changed
UNION ALL
SELECT id, status_page_id, channel, destination, component_ids, notify_on, is_verified,
       is_active, verify_token_expires_at, created_at, updated_at
FROM status_subscriber
WHERE unsubscribe_token_hash = %(unsubscribe_token_hash)s
  AND NOT EXISTS (SELECT 1 FROM changed);

-- name: subscriber_rotate_unsubscribe_token
-- Replace a subscriber's unsubscribe token digest; the old token stops working at commit.
UPDATE status_subscriber
SET unsubscribe_token_hash = %(unsubscribe_token_hash)s
WHERE id = %(id)s
RETURNING id;

-- name: subscriber_update_preferences
-- Change the components followed and the events notified (a flag per field says which).
UPDATE status_subscriber
SET component_ids = CASE WHEN %(set_component_ids)s THEN %(component_ids)s::text[]
                         ELSE component_ids END,
    notify_on = CASE WHEN %(set_notify_on)s THEN %(notify_on)s::text[] ELSE notify_on END
WHERE id = %(id)s
RETURNING id, status_page_id, channel, destination, component_ids, notify_on, is_verified,
          is_active, verify_token_expires_at, created_at, updated_at;

-- name: subscriber_get
-- Fetch one subscriber by id.
SELECT id, status_page_id, channel, destination, component_ids, notify_on, is_verified,
       is_active, verify_token_expires_at, created_at, updated_at
FROM status_subscriber
WHERE id = %(id)s;

-- name: subscriber_list_for_page
-- A page's subscribers in id order (about creation order) after an id; only active ones if asked.
SELECT id, status_page_id, channel, destination, component_ids, notify_on, is_verified,
       is_active, verify_token_expires_at, created_at, updated_at
FROM status_subscriber
WHERE status_page_id = %(status_page_id)s
  AND id > %(after)s
  AND (is_active OR NOT %(active_only)s)
ORDER BY id
LIMIT %(limit)s;

-- name: subscriber_count_for_page
-- How many subscribers a page has: all, active, and active and verified (those notified).
SELECT count(*) AS total,
       count(*) FILTER (WHERE is_active) AS active,
       count(*) FILTER (WHERE is_active AND is_verified) AS verified
FROM status_subscriber
WHERE status_page_id = %(status_page_id)s;

-- name: subscriber_delete
-- Delete a subscriber for good (erasure); unsubscribing keeps the row instead.
DELETE FROM status_subscriber
WHERE id = %(id)s;

-- name: subscriber_import_lock_page
-- The page an import writes to, locked against deletion until the import's transaction ends.
SELECT id
FROM status_page
WHERE id = %(status_page_id)s
FOR KEY SHARE;

-- name: subscriber_import_create
-- Staging table for one import; dropped by the import itself, and at commit at the latest.
CREATE TABLE pg_temp.statusdb_subscriber_import (
    row_number bigint NOT NULL,
    channel text NOT NULL,
    destination text NOT NULL,
    component_ids text[] NOT NULL,
    notify_on text[] NOT NULL,
    is_verified boolean NOT NULL
) ON COMMIT DROP;

-- name: subscriber_import_copy
-- Stream the rows that passed the checks done in Python into the staging table.
COPY pg_temp.statusdb_subscriber_import (row_number, channel, destination, component_ids,
                                         notify_on, is_verified)
FROM STDIN;

-- name: subscriber_import_apply
-- Insert the staged rows that pass the checks needing the database; one row per refusal.
-- A row is refused when it names a component that is not on the page, when an earlier valid row
-- has the same channel and destination, or when the destination already has a subscription to
-- the page (active: nothing to do; inactive: the subscriber unsubscribed, and only they may
-- subscribe again, never an import). The first result row carries the count of inserted rows;
-- its refusal columns are null when nothing was refused.
WITH page_components AS (
    SELECT coalesce(array_agg(c.id), '{}') AS ids
    FROM status_page_component c
    WHERE c.status_page_id = %(status_page_id)s
), staged AS (
    -- The page's component ids are read once; only a row naming another one is searched for
    -- the first unknown id (the reported reason).
    SELECT i.row_number, i.channel, i.destination, i.component_ids, i.notify_on, i.is_verified,
           CASE WHEN i.component_ids <@ p.ids THEN NULL
                ELSE (SELECT u.c_id
                      FROM unnest(i.component_ids) WITH ORDINALITY AS u (c_id, position)
                      WHERE u.c_id <> ALL (p.ids)
                      ORDER BY u.position
                      LIMIT 1)
           END AS unknown_component
    FROM pg_temp.statusdb_subscriber_import i
    CROSS JOIN page_components p
), first_valid AS (
    SELECT row_number,
           min(row_number) OVER (PARTITION BY channel, destination) AS first_row
    FROM staged
    WHERE unknown_component IS NULL
), checked AS (
    SELECT s.row_number, s.channel, s.destination, s.component_ids, s.notify_on, s.is_verified,
           CASE
               WHEN s.unknown_component IS NOT NULL
                   THEN 'component_ids: ' || s.unknown_component
                        || ' is not a component of this status page'
               WHEN f.first_row <> s.row_number
                   THEN 'duplicate of row ' || f.first_row
               WHEN e.is_active
                   THEN 'already subscribed to this page'
               WHEN NOT e.is_active
                   THEN 'unsubscribed from this page earlier; only the subscriber can subscribe '
                        || 'again, an import does not'
           END AS reason
    FROM staged s
    LEFT JOIN first_valid f ON f.row_number = s.row_number
    LEFT JOIN status_subscriber e
        ON e.status_page_id = %(status_page_id)s
       AND e.channel = s.channel
       AND e.destination = s.destination
), inserted AS (
    INSERT INTO status_subscriber (status_page_id, channel, destination, component_ids,
                                   notify_on, is_verified)
    SELECT %(status_page_id)s, channel, destination, component_ids, notify_on, is_verified
    FROM checked
    WHERE reason IS NULL
    ORDER BY row_number
    -- A concurrent subscribe of the same destination, committed after this statement's snapshot.
    ON CONFLICT ON CONSTRAINT status_subscriber_status_page_id_channel_destination_key DO NOTHING
    RETURNING channel, destination
), refused AS (
    SELECT c.row_number, c.destination,
           coalesce(c.reason, 'already subscribed to this page') AS reason
    FROM checked c
    LEFT JOIN inserted i ON i.channel = c.channel AND i.destination = c.destination
    WHERE c.reason IS NOT NULL OR i.destination IS NULL
)
SELECT a.accepted, r.row_number, r.destination, r.reason
FROM (SELECT count(*) AS accepted FROM inserted) AS a
LEFT JOIN refused AS r ON true
ORDER BY r.row_number;

-- name: subscriber_import_drop
-- Drop the staging table, so that another import can run in the same transaction.
DROP TABLE pg_temp.statusdb_subscriber_import;

-- name: destination_allowlist_all
-- The internal hosts SLACK/WEBHOOK destinations may name (owner-managed; usually a few rows).
SELECT host_name, network
FROM destination_allowlist
ORDER BY id;
