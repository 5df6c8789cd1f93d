-- name: routing_position
-- The primary's WAL insert position now, in bytes: past the commit record of every transaction committed before this statement (also with synchronous_commit off, where the written position may still lag the commit record).
SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint AS position;

-- name: routing_replica_state
-- A standby's replay state: whether it is in recovery, the WAL position it has replayed (bytes), whether replay is paused, and the commit time of the last transaction replayed.
SELECT pg_is_in_recovery() AS in_recovery,
       (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint AS replayed,
       (pg_is_in_recovery() AND pg_get_wal_replay_pause_state() <> 'not paused') AS paused,
       pg_last_xact_replay_timestamp() AS last_replayed_commit;
