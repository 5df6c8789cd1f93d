-- Reverts 0013_destination_policy: SLACK and WEBHOOK destinations are checked for their shape
-- only again (0005), and the allow-list is dropped.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';
-- Rolling back drops what the forward migration created, so the drop warnings are off here.
-- squawk-ignore-file ban-drop-table, ban-drop-function

-- The allow-list is the DBA's data: refuse to drop it while it holds entries, rather than lose
-- them silently. Delete them first (after noting them) to roll back.
DO $$
BEGIN
    IF EXISTS (SELECT FROM destination_allowlist) THEN
        RAISE EXCEPTION 'destination_allowlist holds entries that this rollback would lose'
            USING ERRCODE = 'object_in_use',
                  HINT = 'note them (SELECT * FROM destination_allowlist), delete them, and '
                         'roll back again';
    END IF;
END;
$$;

DROP TRIGGER status_subscriber_destination_guard ON status_subscriber;
DROP FUNCTION statusdb_status_subscriber_destination_guard();
DROP FUNCTION statusdb_destination_problem(text, text);
DROP FUNCTION statusdb_destination_host_problem(text);
DROP TABLE destination_allowlist;
