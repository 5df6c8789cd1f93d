-- statusdb 0032: the scheduler's heartbeat, its step as SQL (for pg_cron), and doctor's samples
-- (issue 23: run it in production).
-- depends: 0031_idempotency_keys
--
-- * scheduler_heartbeat: one row per scheduler instance, the last successful step (stamped by
--   the server's clock when the step records it, in the step's own transaction: a step that
--   rolls back records nothing), its duration, transitions and errors. `statusdb doctor`
--   reports the scheduler's lag from it. Owner-only writes: statusdb_record_scheduler_run
--   (SECURITY DEFINER, granted to statusdb_app, the scheduler's role) is the only way in, and
--   it keeps the table bounded (at most 1,000 instances: the oldest go; rows older than 30 days
--   go). The app may forge a heartbeat, but it is the scheduler's role: it could run the step.
-- * statusdb_maintenance_advance_by_time(at, window_id): the scheduler's transitions that need
--   no recurrence expansion (SCHEDULED -> IN_PROGRESS; a one-off window's end -> COMPLETED), the
--   statement maintenance.advance ran as the named query maintenance_advance_by_time, now in
--   one place for both the Python step and the SQL step.
-- * statusdb_advance_v1(instance): the scheduler's step inside the database, for pg_cron:
--   those transitions (window by window after a failure, recording the window's error in
--   maintenance_window_scheduler_error as maintenance.advance does), the reminders
--   (statusdb_maintenance_remind), and the heartbeat. It is narrower than maintenance.advance:
--   a recurring window whose occurrence ended is moved to its next occurrence by the RRULE
--   expansion of statusdb.domain.recurrence, which is Python (PL/pgSQL has no RFC 5545
--   expander, and two expanders would disagree at the edges: DST gaps, BYSETPOS, bounds). The
--   Python scheduler (`statusdb scheduler`) does that part; `statusdb doctor` reports windows
--   left overdue (maintenance_overdue), so a pg_cron-only deployment with recurring windows
--   sees that it needs the Python step too.
-- * statusdb_doctor_sample_v1(sample_size): doctor's bounded checks of derived state: up to
--   sample_size components from a random point of the primary key (wrapping around), their
--   derived statuses and the tail of their status-change chains; groups likewise; pages
--   (a tenth of the sample) rendered from scratch against their snapshots. Index scans only,
--   cost proportional to the sample. The full passes stay statusdb_recompute_statuses,
--   statusdb_recompute_group_statuses and statusdb_page_snapshot_repair.
-- * Partial indexes for doctor's recent-failure and recent-deactivation counts (small: only
--   failed attempts, only deactivated subscribers).
-- * SELECT on yoyo's _yoyo_migration for statusdb_app (when the migrator may grant it): doctor's
--   "migrations current" check, run as the app, compares the applied hashes with the release's.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

CREATE TABLE scheduler_heartbeat (
    instance text NOT NULL,
    last_success_at timestamptz NOT NULL,
    duration interval NOT NULL,
    -- One step's counts (a function argument of type integer).
    -- squawk-ignore prefer-bigint-over-int
    transitions integer NOT NULL,
    -- squawk-ignore prefer-bigint-over-int
    errors integer NOT NULL,
    runs bigint NOT NULL DEFAULT 1,
    CONSTRAINT scheduler_heartbeat_pkey PRIMARY KEY (instance),
    CONSTRAINT scheduler_heartbeat_instance_length_check
        CHECK (btrim(instance) <> '' AND length(instance) <= 200),
    CONSTRAINT scheduler_heartbeat_last_success_at_range_check
        CHECK (last_success_at >= '0001-01-02 00:00:00+00' AND last_success_at < '9999-12-31 00:00:00+00'),
    CONSTRAINT scheduler_heartbeat_duration_check
        CHECK (duration >= interval '0' AND duration < interval '1 day'),
    CONSTRAINT scheduler_heartbeat_transitions_check CHECK (transitions >= 0),
    CONSTRAINT scheduler_heartbeat_errors_check CHECK (errors >= 0),
    CONSTRAINT scheduler_heartbeat_runs_check CHECK (runs >= 1)
);

CREATE INDEX scheduler_heartbeat_last_success_at_idx ON scheduler_heartbeat (last_success_at);

COMMENT ON TABLE scheduler_heartbeat IS
    'The last successful scheduler step of each instance (0032), written by '
    'statusdb_record_scheduler_run in the step''s transaction; statusdb doctor reads the lag.';
COMMENT ON COLUMN scheduler_heartbeat.instance IS
    'The scheduler instance (statusdb scheduler --instance, default host:pid; pg_cron''s job).';
COMMENT ON COLUMN scheduler_heartbeat.last_success_at IS
    'The server''s clock_timestamp() when the step recorded its success.';
COMMENT ON COLUMN scheduler_heartbeat.duration IS 'How long that step took.';
COMMENT ON COLUMN scheduler_heartbeat.transitions IS 'The transitions that step made.';
COMMENT ON COLUMN scheduler_heartbeat.errors IS 'The windows that step skipped with an error.';
COMMENT ON COLUMN scheduler_heartbeat.runs IS 'Successful steps recorded for the instance.';

-- Read by doctor (run as statusdb_app); written only through the function below.
GRANT SELECT ON TABLE scheduler_heartbeat TO statusdb_app;
ALTER TABLE scheduler_heartbeat ENABLE ROW LEVEL SECURITY;
-- Not team data (no page, no team): every statusdb_app session sees every instance.
CREATE POLICY scheduler_heartbeat_read ON scheduler_heartbeat FOR SELECT USING (true);

CREATE FUNCTION statusdb_record_scheduler_run(
    instance text, duration interval, transitions integer, errors integer
)
RETURNS timestamptz
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    stamp timestamptz := clock_timestamp();
BEGIN
    IF instance IS NULL OR btrim(instance) = '' OR length(instance) > 200 THEN
        RAISE EXCEPTION 'instance must be 1 to 200 characters'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF duration IS NULL OR duration < interval '0' OR duration >= interval '1 day' THEN
        RAISE EXCEPTION 'duration must be from 0 to less than 1 day'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF transitions IS NULL OR transitions < 0 OR errors IS NULL OR errors < 0 THEN
        RAISE EXCEPTION 'transitions and errors must be 0 or more'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO scheduler_heartbeat AS h
        (instance, last_success_at, duration, transitions, errors)
    VALUES (statusdb_record_scheduler_run.instance, stamp, statusdb_record_scheduler_run.duration,
            statusdb_record_scheduler_run.transitions, statusdb_record_scheduler_run.errors)
    ON CONFLICT (instance) DO UPDATE
    SET last_success_at = excluded.last_success_at,
        duration = excluded.duration,
        transitions = excluded.transitions,
        errors = excluded.errors,
        runs = h.runs + 1;
    -- Bounded whoever calls: 30 days of history, and the 1,000 most recent instances (a
    -- scheduler that restarts under new names does not grow the table).
    DELETE FROM scheduler_heartbeat h
    WHERE h.last_success_at < stamp - interval '30 days'
       OR h.instance IN (SELECT o.instance FROM scheduler_heartbeat o
                         ORDER BY o.last_success_at DESC, o.instance
                         OFFSET 1000);
    RETURN stamp;
END;
$$;

COMMENT ON FUNCTION statusdb_record_scheduler_run(text, interval, integer, integer) IS
    'Record a successful scheduler step of instance (0032): stamped with clock_timestamp(), '
    'in the caller''s transaction. Bounds: instance 1-200 characters, duration under a day, '
    'counts >= 0; keeps 30 days and 1,000 instances. Returns the stamp.';

REVOKE EXECUTE ON FUNCTION statusdb_record_scheduler_run(text, interval, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION statusdb_record_scheduler_run(text, interval, integer, integer) TO statusdb_app;

-- The statement of the named query maintenance_advance_by_time (statusdb/db/sql/maintenance.sql,
-- up to 0028), unchanged, with an optional window id for the retry one window at a time.
CREATE FUNCTION statusdb_maintenance_advance_by_time(at timestamptz, window_id text DEFAULT NULL)
RETURNS TABLE (id text, from_status text, to_status text, start_time timestamptz)
LANGUAGE sql
VOLATILE
SET search_path = public, pg_temp
AS $$
    -- SCHEDULED -> IN_PROGRESS when start_time <= at < end_time (one-off or series); a one-off
    -- window whose end has passed -> COMPLETED (straight from SCHEDULED when its whole
    -- occurrence was missed). Rows locked by another scheduler (or by an update) are skipped:
    -- whoever holds them makes their transitions. Under READ COMMITTED a row changed by a
    -- scheduler that committed after this statement's snapshot is re-checked against the
    -- conditions on its new version before it is locked, so no transition is made twice.
    WITH due AS (
        SELECT w.id, w.status
        FROM public.maintenance_window w
        WHERE ((w.status = 'SCHEDULED' AND w.start_time <= at
                AND (w.end_time > at OR w.recurrence_rule IS NULL))
               OR (w.status = 'IN_PROGRESS' AND w.end_time <= at
                   AND w.recurrence_rule IS NULL))
          AND (statusdb_maintenance_advance_by_time.window_id IS NULL
               OR w.id = statusdb_maintenance_advance_by_time.window_id)
        ORDER BY w.id
        FOR NO KEY UPDATE SKIP LOCKED
    ),
    status_locks AS (
        -- Take the windows' locks and the status locks of every covered component at once, in
        -- the lock order (CONTRIBUTING.md), before any row's trigger does: two schedulers whose
        -- windows share components, or a scheduler and a link writer, cannot then deadlock.
        SELECT public.statusdb_lock_maintenance_windows(ARRAY(SELECT due.id FROM due)) AS done
    )
    UPDATE public.maintenance_window w
    SET status = CASE WHEN w.end_time <= at THEN 'COMPLETED' ELSE 'IN_PROGRESS' END
    FROM due, status_locks
    WHERE w.id = due.id
    RETURNING w.id, due.status, w.status, w.start_time
$$;

COMMENT ON FUNCTION statusdb_maintenance_advance_by_time(timestamptz, text) IS
    'The scheduler''s transitions that need no recurrence expansion, at the instant at (0032; '
    'the statement of maintenance.advance, and of statusdb_advance_v1): SCHEDULED -> '
    'IN_PROGRESS, a one-off window''s end -> COMPLETED; only window_id when given. Rows '
    'another transaction holds are skipped. SECURITY INVOKER: row-level security applies.';

REVOKE EXECUTE ON FUNCTION statusdb_maintenance_advance_by_time(timestamptz, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION statusdb_maintenance_advance_by_time(timestamptz, text) TO statusdb_app;

CREATE FUNCTION statusdb_advance_v1(instance text DEFAULT 'pg_cron')
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SET search_path = public, pg_temp
AS $$
DECLARE
    at timestamptz := clock_timestamp();
    made integer := 0;
    one_made integer;
    failed text[] := '{}'::text[];
    messages text[] := '{}'::text[];
    advanced text[] := '{}'::text[];
    due_id text;
    message text;
BEGIN
    IF instance IS NULL OR btrim(instance) = '' OR length(instance) > 200 THEN
        RAISE EXCEPTION 'instance must be 1 to 200 characters'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    BEGIN
        SELECT count(*)::integer, coalesce(array_agg(t.id), '{}'::text[])
        INTO made, advanced
        FROM statusdb_maintenance_advance_by_time(at) AS t;
    EXCEPTION
        WHEN serialization_failure OR deadlock_detected THEN
            RAISE;
        WHEN OTHERS THEN
            -- One bad window never stalls the others (as maintenance.advance): one at a time.
            FOR due_id IN
                SELECT w.id
                FROM maintenance_window w
                WHERE (w.status = 'SCHEDULED' AND w.start_time <= at
                       AND (w.end_time > at OR w.recurrence_rule IS NULL))
                   OR (w.status = 'IN_PROGRESS' AND w.end_time <= at
                       AND w.recurrence_rule IS NULL)
                ORDER BY w.id
            LOOP
                BEGIN
                    SELECT count(*)::integer INTO one_made
                    FROM statusdb_maintenance_advance_by_time(at, due_id);
                    made := made + one_made;
                    IF one_made > 0 THEN
                        advanced := array_append(advanced, due_id);
                    END IF;
                EXCEPTION
                    WHEN serialization_failure OR deadlock_detected THEN
                        RAISE;
                    WHEN OTHERS THEN
                        GET STACKED DIAGNOSTICS message = MESSAGE_TEXT;
                        failed := array_append(failed, due_id);
                        messages := array_append(messages, 'cannot start or end: ' || message);
                        RAISE WARNING 'maintenance window % skipped by the scheduler: %',
                            due_id, message;
                END;
            END LOOP;
    END;
    BEGIN
        PERFORM statusdb_maintenance_remind(at);
    EXCEPTION
        WHEN serialization_failure OR deadlock_detected THEN
            RAISE;
        WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS message = MESSAGE_TEXT;
            RAISE WARNING 'maintenance reminders skipped by the scheduler step: %', message;
    END;
    -- The statements of maintenance_clear_scheduler_errors and
    -- maintenance_record_scheduler_errors (statusdb/db/sql/maintenance.sql).
    IF cardinality(advanced) > 0 THEN
        DELETE FROM maintenance_window_scheduler_error e
        WHERE e.maintenance_window_id = ANY (advanced);
    END IF;
    IF cardinality(failed) > 0 THEN
        INSERT INTO maintenance_window_scheduler_error AS e
            (maintenance_window_id, error, first_failed_at, last_failed_at)
        SELECT f.id, left(f.error, 2000), at, at
        FROM unnest(failed, messages) AS f (id, error)
        WHERE EXISTS (SELECT 1 FROM maintenance_window w WHERE w.id = f.id)
        ON CONFLICT (maintenance_window_id) DO UPDATE
        SET error = excluded.error,
            last_failed_at = excluded.last_failed_at,
            failures = e.failures + 1;
    END IF;
    PERFORM statusdb_record_scheduler_run(instance, clock_timestamp() - at, made,
                                          cardinality(failed));
    RETURN made;
END;
$$;

COMMENT ON FUNCTION statusdb_advance_v1(text) IS
    'The scheduler''s step inside the database, for pg_cron (0032): the transitions that need '
    'no recurrence expansion (statusdb_maintenance_advance_by_time, window by window after a '
    'failure, errors in maintenance_window_scheduler_error), the reminders, and a heartbeat '
    'for instance (1-200 characters). Recurring windows whose occurrence ended are left to '
    'maintenance.advance (statusdb scheduler). Returns the transitions made.';

REVOKE EXECUTE ON FUNCTION statusdb_advance_v1(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION statusdb_advance_v1(text) TO statusdb_app;

-- A random starting key for a sample in primary-key order: ids are statusdb_new_id()'s
-- time-ordered UUIDs, so a random instant between the first and the last id's prefix; any
-- other id (written around statusdb) starts at the first.
CREATE FUNCTION statusdb_sample_start(lo text, hi text)
RETURNS text
LANGUAGE sql
VOLATILE
SET search_path = pg_catalog, pg_temp
RETURN CASE
    WHEN lo ~ '^[0-9a-f]{8}-[0-9a-f]{4}-' AND hi ~ '^[0-9a-f]{8}-[0-9a-f]{4}-' THEN
        (SELECT substr(k.h, 1, 8) || '-' || substr(k.h, 9, 4)
         FROM (SELECT lpad(to_hex(b.l + floor(random() * (b.u - b.l + 1))::bigint), 12, '0') AS h
               FROM (SELECT ('x' || replace(substr(lo, 1, 13), '-', ''))::bit(48)::bigint AS l,
                            ('x' || replace(substr(hi, 1, 13), '-', ''))::bit(48)::bigint AS u)
                    AS b) AS k)
    ELSE lo
END;

COMMENT ON FUNCTION statusdb_sample_start(text, text) IS
    'A random key between two statusdb_new_id() ids (their time prefix), else lo (0032: '
    'statusdb_doctor_sample_v1 samples from it in primary-key order).';

REVOKE EXECUTE ON FUNCTION statusdb_sample_start(text, text) FROM PUBLIC;

CREATE FUNCTION statusdb_doctor_sample_v1(sample_size integer)
RETURNS TABLE (check_name text, checked integer, problems text[])
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    start_key text;
    component_ids text[];
    group_ids text[];
    page_ids text[];
    page_sample integer;
BEGIN
    IF sample_size IS NULL OR sample_size < 1 OR sample_size > 10000 THEN
        RAISE EXCEPTION 'sample_size must be from 1 to 10000'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- An operator's check over every team: a team-scoped session is refused rather than shown
    -- other teams' ids (row-level security does not apply to the owner).
    IF statusdb_current_team() IS NOT NULL THEN
        RAISE EXCEPTION 'doctor''s samples cover every team: run them without a team scope'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    page_sample := greatest(1, sample_size / 10);

    start_key := statusdb_sample_start((SELECT min(c.id) FROM status_page_component c),
                                       (SELECT max(c.id) FROM status_page_component c));
    component_ids := ARRAY(SELECT c.id FROM status_page_component c
                           WHERE c.id >= start_key ORDER BY c.id LIMIT sample_size);
    component_ids := component_ids
        || ARRAY(SELECT c.id FROM status_page_component c
                 WHERE c.id < start_key ORDER BY c.id
                 LIMIT sample_size - cardinality(component_ids));
    -- EXECUTE: planned for the sample at hand (an index lookup per id), never as a
    -- generic plan that cannot tell 100 ids from the whole table.
    RETURN QUERY EXECUTE $q$
    SELECT 'component_statuses', cardinality($1),
           ARRAY(SELECT d.component_id || ': ' || d.current_status || ', derived '
                        || d.derived_status
                 FROM statusdb_derive_statuses($1) AS d
                 WHERE d.current_status IS DISTINCT FROM d.derived_status
                 ORDER BY d.component_id)
    $q$ USING component_ids;
    -- The tail of each sampled component's chain: its last change is its current status, and
    -- that change's previous_status is the change before (OPERATIONAL when none).
    -- EXECUTE: planned for the sample at hand (an index lookup per id), never as a
    -- generic plan that cannot tell 100 ids from the whole table.
    RETURN QUERY EXECUTE $q$
    SELECT 'status_chain', cardinality($1),
           ARRAY(SELECT c.id || ': ' || t.problem
                 FROM status_page_component c
                 CROSS JOIN LATERAL (
                     SELECT CASE
                         WHEN coalesce(last.new_status, 'OPERATIONAL') <> c.current_status THEN
                             'last logged status '
                             || coalesce(last.new_status, 'OPERATIONAL (no change logged)')
                             || ' is not current_status ' || c.current_status
                         WHEN last.seq IS NOT NULL
                              AND last.previous_status
                                  <> coalesce(before.new_status, 'OPERATIONAL') THEN
                             'previous_status ' || last.previous_status || ' of seq '
                             || last.seq || ' does not follow '
                             || coalesce(before.new_status, 'OPERATIONAL')
                     END AS problem
                     FROM (SELECT NULL::integer AS nothing) AS anchor
                     LEFT JOIN LATERAL (
                         SELECT sc.seq, sc.previous_status, sc.new_status
                         FROM status_change sc
                         WHERE sc.component_id = c.id
                         ORDER BY sc.seq DESC LIMIT 1) AS last ON true
                     LEFT JOIN LATERAL (
                         SELECT sc.new_status
                         FROM status_change sc
                         WHERE sc.component_id = c.id AND sc.seq < last.seq
                         ORDER BY sc.seq DESC LIMIT 1) AS before ON true
                 ) AS t
                 WHERE c.id = ANY ($1) AND t.problem IS NOT NULL
                 ORDER BY c.id)
    $q$ USING component_ids;

    start_key := statusdb_sample_start((SELECT min(g.id) FROM component_group g),
                                       (SELECT max(g.id) FROM component_group g));
    group_ids := ARRAY(SELECT g.id FROM component_group g
                       WHERE g.id >= start_key ORDER BY g.id LIMIT sample_size);
    group_ids := group_ids
        || ARRAY(SELECT g.id FROM component_group g
                 WHERE g.id < start_key ORDER BY g.id
                 LIMIT sample_size - cardinality(group_ids));
    -- EXECUTE: planned for the sample at hand (an index lookup per id), never as a
    -- generic plan that cannot tell 100 ids from the whole table.
    RETURN QUERY EXECUTE $q$
    SELECT 'group_statuses', cardinality($1),
           ARRAY(SELECT d.group_id || ': ' || d.current_status || ', derived ' || d.derived_status
                 FROM statusdb_derive_group_statuses($1) AS d
                 WHERE d.current_status IS DISTINCT FROM d.derived_status
                 ORDER BY d.group_id)
    $q$ USING group_ids;

    start_key := statusdb_sample_start((SELECT min(p.id) FROM status_page p),
                                       (SELECT max(p.id) FROM status_page p));
    page_ids := ARRAY(SELECT p.id FROM status_page p
                      WHERE p.id >= start_key ORDER BY p.id LIMIT page_sample);
    page_ids := page_ids
        || ARRAY(SELECT p.id FROM status_page p
                 WHERE p.id < start_key ORDER BY p.id
                 LIMIT page_sample - cardinality(page_ids));
    -- The comparison of statusdb_page_snapshot_repair (0017, groups since 0020), for the sample.
    -- EXECUTE: planned for the sample at hand (an index lookup per id), never as a
    -- generic plan that cannot tell 100 ids from the whole table.
    RETURN QUERY EXECUTE $q$
    SELECT 'snapshots', cardinality($1),
           ARRAY(SELECT r.page_id || CASE WHEN s.page_id IS NULL THEN ': no snapshot'
                                          ELSE ': snapshot version ' || s.version
                                               || ' differs from a rendering from scratch' END
                 FROM statusdb_page_render($1) AS r
                 -- LATERAL: one lookup by key per rendered page (the render's row count is
                 -- unknown to the planner, which would hash the whole snapshot table).
                 LEFT JOIN LATERAL (SELECT sn.* FROM status_page_snapshot sn
                                    WHERE sn.page_id = r.page_id LIMIT 1) AS s ON true
                 WHERE s.page_id IS NULL
                    OR (s.slug, s.is_public, s.access_token_hash, s.name, s.description,
                        s.updated_at, s.components::text, s.incidents::text, s.windows::text,
                        s.window_starts, s.window_scheduled, s.groups::text)
                       IS DISTINCT FROM
                       (r.slug, r.is_public, r.access_token_hash, r.name, r.description,
                        r.updated_at, r.components::text, r.incidents::text, r.windows::text,
                        r.window_starts, r.window_scheduled, r.groups::text)
                 ORDER BY r.page_id)
    $q$ USING page_ids;
END;
$$;

COMMENT ON FUNCTION statusdb_doctor_sample_v1(integer) IS
    'statusdb doctor''s sampled checks (0032): up to sample_size (1-10000) components from a '
    'random point in primary-key order (component_statuses: derived status; status_chain: the '
    'last change is the current status and follows the one before), as many groups '
    '(group_statuses), a tenth as many pages (snapshots: rendered from scratch). One row per '
    'check: how many were checked, and the problems found. Refused in a team-scoped session.';

REVOKE EXECUTE ON FUNCTION statusdb_doctor_sample_v1(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION statusdb_doctor_sample_v1(integer) TO statusdb_app;

-- Doctor's counts of the last hours, by index (only the rows they count).
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX delivery_attempt_failed_attempted_at_idx ON delivery_attempt (attempted_at)
    WHERE outcome <> 'DELIVERED';
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX status_subscriber_deactivated_at_idx ON status_subscriber (deactivated_at)
    WHERE deactivated_at IS NOT NULL;

-- Doctor's "migrations current" check, run as statusdb_app: the applied migrations' hashes
-- (yoyo's table, which the migrator created and owns). Only when the migrator may grant it.
DO $$
BEGIN
    IF to_regclass('public._yoyo_migration') IS NOT NULL
       AND has_table_privilege('public._yoyo_migration', 'SELECT WITH GRANT OPTION') THEN
        GRANT SELECT ON TABLE public._yoyo_migration TO statusdb_app;
    END IF;
END;
$$;
