-- Reverts 0006_notification_outbox.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';
-- Rolling back drops what the forward migration created; that is its purpose.
-- squawk-ignore-file ban-drop-column, require-concurrent-index-deletion

-- A rollback that would lose data, or make the next migrate re-arm or re-send something, refuses
-- while the affected tables hold such rows, says what would be lost, and goes ahead only when
-- the session sets statusdb.allow_data_loss = on: `statusdb rollback --allow-data-loss` sets it
-- for its connection; plain yoyo users pass PGOPTIONS='-c statusdb.allow_data_loss=on'. The
-- setting is the operator's safety catch, not a security boundary: any session may set it, and
-- only the schema's owner can run a rollback at all. (0001-0006 have such guards; 0008 onwards
-- lose no data.)
--
-- Here: the delivery state is dropped. Every change already notified (or found a flap, or muted)
-- would be pending again after the next migrate, so workers would notify subscribers of the
-- whole history again; leases in flight are dropped too.
DO $$
DECLARE
    delivered bigint;
    leased bigint;
BEGIN
    IF current_setting('statusdb.allow_data_loss', true) = 'on'
       OR NOT EXISTS (SELECT 1 FROM status_change c
                      WHERE c.notified_at IS NOT NULL OR c.lease_owner IS NOT NULL) THEN
        RETURN;
    END IF;
    SELECT count(*) FILTER (WHERE c.notified_at IS NOT NULL),
           count(*) FILTER (WHERE c.lease_owner IS NOT NULL)
    INTO delivered, leased
    FROM status_change c;
    RAISE EXCEPTION 'rolling back 0006_notification_outbox would lose data: status_change has % '
                    'delivered rows that the next migrate would make pending again (workers '
                    'would notify subscribers of all of them again) and % leased rows. %',
                    delivered, leased,
        'Pass --allow-data-loss to statusdb rollback (plain yoyo: '
        'PGOPTIONS=''-c statusdb.allow_data_loss=on'') to roll back anyway.'
        USING ERRCODE = 'object_not_in_prerequisite_state';
END;
$$;

DROP INDEX status_change_pending_idx;
ALTER TABLE status_change
    DROP COLUMN outcome,
    DROP COLUMN notified_at,
    DROP COLUMN lease_expires_at,
    DROP COLUMN lease_owner;
