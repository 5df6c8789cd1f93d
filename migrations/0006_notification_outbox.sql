-- statusdb 0006: the notification outbox, kept on the status-change log itself.
-- depends: 0003_status_derivation
--
-- Every status change is written to status_change in the transaction that makes it (0003), so
-- the log already is a transactional outbox: nothing is notified that did not commit, and
-- nothing that committed is lost. These columns track delivery:
--   * a worker claims the due changes of a component by taking a lease (lease_owner,
--     lease_expires_at) with FOR UPDATE SKIP LOCKED, and commits the claim;
--   * it fans the change out to subscribers, then marks the claimed rows notified (only while it
--     still owns them: a worker whose lease was taken over cannot mark them a second time);
--   * a worker that dies leaves its lease to expire; another worker then claims the rows again.
-- Flap damping: the changes of one component are claimed together once the first of them is
-- older than a hold-down window; those inside the window coalesce into one notification (from
-- the first previous_status to the last new_status), or none if the component ended where it
-- started.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

ALTER TABLE status_change
    ADD COLUMN lease_owner text,
    ADD COLUMN lease_expires_at timestamptz,
    -- When delivery finished (or was found unnecessary); null: still to be notified.
    ADD COLUMN notified_at timestamptz,
    -- NOTIFIED: subscribers were told; FLAP: reversed within the hold-down window, nobody told;
    -- MUTED: caused by a maintenance window with notify_subscribers off.
    ADD COLUMN outcome text;

-- The table is new in 0003 and only ever appended to by triggers; the checks scan it once under
-- the lock ADD COLUMN already holds, so NOT VALID + VALIDATE would gain nothing here.
ALTER TABLE status_change
    -- squawk-ignore constraint-missing-not-valid
    ADD CONSTRAINT status_change_outcome_check
        CHECK (outcome IN ('NOTIFIED', 'FLAP', 'MUTED')),
    -- squawk-ignore constraint-missing-not-valid
    ADD CONSTRAINT status_change_notified_check
        CHECK ((notified_at IS NULL) = (outcome IS NULL)),
    -- squawk-ignore constraint-missing-not-valid
    ADD CONSTRAINT status_change_lease_check
        CHECK ((lease_owner IS NULL) = (lease_expires_at IS NULL));

-- The outbox's work queue: per component, its pending changes in order. Small (pending rows
-- only), so the claim never reads the delivered history. Built in yoyo's transaction: the table
-- is already locked by the ALTER above, and CONCURRENTLY cannot run inside a transaction.
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX status_change_pending_idx
    ON status_change (component_id, seq) INCLUDE (changed_at)
    WHERE notified_at IS NULL;
