-- name: scheduler_clock
-- The database's clock: every scheduler instance steps by the same clock, whatever its host's.
SELECT clock_timestamp() AS now;

-- name: scheduler_record_run
-- Record this instance's successful step in its own transaction (statusdb_record_scheduler_run, 0032).
SELECT statusdb_record_scheduler_run(%(instance)s::text, %(duration)s::interval,
                                     %(transitions)s::integer, %(errors)s::integer) AS recorded_at;

-- name: scheduler_step_errors
-- The windows this step skipped: the scheduler errors it recorded (last_failed_at is the step's now).
SELECT e.maintenance_window_id AS window_id, w.status_page_id, e.error, e.first_failed_at,
       e.last_failed_at, e.failures
FROM maintenance_window_scheduler_error e
JOIN maintenance_window w ON w.id = e.maintenance_window_id
WHERE e.last_failed_at = %(now)s
ORDER BY e.maintenance_window_id;
