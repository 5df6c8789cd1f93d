-- Reverts 0013_destination_policy: SLACK and WEBHOOK destinations are checked for their shape
-- only again (0005), and the allow-list is dropped.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';
-- Rolling back drops what the forward migration created, so the drop warnings are off here.
-- squawk-ignore-file ban-drop-table, ban-drop-function

-- The allow-list is the DBA's data: refuse to drop it while it holds entries, unless the
-- operator passes the same safety catch as 0001-0006 and 0014 (statusdb.allow_data_loss = on:
-- `statusdb rollback --allow-data-loss`, or PGOPTIONS for plain yoyo).
DO $$
DECLARE
    entries bigint;
BEGIN
    IF current_setting('statusdb.allow_data_loss', true) = 'on'
       OR NOT EXISTS (SELECT FROM destination_allowlist) THEN
        RETURN;
    END IF;
    SELECT count(*) INTO entries FROM destination_allowlist;
    RAISE EXCEPTION 'rolling back 0013_destination_policy would lose data: destination_allowlist '
                    'has % entries (SELECT * FROM destination_allowlist to note them). %', entries,
        'Pass --allow-data-loss to statusdb rollback (plain yoyo: '
        'PGOPTIONS=''-c statusdb.allow_data_loss=on'') to roll back anyway.'
        USING ERRCODE = 'object_not_in_prerequisite_state';
END;
$$;

DROP TRIGGER status_subscriber_destination_guard ON status_subscriber;
DROP FUNCTION statusdb_status_subscriber_destination_guard();
DROP FUNCTION statusdb_destination_problem(text, text);
DROP FUNCTION statusdb_destination_host_problem(text);
DROP TABLE destination_allowlist;
