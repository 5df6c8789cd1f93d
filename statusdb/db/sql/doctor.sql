-- name: doctor_statement_timeout
-- Bound the next check: statement_timeout for the rest of the check's transaction (SET LOCAL).
SELECT set_config('statement_timeout', %(timeout_ms)s::text, true) AS statement_timeout;

-- name: doctor_current_statement_timeout
-- The session's statement_timeout, to put back after the checks.
SELECT current_setting('statement_timeout') AS statement_timeout;

-- name: doctor_samples
-- Sampled checks of derived state (statusdb_doctor_sample_v1, 0032): one row per check.
SELECT check_name, checked, problems
FROM statusdb_doctor_sample_v1(%(sample_size)s::integer);

-- name: doctor_outbox
-- Pending changes and events (partial indexes on notified_at IS NULL): counts capped at cap, oldest age in seconds.
SELECT
    (SELECT count(*) FROM (SELECT 1 FROM status_change sc WHERE sc.notified_at IS NULL
                           LIMIT %(cap)s) AS c) AS pending_changes,
    (SELECT count(*) FROM (SELECT 1 FROM notification_event e WHERE e.notified_at IS NULL
                           LIMIT %(cap)s) AS c) AS pending_events,
    extract(epoch FROM clock_timestamp() - least(
        (SELECT min(sc.changed_at) FROM status_change sc WHERE sc.notified_at IS NULL),
        (SELECT min(e.created_at) FROM notification_event e WHERE e.notified_at IS NULL)
    ))::double precision AS oldest_pending_s;

-- name: doctor_stuck_leases
-- Leases past their expiry by more than the grace, on pending changes, events and retries (partial indexes).
SELECT
    (SELECT count(*) FROM status_change sc
     WHERE sc.notified_at IS NULL AND sc.lease_expires_at < clock_timestamp() - %(grace)s::interval)
        AS changes,
    (SELECT count(*) FROM notification_event e
     WHERE e.notified_at IS NULL AND e.lease_expires_at < clock_timestamp() - %(grace)s::interval)
        AS events,
    (SELECT count(*) FROM delivery_attempt a
     WHERE a.next_attempt_at IS NOT NULL
       AND a.lease_expires_at < clock_timestamp() - %(grace)s::interval) AS retries;

-- name: doctor_delivery_failures
-- Failed delivery attempts within the window (delivery_attempt_failed_attempted_at_idx, 0032), by outcome.
SELECT
    count(*) FILTER (WHERE a.outcome = 'FAILED_TEMPORARY') AS temporary,
    count(*) FILTER (WHERE a.outcome = 'FAILED_PERMANENT') AS permanent
FROM delivery_attempt a
WHERE a.outcome <> 'DELIVERED' AND a.attempted_at >= clock_timestamp() - %(window)s::interval;

-- name: doctor_deactivated_subscribers
-- Subscribers deactivated within the window (status_subscriber_deactivated_at_idx, 0032).
SELECT count(*) AS deactivated
FROM status_subscriber s
WHERE s.deactivated_at IS NOT NULL AND s.deactivated_at >= clock_timestamp() - %(window)s::interval;

-- name: doctor_scheduler
-- The most recent scheduler step of any instance: its age in seconds, the instance, and how many instances ran within the day.
SELECT h.instance,
       extract(epoch FROM clock_timestamp() - h.last_success_at)::double precision AS lag_s,
       (SELECT count(*) FROM scheduler_heartbeat r
        WHERE r.last_success_at >= clock_timestamp() - interval '1 day') AS recent_instances
FROM scheduler_heartbeat h
ORDER BY h.last_success_at DESC
LIMIT 1;

-- name: doctor_maintenance_overdue
-- Windows whose transition is due for longer than the given age (maintenance_window_status_start_time_idx): how many, and the oldest overdue in seconds.
SELECT count(*) AS overdue,
       extract(epoch FROM clock_timestamp() - min(d.due_at))::double precision AS oldest_s
FROM (
    SELECT w.start_time AS due_at
    FROM maintenance_window w
    WHERE w.status = 'SCHEDULED' AND w.start_time < clock_timestamp() - %(age)s::interval
    UNION ALL
    SELECT w.end_time
    FROM maintenance_window w
    WHERE w.status = 'IN_PROGRESS' AND w.start_time < clock_timestamp() - %(age)s::interval
      AND w.end_time < clock_timestamp() - %(age)s::interval
) AS d;

-- name: doctor_replication_primary
-- The largest replay lag of the replicas streaming from this server (null: none, or not visible to this role), and how many stream.
SELECT extract(epoch FROM max(r.replay_lag))::double precision AS lag_s, count(*) AS replicas
FROM pg_stat_replication r;

-- name: doctor_replication_standby
-- On a standby: seconds since the last replayed transaction's commit (null when not a standby).
SELECT CASE WHEN pg_is_in_recovery()
            THEN extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::double precision
       END AS lag_s;
