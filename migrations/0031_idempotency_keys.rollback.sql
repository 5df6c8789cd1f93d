-- statusdb 0031 rollback: drop the idempotency keys.
-- Rolling back drops what the forward migration created; that is its purpose.
-- squawk-ignore-file ban-drop-table
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

-- Keys younger than a day still guard retries: without them a retried write is applied twice.
-- Refuse while there are any, unless statusdb.allow_data_loss = on (see 0006's rollback).
DO $$
DECLARE
    live bigint;
BEGIN
    IF current_setting('statusdb.allow_data_loss', true) = 'on' THEN
        RETURN;
    END IF;
    SELECT count(*) INTO live FROM idempotency_key WHERE created_at > now() - interval '24 hours';
    IF live > 0 THEN
        RAISE EXCEPTION 'rolling back 0031_idempotency_keys would lose data: idempotency_key has '
                        '% keys of the last 24 hours (writes retried with them would be applied '
                        'again). %', live,
            'Pass --allow-data-loss to statusdb rollback (plain yoyo: '
            'PGOPTIONS=''-c statusdb.allow_data_loss=on'') to roll back anyway.'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END;
$$;

DROP TABLE idempotency_key;
