-- Reverts 0005_subscriber_tokens.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';
-- Rolling back drops what the forward migration created; that is its purpose, so the drop
-- warnings (meant for forward migrations) are switched off here. The DROP INDEX is not
-- CONCURRENTLY because the file runs in one transaction and the ALTER TABLE below takes ACCESS
-- EXCLUSIVE on the same table anyway. Pending verification tokens stay, without their expiry
-- (0002 had none); unsubscribe tokens are lost (0002 had none).
-- squawk-ignore-file ban-drop-column, ban-drop-constraint, require-concurrent-index-deletion

DROP TRIGGER status_subscriber_touch_updated_at ON status_subscriber;
DROP INDEX status_subscriber_status_page_id_id_idx;
ALTER TABLE status_subscriber
    DROP CONSTRAINT status_subscriber_unsubscribe_token_hash_key,
    DROP CONSTRAINT status_subscriber_destination_format_check,
    DROP CONSTRAINT status_subscriber_is_verified_check,
    DROP CONSTRAINT status_subscriber_verify_token_expires_at_check,
    DROP COLUMN updated_at,
    DROP COLUMN unsubscribe_token_hash,
    DROP COLUMN verify_token_expires_at;
