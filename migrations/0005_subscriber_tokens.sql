-- statusdb 0005: subscriber verification expiry, unsubscribe tokens, destination shape,
-- updated_at, and the index for listing a page's subscribers.
-- depends: 0002_status_pages
--
-- Tokens are shown to the subscriber once; only their SHA-256 digests are stored (a leaked dump
-- verifies or unsubscribes nobody). A verification token is single use and expires; the
-- unsubscribe token is kept after unsubscribing (a second click on the same link is harmless)
-- and replaced when the destination subscribes again.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

ALTER TABLE status_subscriber
    -- When the pending verification token stops working; set exactly when a digest is.
    ADD COLUMN verify_token_expires_at timestamptz,
    -- SHA-256 digest of the unsubscribe token. Null for rows that never got one (imported rows,
    -- rows from before this migration): those are unsubscribed by id, or get a token from
    -- statusdb.subscribers.rotate_unsubscribe_token.
    ADD COLUMN unsubscribe_token_hash bytea
        CONSTRAINT status_subscriber_unsubscribe_token_hash_check
        CHECK (unsubscribe_token_hash IS NULL OR octet_length(unsubscribe_token_hash) = 32),
    -- Rows older than this migration get its time (a constant default, so no table rewrite):
    -- "not changed since at least then", which is true.
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

-- A pending verification always has an expiry, so that no token works forever; a verified
-- subscriber has no pending token. Tokens of rows from before this migration get 24 hours from
-- now (the default lifetime), and the token of an already verified row is dropped (it could only
-- re-verify), so that existing data meets both rules before they are checked.
UPDATE status_subscriber
SET verify_token_expires_at = CASE WHEN is_verified THEN NULL ELSE now() + interval '24 hours' END,
    verify_token_hash = CASE WHEN is_verified THEN NULL ELSE verify_token_hash END
WHERE verify_token_hash IS NOT NULL;

-- squawk asks for NOT VALID + a later VALIDATE on the three checks below. That pattern shortens
-- the time writes are blocked by an ALTER TABLE; here the ADD COLUMN above already holds ACCESS
-- EXCLUSIVE on status_subscriber until this file's transaction commits, and a VALIDATE in the
-- same transaction would scan under that same lock. The checks cost one scan of the table.
ALTER TABLE status_subscriber
    -- squawk-ignore constraint-missing-not-valid
    ADD CONSTRAINT status_subscriber_verify_token_expires_at_check
        CHECK ((verify_token_hash IS NULL) = (verify_token_expires_at IS NULL)),
    -- squawk-ignore constraint-missing-not-valid
    ADD CONSTRAINT status_subscriber_is_verified_check
        CHECK (NOT (is_verified AND verify_token_hash IS NOT NULL)),
    -- The shape of a destination, as a floor for every client (psql included). statusdb's own
    -- validation (statusdb.subscribers) is stricter: full address syntax, domain labels, hosts.
    --   EMAIL: local@domain, no space, control character or second '@', domain without ASCII
    --          upper-case letters (addresses are stored with the domain lower-cased, so that the
    --          unique key sees one address once), at most 254 octets (RFC 5321).
    --   SLACK, WEBHOOK: an https URL (scheme in lower case) whose authority has no '@', i.e. no
    --          user:password; no space or control character anywhere.
    -- Rows that some other client wrote under 0002 and that break it make this migration fail
    -- with this constraint's name; nothing is applied then. Fix or delete those rows first.
    -- squawk-ignore constraint-missing-not-valid
    ADD CONSTRAINT status_subscriber_destination_format_check
        CHECK (CASE channel
                   WHEN 'EMAIL' THEN
                       octet_length(destination) <= 254
                       AND destination ~ '^[^@[:space:][:cntrl:]]+@[^@[:space:][:cntrl:]A-Z]+$'
                   ELSE
                       destination ~ '^https://[^/?#@[:space:][:cntrl:]]+([/?#][^[:space:][:cntrl:]]*)?$'
               END);

-- No index beside these unique constraints: verification and unsubscribe look a row up by
-- digest, and the unique index is exactly that index.
-- The column is new and all null, so building the index is one quick scan, under the lock the
-- ADD COLUMN already holds; CREATE UNIQUE INDEX CONCURRENTLY + ADD CONSTRAINT ... USING INDEX
-- cannot run in the transaction yoyo wraps around the file.
ALTER TABLE status_subscriber
    -- squawk-ignore constraint-missing-not-valid, disallowed-unique-constraint
    ADD CONSTRAINT status_subscriber_unsubscribe_token_hash_key UNIQUE (unsubscribe_token_hash);

-- Serves list_for_page: a page's subscribers in id order (ids are UUIDv7, time-ordered to the
-- millisecond, so about creation order), keyset-paginated by id. Without it every page of a large
-- list would read and sort all of the page's subscribers. It also serves the notification fan-out,
-- which can stream a page's subscribers in id order (resumable after a crash), filtering the
-- rest per row. (It leaves 0002's status_subscriber_status_page_id_is_active_idx little to do.)
-- CONCURRENTLY cannot run inside yoyo's per-file transaction (and the ADD COLUMN above holds
-- ACCESS EXCLUSIVE until commit anyway); on a few million rows the build takes seconds.
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX status_subscriber_status_page_id_id_idx ON status_subscriber (status_page_id, id);

CREATE TRIGGER status_subscriber_touch_updated_at
    BEFORE UPDATE ON status_subscriber
    FOR EACH ROW EXECUTE FUNCTION statusdb_touch_updated_at();
