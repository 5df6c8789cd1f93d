-- name: maintenance_create
-- Insert a window and its component links in one statement (nothing if a component is foreign).
-- Nothing is written when the page is missing or a component is not on it; page_found and
-- foreign_component_ids tell the caller which, so that the error can name the offending ids
-- (the trigger maintenance_window_component_same_page still guards the links).
WITH page AS (
    SELECT p.id
    FROM status_page p
    WHERE p.id = %(status_page_id)s
),
foreign_components AS (
    SELECT coalesce(array_agg(c.id ORDER BY c.position), '{}') AS ids
    FROM unnest(%(component_ids)s::text[]) WITH ORDINALITY AS c (id, position)
    WHERE NOT EXISTS (
        SELECT 1
        FROM status_page_component pc
        WHERE pc.id = c.id AND pc.status_page_id = %(status_page_id)s
    )
),
win AS (
    INSERT INTO maintenance_window (status_page_id, title, description, start_time, end_time,
                                    recurrence_rule, recurrence_start, recurrence_local_start,
                                    time_zone, auto_update_status, notify_subscribers,
                                    reminder_lead, created_by_id)
    SELECT page.id, %(title)s, %(description)s, %(start_time)s, %(end_time)s,
           %(recurrence_rule)s, %(recurrence_start)s, %(recurrence_local_start)s, %(time_zone)s,
           %(auto_update_status)s, %(notify_subscribers)s, %(reminder_lead)s, %(created_by_id)s
    FROM page, foreign_components f
    WHERE cardinality(f.ids) = 0
    RETURNING id, status_page_id, title, description, start_time, end_time, recurrence_rule,
              recurrence_start, recurrence_local_start, time_zone, auto_update_status,
              notify_subscribers, reminder_lead, status, created_by_id, created_at, updated_at
),
links AS (
    INSERT INTO maintenance_window_component (maintenance_window_id, component_id)
    SELECT win.id, c.id
    FROM win
    CROSS JOIN unnest(%(component_ids)s::text[]) AS c (id)
    RETURNING component_id
)
SELECT EXISTS (SELECT 1 FROM page) AS page_found,
       f.ids AS foreign_component_ids,
       win.id, win.status_page_id, win.title, win.description, win.start_time, win.end_time,
       win.recurrence_rule, win.recurrence_start, win.recurrence_local_start, win.time_zone, win.auto_update_status,
       win.notify_subscribers, win.reminder_lead, win.status, win.created_by_id, win.created_at, win.updated_at,
       ARRAY(SELECT l.component_id FROM links l ORDER BY l.component_id) AS component_ids
FROM foreign_components f
LEFT JOIN win ON true;

-- name: maintenance_get
-- Fetch one window by id, with its components.
SELECT w.id, w.status_page_id, w.title, w.description, w.start_time, w.end_time,
       w.recurrence_rule, w.recurrence_start, w.recurrence_local_start, w.time_zone, w.auto_update_status,
       w.notify_subscribers, w.reminder_lead, w.status, w.created_by_id, w.created_at, w.updated_at,
       ARRAY(SELECT mc.component_id
             FROM maintenance_window_component mc
             WHERE mc.maintenance_window_id = w.id
             ORDER BY mc.component_id) AS component_ids
FROM maintenance_window w
WHERE w.id = %(id)s;

-- name: maintenance_lock
-- Fetch one window by id and lock it for an update computed by the caller.
-- FOR NO KEY UPDATE: links to the window can still be inserted by others meanwhile (they only
-- take KEY SHARE), and a scheduler's SKIP LOCKED scan passes over the row.
SELECT w.id, w.status_page_id, w.title, w.description, w.start_time, w.end_time,
       w.recurrence_rule, w.recurrence_start, w.recurrence_local_start, w.time_zone, w.auto_update_status,
       w.notify_subscribers, w.reminder_lead, w.status, w.created_by_id, w.created_at, w.updated_at,
       ARRAY(SELECT mc.component_id
             FROM maintenance_window_component mc
             WHERE mc.maintenance_window_id = w.id
             ORDER BY mc.component_id) AS component_ids
FROM maintenance_window w
WHERE w.id = %(id)s
FOR NO KEY UPDATE OF w;

-- name: maintenance_list_for_page
-- A page's windows by start time, optionally only those in the given statuses.
SELECT w.id, w.status_page_id, w.title, w.description, w.start_time, w.end_time,
       w.recurrence_rule, w.recurrence_start, w.recurrence_local_start, w.time_zone, w.auto_update_status,
       w.notify_subscribers, w.reminder_lead, w.status, w.created_by_id, w.created_at, w.updated_at,
       ARRAY(SELECT mc.component_id
             FROM maintenance_window_component mc
             WHERE mc.maintenance_window_id = w.id
             ORDER BY mc.component_id) AS component_ids
FROM maintenance_window w
WHERE w.status_page_id = %(status_page_id)s
  AND (%(statuses)s::text[] IS NULL OR w.status = ANY (%(statuses)s::text[]))
ORDER BY w.start_time, w.id;

-- name: maintenance_lock_ahead
-- Take the slots of a window update that changes both its effect and its links, in lock order.
SELECT statusdb_lock_status_inputs(
    ARRAY[%(id)s::text], '{}',
    ARRAY(SELECT c.id FROM status_page_component c
          WHERE c.id = ANY (%(component_ids)s::text[])
            AND c.status_page_id = %(status_page_id)s));

-- name: maintenance_update
-- Write a locked window's new values and maybe replace its component set, in one statement.
-- The component set is replaced when set_component_ids; nothing is written when a component is
-- not on the window's page (foreign_component_ids says which). Every value is final: the
-- caller merged the change into the row it locked. Links that stay are left alone, so that a
-- running window's components see no needless re-derivation.
WITH foreign_components AS (
    SELECT coalesce(array_agg(c.id ORDER BY c.position), '{}') AS ids
    FROM unnest(%(component_ids)s::text[]) WITH ORDINALITY AS c (id, position)
    JOIN maintenance_window w ON w.id = %(id)s
    WHERE %(set_component_ids)s
      AND NOT EXISTS (
          SELECT 1
          FROM status_page_component pc
          WHERE pc.id = c.id AND pc.status_page_id = w.status_page_id
      )
),
win AS (
    UPDATE maintenance_window w
    SET title = %(title)s,
        description = %(description)s,
        start_time = %(start_time)s,
        end_time = %(end_time)s,
        recurrence_rule = %(recurrence_rule)s,
        recurrence_start = %(recurrence_start)s,
        recurrence_local_start = %(recurrence_local_start)s,
        time_zone = %(time_zone)s,
        auto_update_status = %(auto_update_status)s,
        notify_subscribers = %(notify_subscribers)s,
        reminder_lead = %(reminder_lead)s
    FROM foreign_components f
    WHERE w.id = %(id)s AND cardinality(f.ids) = 0
    RETURNING w.id, w.status_page_id, w.title, w.description, w.start_time, w.end_time,
              w.recurrence_rule, w.recurrence_start, w.recurrence_local_start, w.time_zone, w.auto_update_status,
              w.notify_subscribers, w.reminder_lead, w.status, w.created_by_id, w.created_at, w.updated_at
),
cleared AS (
    -- A changed window gets a fresh chance with the scheduler.
    DELETE FROM maintenance_window_scheduler_error e
    USING win
    WHERE e.maintenance_window_id = win.id
),
removed AS (
    DELETE FROM maintenance_window_component mc
    USING win
    WHERE %(set_component_ids)s
      AND mc.maintenance_window_id = win.id
      AND mc.component_id <> ALL (%(component_ids)s::text[])
    RETURNING mc.component_id
),
added AS (
    INSERT INTO maintenance_window_component (maintenance_window_id, component_id)
    SELECT win.id, c.id
    FROM win
    CROSS JOIN unnest(%(component_ids)s::text[]) AS c (id)
    WHERE %(set_component_ids)s
    ON CONFLICT (maintenance_window_id, component_id) DO NOTHING
    RETURNING component_id
)
SELECT f.ids AS foreign_component_ids,
       win.id, win.status_page_id, win.title, win.description, win.start_time, win.end_time,
       win.recurrence_rule, win.recurrence_start, win.recurrence_local_start, win.time_zone, win.auto_update_status,
       win.notify_subscribers, win.reminder_lead, win.status, win.created_by_id, win.created_at, win.updated_at,
       CASE WHEN %(set_component_ids)s
            THEN ARRAY(SELECT c.id FROM unnest(%(component_ids)s::text[]) AS c (id) ORDER BY c.id)
            ELSE ARRAY(SELECT mc.component_id
                       FROM maintenance_window_component mc
                       WHERE mc.maintenance_window_id = win.id
                       ORDER BY mc.component_id)
       END AS component_ids
FROM foreign_components f
LEFT JOIN win ON true;

-- name: maintenance_cancel
-- Cancel a scheduled or running window; a running one ends now.
-- previous_status says what the window was (no row: no such window); win's columns are null
-- when nothing changed (already CANCELLED or COMPLETED). now is the caller's clock, or the
-- transaction's when null. The row is locked first, so that a concurrent scheduler step is
-- either wholly before this (the window may be COMPLETED by then) or waits for it.
WITH target AS (
    SELECT w.id, w.status
    FROM maintenance_window w
    WHERE w.id = %(id)s
    FOR NO KEY UPDATE
),
win AS (
    UPDATE maintenance_window w
    SET status = 'CANCELLED',
        end_time = CASE WHEN w.status = 'IN_PROGRESS'
                             AND clock.now > w.start_time AND clock.now < w.end_time
                        THEN clock.now
                        ELSE w.end_time
                   END
    FROM target, (SELECT coalesce(%(now)s::timestamptz, now()) AS now) AS clock
    WHERE w.id = target.id AND target.status IN ('SCHEDULED', 'IN_PROGRESS')
    RETURNING w.id, w.status_page_id, w.title, w.description, w.start_time, w.end_time,
              w.recurrence_rule, w.recurrence_start, w.recurrence_local_start, w.time_zone, w.auto_update_status,
              w.notify_subscribers, w.reminder_lead, w.status, w.created_by_id, w.created_at, w.updated_at
)
SELECT target.status AS previous_status,
       win.id, win.status_page_id, win.title, win.description, win.start_time, win.end_time,
       win.recurrence_rule, win.recurrence_start, win.recurrence_local_start, win.time_zone, win.auto_update_status,
       win.notify_subscribers, win.reminder_lead, win.status, win.created_by_id, win.created_at, win.updated_at,
       ARRAY(SELECT mc.component_id
             FROM maintenance_window_component mc
             WHERE mc.maintenance_window_id = target.id
             ORDER BY mc.component_id) AS component_ids
FROM target
LEFT JOIN win ON true;

-- name: maintenance_delete
-- Delete a window; its component links go by cascade.
DELETE FROM maintenance_window
WHERE id = %(id)s;

-- name: maintenance_list_upcoming
-- A page's scheduled and running windows starting before the horizon, for expansion by the caller.
-- A one-off window whose end is past is left out; a series is kept (its later occurrences may
-- fall in the horizon). Served by maintenance_window_status_page_id_start_time_idx.
SELECT w.id, w.status_page_id, w.title, w.description, w.start_time, w.end_time,
       w.recurrence_rule, w.recurrence_start, w.recurrence_local_start, w.time_zone, w.auto_update_status,
       w.notify_subscribers, w.reminder_lead, w.status, w.created_by_id, w.created_at, w.updated_at,
       ARRAY(SELECT mc.component_id
             FROM maintenance_window_component mc
             WHERE mc.maintenance_window_id = w.id
             ORDER BY mc.component_id) AS component_ids
FROM maintenance_window w
WHERE w.status_page_id = %(status_page_id)s
  AND w.start_time < %(until)s
  AND w.status IN ('SCHEDULED', 'IN_PROGRESS')
  AND (w.recurrence_rule IS NOT NULL OR w.end_time > %(now)s)
ORDER BY w.start_time, w.id;

-- name: maintenance_advance_by_time
-- The scheduler's transitions that need no rule expansion, in one statement (statusdb_maintenance_advance_by_time, 0032: also pg_cron's step).
-- SCHEDULED -> IN_PROGRESS when start_time <= now < end_time (one-off or series); a one-off
-- window whose end has passed -> COMPLETED. Rows another scheduler (or an update) holds are
-- skipped and re-checked after locking, so no transition is made twice.
SELECT t.id, t.from_status, t.to_status, t.start_time
FROM statusdb_maintenance_advance_by_time(%(now)s::timestamptz) AS t;

-- name: maintenance_advance_one_by_time
-- maintenance_advance_by_time for one window: advance's retry, window by window, after a failure.
SELECT t.id, t.from_status, t.to_status, t.start_time
FROM statusdb_maintenance_advance_by_time(%(now)s::timestamptz, %(window_id)s::text) AS t;

-- name: maintenance_lock_ended_series
-- Recurring windows whose current occurrence has ended, locked for the caller to move on.
-- Rows another scheduler holds are skipped (it moves them). start_time < now is implied by
-- end_time <= now; saying it lets the scan use maintenance_window_status_start_time_idx.
SELECT w.id, w.status, w.start_time, w.end_time, w.recurrence_rule, w.recurrence_start,
       w.recurrence_local_start, w.time_zone
FROM maintenance_window w
WHERE w.status IN ('SCHEDULED', 'IN_PROGRESS')
  AND w.start_time < %(now)s
  AND w.end_time <= %(now)s
  AND w.recurrence_rule IS NOT NULL
ORDER BY w.id
FOR NO KEY UPDATE SKIP LOCKED;

-- name: maintenance_move_series
-- Give locked recurring windows the status and occurrence the caller computed.
WITH status_locks AS (
    -- As in maintenance_advance_by_time: all the windows' locks first, in the lock order.
    SELECT statusdb_lock_maintenance_windows(%(ids)s::text[]) AS done
)
UPDATE maintenance_window w
SET status = m.status,
    start_time = m.start_time,
    end_time = m.end_time
FROM unnest(%(ids)s::text[], %(statuses)s::text[], %(start_times)s::timestamptz[],
            %(end_times)s::timestamptz[]) AS m (id, status, start_time, end_time),
     status_locks
WHERE w.id = m.id;

-- name: maintenance_due_by_time
-- Ids of the windows maintenance_advance_by_time would change (no lock: each is then advanced
-- on its own, and re-checked there).
SELECT w.id
FROM maintenance_window w
WHERE (w.status = 'SCHEDULED' AND w.start_time <= %(now)s
       AND (w.end_time > %(now)s OR w.recurrence_rule IS NULL))
   OR (w.status = 'IN_PROGRESS' AND w.end_time <= %(now)s AND w.recurrence_rule IS NULL)
ORDER BY w.id;

-- name: maintenance_step_savepoint
-- Open the savepoint that isolates one part of a scheduler step (one window, or all at once).
SAVEPOINT statusdb_advance_step;

-- name: maintenance_step_release
-- Keep what the isolated part of the scheduler step did.
RELEASE SAVEPOINT statusdb_advance_step;

-- name: maintenance_step_rollback
-- Undo the isolated part of the scheduler step that failed; the rest of the step goes on.
ROLLBACK TO SAVEPOINT statusdb_advance_step;

-- name: maintenance_record_scheduler_errors
-- Keep the errors a scheduler step met, one per window (the last error, with a failure count).
-- Windows deleted meanwhile are left out.
INSERT INTO maintenance_window_scheduler_error AS e
    (maintenance_window_id, error, first_failed_at, last_failed_at)
SELECT f.id, left(f.error, 2000), %(now)s, %(now)s
FROM unnest(%(ids)s::text[], %(errors)s::text[]) AS f (id, error)
WHERE EXISTS (SELECT 1 FROM maintenance_window w WHERE w.id = f.id)
ON CONFLICT (maintenance_window_id) DO UPDATE
SET error = excluded.error,
    last_failed_at = excluded.last_failed_at,
    failures = e.failures + 1;

-- name: maintenance_clear_scheduler_errors
-- Forget the errors of windows that a scheduler step moved on.
DELETE FROM maintenance_window_scheduler_error
WHERE maintenance_window_id = ANY (%(ids)s::text[]);

-- name: maintenance_scheduler_errors
-- The windows the scheduler could not move on, with their last error, oldest failure first.
SELECT e.maintenance_window_id AS window_id, w.status_page_id, e.error, e.first_failed_at,
       e.last_failed_at, e.failures
FROM maintenance_window_scheduler_error e
JOIN maintenance_window w ON w.id = e.maintenance_window_id
WHERE %(status_page_id)s::text IS NULL OR w.status_page_id = %(status_page_id)s::text
ORDER BY e.first_failed_at, e.maintenance_window_id;
