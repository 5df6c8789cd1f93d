-- statusdb 0032 rollback: drop the scheduler's heartbeat, its SQL step and doctor's samples.
--
-- scheduler_heartbeat is dropped without the data-loss guard: it holds no data of record, only
-- each scheduler's last success, which the next step of the previous release does not write
-- and which doctor of that release does not read.

-- squawk-ignore-file ban-drop-function, ban-drop-table, require-concurrent-index-deletion

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

DO $$
BEGIN
    IF to_regclass('public._yoyo_migration') IS NOT NULL
       AND has_table_privilege('public._yoyo_migration', 'SELECT WITH GRANT OPTION') THEN
        REVOKE SELECT ON TABLE public._yoyo_migration FROM statusdb_app;
    END IF;
END;
$$;
DROP INDEX status_subscriber_deactivated_at_idx;
DROP INDEX delivery_attempt_failed_attempted_at_idx;
DROP FUNCTION statusdb_doctor_sample_v1(integer);
DROP FUNCTION statusdb_sample_start(text, text);
DROP FUNCTION statusdb_advance_v1(text);
DROP FUNCTION statusdb_maintenance_advance_by_time(timestamptz, text);
DROP FUNCTION statusdb_record_scheduler_run(text, interval, integer, integer);
DROP TABLE scheduler_heartbeat;
