-- statusdb 0046: a status_lock slot is written once per transaction, savepoints included.
-- depends: 0045_destination_guard_shortcut
--
-- statusdb_take_slots (0023) writes each slot it takes (a no-op update) so that a REPEATABLE
-- READ or SERIALIZABLE transaction whose snapshot predates the write is refused when it locks
-- the slot; "once per transaction" skipped the rows whose xmin is pg_current_xact_id(), the
-- top-level xid. A version written inside a subtransaction has that subtransaction's xid as
-- its xmin: a savepoint (psycopg's nested transaction(), statusdb's atomic operations inside a
-- caller's transaction), statusdb_lock_slots' own EXCEPTION block under REPEATABLE READ and
-- SERIALIZABLE (every write there), the derivation's NOWAIT rounds. The transaction then wrote
-- its slots again at every later status-input statement: a new version of the hot
-- status_lock rows each time. Never a wrong judgement: the filter only skips a version whose
-- xmin is the transaction's own top-level xid, which no other transaction writes, so a write
-- another transaction made is always followed by this one's.
--
-- The write now stamps status_lock.written_by with the top-level xid (xid8: never reused) and
-- skips the rows that carry it: a released savepoint's write keeps the stamp, a rolled-back
-- one takes it back with the version (the slot is then written again, as it must be). Same
-- signature, locks, writes and errors: replaced in place. What changed in the function: the
-- first-use INSERT stamps written_by, and the no-op UPDATE sets and tests written_by instead
-- of comparing xmin (tests/test_take_slots_savepoints.py).

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

ALTER TABLE status_lock ADD COLUMN written_by xid8;
COMMENT ON COLUMN status_lock.written_by IS
    'The top-level transaction that last wrote the slot (statusdb_take_slots, 0046): a transaction '
    'writes each slot it takes once, whatever its savepoints. Only compared with the current '
    'transaction''s own id; NULL for a slot never written since 0046.';

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
        INSERT INTO status_lock (slot, written_by)
        SELECT u.s, pg_current_xact_id() FROM unnest(wanted) AS u (s) ORDER BY u.s
        ON CONFLICT DO NOTHING;
        PERFORM 1 FROM status_lock l WHERE l.slot = ANY (wanted) ORDER BY l.slot FOR UPDATE;
    END IF;
    -- A new version of each slot, once per transaction (rows this transaction wrote already,
    -- in any of its savepoints still standing, are skipped): what tells an older snapshot that
    -- it is behind.
    UPDATE status_lock l SET written_by = pg_current_xact_id()
    WHERE l.slot = ANY (wanted) AND l.written_by IS DISTINCT FROM pg_current_xact_id();
END;
$$;
COMMENT ON FUNCTION statusdb_take_slots(bigint[]) IS
    'Locks slot 0 shared, then the given status_lock slots in ascending order, and writes each '
    '(a new row version once per transaction, savepoints included: written_by, 0023, 0046). '
    'Owner only.';
