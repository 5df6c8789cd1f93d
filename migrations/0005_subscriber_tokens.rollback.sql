-- Reverts 0005_subscriber_tokens.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';
-- Rolling back drops what the forward migration created; that is its purpose, so the drop
-- warnings (meant for forward migrations) are switched off here. The DROP INDEX is not
-- CONCURRENTLY because the file runs in one transaction and the ALTER TABLE below takes ACCESS
-- EXCLUSIVE on the same table anyway. Pending verification tokens stay, without their expiry
-- (0002 had none); unsubscribe tokens are lost (0002 had none).
-- squawk-ignore-file ban-drop-column, ban-drop-constraint, require-concurrent-index-deletion

-- Refuses while status_subscriber holds rows (see 0006's rollback for the rule): every row loses
-- its updated_at; pending verification tokens lose their expiry (they work forever under 0002,
-- and the next migrate gives each 24 hours again, expired ones included: re-armed); unsubscribe
-- tokens are dropped (the links in sent notifications stop working).
DO $$
DECLARE
    total bigint;
    pending bigint;
    expired bigint;
    unsubscribe bigint;
BEGIN
    IF current_setting('statusdb.allow_data_loss', true) = 'on'
       OR NOT EXISTS (SELECT 1 FROM status_subscriber) THEN
        RETURN;
    END IF;
    SELECT count(*),
           count(*) FILTER (WHERE s.verify_token_hash IS NOT NULL),
           count(*) FILTER (WHERE s.verify_token_expires_at <= now()),
           count(*) FILTER (WHERE s.unsubscribe_token_hash IS NOT NULL)
    INTO total, pending, expired, unsubscribe
    FROM status_subscriber s;
    RAISE EXCEPTION 'rolling back 0005_subscriber_tokens would lose data: status_subscriber has '
                    '% rows, whose updated_at is dropped; % pending verification tokens (% '
                    'expired) lose their expiry and would be re-armed for 24 hours by the next '
                    'migrate; % unsubscribe tokens are dropped (their links stop working). %',
                    total, pending, expired, unsubscribe,
        'Pass --allow-data-loss to statusdb rollback (plain yoyo: '
        'PGOPTIONS=''-c statusdb.allow_data_loss=on'') to roll back anyway.'
        USING ERRCODE = 'object_not_in_prerequisite_state';
END;
$$;

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
