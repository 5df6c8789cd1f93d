-- statusdb 0046 rollback: the schema as 0044 left it (0023's statusdb_take_slots).
-- squawk-ignore-file ban-drop-column

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

CREATE OR REPLACE FUNCTION statusdb_take_slots(slots bigint[]) RETURNS void
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
    wanted bigint[] := ARRAY(SELECT DISTINCT u.s FROM unnest(slots) AS u (s)
                             WHERE u.s IS NOT NULL ORDER BY u.s);
    locked bigint;
BEGIN
    -- Shared with every other derivation; the repair takes it FOR UPDATE.
    PERFORM 1 FROM status_lock l WHERE l.slot = 0 FOR KEY SHARE;
    IF NOT FOUND THEN  -- first use
        INSERT INTO status_lock (slot) VALUES (0) ON CONFLICT DO NOTHING;
        PERFORM 1 FROM status_lock l WHERE l.slot = 0 FOR KEY SHARE;
    END IF;
    IF cardinality(wanted) = 0 THEN
        RETURN;
    END IF;
    PERFORM 1 FROM status_lock l WHERE l.slot = ANY (wanted) ORDER BY l.slot FOR UPDATE;
    GET DIAGNOSTICS locked = ROW_COUNT;
    IF locked < cardinality(wanted) THEN  -- first use of some slot
        INSERT INTO status_lock (slot) SELECT u.s FROM unnest(wanted) AS u (s) ORDER BY u.s
        ON CONFLICT DO NOTHING;
        PERFORM 1 FROM status_lock l WHERE l.slot = ANY (wanted) ORDER BY l.slot FOR UPDATE;
    END IF;
    -- A new version of each slot, once per transaction (rows this transaction wrote already
    -- are skipped): what tells an older snapshot that it is behind.
    UPDATE status_lock l SET slot = l.slot
    WHERE l.slot = ANY (wanted) AND l.xmin <> pg_current_xact_id()::xid;
END;
$$;
COMMENT ON FUNCTION statusdb_take_slots(bigint[]) IS
    'Locks slot 0 shared, then the given status_lock slots in ascending order, and writes each '
    '(a new row version once per transaction, 0023). Owner only.';

-- No data-loss guard: written_by only ever means something inside the transaction that
-- wrote it (it is compared with the current transaction's id alone); nothing is lost.
ALTER TABLE status_lock DROP COLUMN written_by;
