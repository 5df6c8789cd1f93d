-- name: idempotency_claim
-- Claim an idempotency key in this transaction (on the page given, or the status incident's page): one row when claimed, none when the key is taken (waiting for a concurrent claimer to commit or roll back first) or the status incident does not exist.
INSERT INTO idempotency_key (status_page_id, scope, key, request_digest)
SELECT page.id, %(scope)s, %(key)s, %(request_digest)s
FROM (SELECT COALESCE(%(status_page_id)s::text,
                      (SELECT si.status_page_id FROM status_incident si
                       WHERE si.id = %(status_incident_id)s::text)) AS id) AS page
WHERE page.id IS NOT NULL
ON CONFLICT ON CONSTRAINT idempotency_key_pkey DO NOTHING
RETURNING true AS claimed;

-- name: idempotency_lookup
-- The claim of an idempotency key taken earlier: the digest of its request and the id of the row its write made.
SELECT k.request_digest, k.result_id
FROM idempotency_key k
WHERE k.scope = %(scope)s
  AND k.key = %(key)s
  AND k.status_page_id = COALESCE(%(status_page_id)s::text,
                                  (SELECT si.status_page_id FROM status_incident si
                                   WHERE si.id = %(status_incident_id)s::text));

-- name: idempotency_record
-- Record the id of the row written under a key claimed in this transaction.
UPDATE idempotency_key k
SET result_id = %(result_id)s
WHERE k.scope = %(scope)s
  AND k.key = %(key)s
  AND k.status_page_id = COALESCE(%(status_page_id)s::text,
                                  (SELECT si.status_page_id FROM status_incident si
                                   WHERE si.id = %(status_incident_id)s::text));

-- name: idempotency_purge
-- Delete at most `limit` idempotency keys claimed before now() - `older_than`, oldest first (skipping rows a concurrent purge holds); the number deleted.
DELETE FROM idempotency_key k
WHERE (k.status_page_id, k.scope, k.key) IN (
    SELECT o.status_page_id, o.scope, o.key
    FROM idempotency_key o
    WHERE o.created_at < now() - %(older_than)s::interval
    ORDER BY o.created_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED);
