-- statusdb 0015: a series' DTSTART as wall-clock time, and the scheduler's per-window errors.
-- depends: 0014_page_view_bounds
--
-- recurrence_local_start: the series' first occurrence as the wall-clock time of its time_zone
-- (RFC 5545 DTSTART;TZID=...). recurrence_start is that occurrence's instant. The two differ in
-- what they can say only when DTSTART is a time the clocks skip: DTSTART 02:30 on a
-- spring-forward day in Europe/Berlin happens at 03:30 that day (recurrence_start), and the
-- series keeps 02:30 on the other days, which recurrence_start alone cannot tell from a series
-- at 03:30. Null (rows written before this migration, or by plain SQL): recurrence_start read in
-- time_zone, as before. Nullable, no default: adding it rewrites nothing.
--
-- maintenance_window_scheduler_error: the last error the scheduler's step (statusdb.maintenance
-- .advance) met on a window, for operators (`SELECT * FROM maintenance_window_scheduler_error`).
-- A window that cannot be moved on (a rule that cannot be expanded, a write the database
-- refuses) is reported here and skipped; every other window advances in the same step. The row
-- goes when the window next advances, is updated, or is deleted (cascade). A table of its own,
-- not columns on maintenance_window: recording a failure must not write the failing row (whose
-- writes may be what fails), nor fire its triggers.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

-- Deliberately without time zone: a wall-clock time in time_zone, which is what RFC 5545's
-- DTSTART;TZID=... is (a timestamptz would be an instant, the very thing it must not be).
ALTER TABLE maintenance_window
    -- squawk-ignore prefer-timestamp-tz
    ADD COLUMN recurrence_local_start timestamp without time zone;

-- A wall-clock DTSTART belongs to a series. maintenance_window is small and the ADD COLUMN above
-- holds ACCESS EXCLUSIVE on it until commit; the new column is null everywhere, so the check
-- scans nothing that can fail (as in 0004).
ALTER TABLE maintenance_window
    -- squawk-ignore constraint-missing-not-valid
    ADD CONSTRAINT maintenance_window_recurrence_local_start_check
        CHECK (recurrence_local_start IS NULL OR recurrence_rule IS NOT NULL);

CREATE TABLE maintenance_window_scheduler_error (
    maintenance_window_id text NOT NULL,
    -- The error, as the scheduler's log line says it.
    error text NOT NULL,
    -- The `now` of the step that failed (first and last time), and how many steps failed.
    first_failed_at timestamptz NOT NULL,
    last_failed_at timestamptz NOT NULL,
    failures bigint NOT NULL DEFAULT 1,
    CONSTRAINT maintenance_window_scheduler_error_pkey PRIMARY KEY (maintenance_window_id),
    CONSTRAINT maintenance_window_scheduler_error_maintenance_window_id_fkey
        FOREIGN KEY (maintenance_window_id) REFERENCES maintenance_window (id) ON DELETE CASCADE,
    CONSTRAINT maintenance_window_scheduler_error_error_check CHECK (length(error) <= 2000),
    CONSTRAINT maintenance_window_scheduler_error_failures_check CHECK (failures >= 1)
);

COMMENT ON TABLE maintenance_window_scheduler_error IS
    'The last error the scheduler (maintenance.advance) met on a window; the window is skipped '
    'until it advances again or is updated.';

COMMENT ON COLUMN maintenance_window.recurrence_local_start IS
    'The series'' first occurrence as wall-clock time in time_zone (RFC 5545 DTSTART;TZID); '
    'NULL: recurrence_start read in time_zone.';
COMMENT ON COLUMN maintenance_window_scheduler_error.maintenance_window_id IS
    'The window the scheduler could not move on.';
COMMENT ON COLUMN maintenance_window_scheduler_error.error IS 'The error, as logged.';
COMMENT ON COLUMN maintenance_window_scheduler_error.first_failed_at IS
    'The now of the first failing scheduler step.';
COMMENT ON COLUMN maintenance_window_scheduler_error.last_failed_at IS
    'The now of the latest failing scheduler step.';
COMMENT ON COLUMN maintenance_window_scheduler_error.failures IS
    'How many scheduler steps failed on the window since it last advanced.';

-- The backend's scheduler writes it; statusdb_reader has no use for it.
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE maintenance_window_scheduler_error TO statusdb_app;

ALTER TABLE maintenance_window_scheduler_error ENABLE ROW LEVEL SECURITY;
CREATE POLICY maintenance_window_scheduler_error_team_isolation
    ON maintenance_window_scheduler_error
    USING ((SELECT statusdb_current_team()) IS NULL
           OR maintenance_window_id IN (
               SELECT w.id FROM maintenance_window w
               WHERE w.status_page_id IN (SELECT p.id FROM status_page p
                                          WHERE p.team_id = (SELECT statusdb_current_team()))));
