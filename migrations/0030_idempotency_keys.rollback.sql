-- statusdb 0030 rollback: drop the idempotency keys.
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
        RAISE EXCEPTION USING
            ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('rollback of 0030_idempotency_keys would drop %s idempotency '
                             'key(s) of the last 24 hours in idempotency_key: retried writes '
                             'with those keys would be applied again; set '
                             'statusdb.allow_data_loss = on to proceed', live);
    END IF;
END;
$$;

DROP TABLE idempotency_key;
