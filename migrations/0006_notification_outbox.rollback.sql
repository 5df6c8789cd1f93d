-- Reverts 0006_notification_outbox.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';
-- Rolling back drops what the forward migration created; that is its purpose.
-- squawk-ignore-file ban-drop-column, require-concurrent-index-deletion

DROP INDEX status_change_pending_idx;
ALTER TABLE status_change
    DROP COLUMN outcome,
    DROP COLUMN notified_at,
    DROP COLUMN lease_expires_at,
    DROP COLUMN lease_owner;
