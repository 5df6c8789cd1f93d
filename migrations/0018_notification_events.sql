-- statusdb 0018: notification events for status incidents and maintenance windows, written by
-- the database in the transaction that makes the change; notify_on kinds for them; one place
-- that decides who gets what; maintenance reminders.
-- depends: 0017_page_snapshot
--
-- Until now the outbox carried component status changes only (status_change, 0006): the words
-- people write for their users never reached a subscriber. notification_event is a second
-- outbox beside the status-change log, with the same guarantees:
--   * written by triggers (running as the owner) in the transaction of the change, whoever
--     writes (statusdb, a DBA's psql): nothing is announced that did not commit, nothing that
--     committed is lost. statusdb_app cannot insert or forge events (no INSERT grant), only
--     lease and complete them, as for status_change;
--   * claimed under leases with FOR UPDATE SKIP LOCKED (sql/outbox.sql), the oldest pending
--     event of each subject (a status incident, a maintenance window) at a time, so that one
--     subject's events go out in order; a lease that runs out is claimed again;
--   * each event carries what a message needs, as JSON (payload): the page's name and slug,
--     the title, the update's status and message, the affected components by name (and their
--     current status), the times in UTC with the window's time zone and local wall-clock times;
--     nothing internal (no platform incident id, no team id).
--
-- Event kinds (each is also a notify_on value, so a subscriber chooses them one by one):
--   incident_created      a status incident was published (INSERT)
--   incident_updated      a timeline entry was appended (or an entry after RESOLVED that keeps
--                         it resolved: a closing note)
--   incident_resolved     the incident became RESOLVED
--   incident_reopened     it left RESOLVED again
--   maintenance_scheduled a window was created (written at commit: the components a plain-SQL
--                         writer links in later statements of the transaction are included)
--   maintenance_rescheduled its times, rule or time zone changed (not the scheduler's own moves
--                         of a series to its next occurrence)
--   maintenance_cancelled it was cancelled
--   maintenance_reminder  its occurrence starts within reminder_lead (default 1 hour); written
--                         by the scheduler (statusdb_maintenance_remind), once per occurrence
--   maintenance_started   an occurrence began (SCHEDULED -> IN_PROGRESS)
--   maintenance_completed an occurrence ended (IN_PROGRESS -> COMPLETED, or -> SCHEDULED on
--                         the next occurrence of a series)
-- Missed occurrences (never started while no scheduler ran) notify nothing, as they never
-- showed; a window created and changed or cancelled in one transaction gets its scheduled event
-- only (with its state at commit), or none when it is cancelled by then.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

-- --------------------------------------------------------------------------------------------
-- notify_on: the new kinds, and what existing subscribers get
--
-- Existing subscribers keep what they chose and get the new kinds that match it: those who
-- wanted to hear about problems (degraded, outage or resolved) get the four incident kinds
-- (the words written about those problems); those who wanted maintenance get the six
-- maintenance kinds. So a subscriber with the old default (all four) gets everything, as a new
-- subscriber does by default. Values are kept in the canonical order (statusdb.types).
-- The UPDATE touches every subscriber row once (a few seconds for a million rows).
-- The CHECK is replaced by a wider one (below), in this transaction: no moment without it.
ALTER TABLE status_subscriber
    -- squawk-ignore ban-drop-constraint
    DROP CONSTRAINT status_subscriber_notify_on_check;

UPDATE status_subscriber s
SET notify_on = ARRAY(
    SELECT k.kind
    FROM unnest(ARRAY['degraded', 'outage', 'maintenance', 'resolved',
                      'incident_created', 'incident_updated', 'incident_resolved',
                      'incident_reopened', 'maintenance_scheduled', 'maintenance_rescheduled',
                      'maintenance_cancelled', 'maintenance_reminder', 'maintenance_started',
                      'maintenance_completed']) WITH ORDINALITY AS k (kind, position)
    WHERE k.kind = ANY (s.notify_on)
       OR (k.kind LIKE 'incident\_%' AND s.notify_on && ARRAY['degraded', 'outage', 'resolved'])
       OR (k.kind LIKE 'maintenance\_%' AND s.notify_on @> ARRAY['maintenance'])
    ORDER BY k.position);

-- The rows were just rewritten under the lock the UPDATE holds (and the constraint was dropped
-- in this same transaction): NOT VALID + a later VALIDATE would scan under that same lock.
ALTER TABLE status_subscriber
    -- squawk-ignore constraint-missing-not-valid
    ADD CONSTRAINT status_subscriber_notify_on_check
        CHECK (cardinality(notify_on) > 0
               AND array_position(notify_on, NULL) IS NULL
               AND notify_on <@ ARRAY['degraded', 'outage', 'maintenance', 'resolved',
                                      'incident_created', 'incident_updated',
                                      'incident_resolved', 'incident_reopened',
                                      'maintenance_scheduled', 'maintenance_rescheduled',
                                      'maintenance_cancelled', 'maintenance_reminder',
                                      'maintenance_started', 'maintenance_completed']::text[]);

ALTER TABLE status_subscriber
    ALTER COLUMN notify_on SET DEFAULT
        '{degraded,outage,maintenance,resolved,incident_created,incident_updated,incident_resolved,incident_reopened,maintenance_scheduled,maintenance_rescheduled,maintenance_cancelled,maintenance_reminder,maintenance_started,maintenance_completed}';

-- --------------------------------------------------------------------------------------------
-- Reminder lead time, per window
--
-- How long before each occurrence starts subscribers get a reminder; 0: none. At most 7 days,
-- so that the scheduler's scan for due reminders reads a bounded range of start times.
-- A constant default: no table rewrite.
ALTER TABLE maintenance_window
    ADD COLUMN reminder_lead interval NOT NULL DEFAULT interval '1 hour';
-- maintenance_window is small and the ADD COLUMN above holds ACCESS EXCLUSIVE on it until
-- commit; every row has the default, so the check scans nothing that can fail.
ALTER TABLE maintenance_window
    -- squawk-ignore constraint-missing-not-valid
    ADD CONSTRAINT maintenance_window_reminder_lead_check
        CHECK (reminder_lead >= interval '0' AND reminder_lead <= interval '7 days');

-- --------------------------------------------------------------------------------------------
-- The event outbox
CREATE TABLE notification_event (
    id text NOT NULL DEFAULT statusdb_new_id(),
    seq bigint GENERATED ALWAYS AS IDENTITY,
    status_page_id text NOT NULL,
    kind text NOT NULL,
    -- The subject: a status incident or a maintenance window. Deleting it drops its pending and
    -- delivered events (nothing is announced about what no longer exists).
    status_incident_id text,
    maintenance_window_id text,
    -- For maintenance events: the start of the occurrence the event is about (reminders are
    -- unique per window, occurrence and kind).
    occurrence_start timestamptz,
    -- The affected components (ids of the page): who follows one of them is told; empty: the
    -- whole page (every subscriber of the page wanting the kind is told).
    component_ids text[] NOT NULL,
    -- What a message needs (see the comment on the column).
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    lease_owner text,
    lease_expires_at timestamptz,
    notified_at timestamptz,
    -- NOTIFIED: subscribers were told; MUTED: a window with notify_subscribers off; OBSOLETE: a
    -- reminder for an occurrence that no longer comes (the window was cancelled or moved).
    outcome text,
    -- Events of one subject are claimed in order, one at a time (the oldest pending first).
    subject_id text GENERATED ALWAYS AS (coalesce(status_incident_id, maintenance_window_id))
        STORED,
    CONSTRAINT notification_event_pkey PRIMARY KEY (id),
    CONSTRAINT notification_event_status_page_id_fkey FOREIGN KEY (status_page_id)
        REFERENCES status_page (id) ON DELETE CASCADE,
    CONSTRAINT notification_event_status_incident_id_fkey FOREIGN KEY (status_incident_id)
        REFERENCES status_incident (id) ON DELETE CASCADE,
    CONSTRAINT notification_event_maintenance_window_id_fkey FOREIGN KEY (maintenance_window_id)
        REFERENCES maintenance_window (id) ON DELETE CASCADE,
    CONSTRAINT notification_event_kind_check
        CHECK (kind IN ('incident_created', 'incident_updated', 'incident_resolved',
                        'incident_reopened', 'maintenance_scheduled', 'maintenance_rescheduled',
                        'maintenance_cancelled', 'maintenance_reminder', 'maintenance_started',
                        'maintenance_completed')),
    CONSTRAINT notification_event_subject_check
        CHECK (CASE WHEN kind LIKE 'incident\_%'
                    THEN status_incident_id IS NOT NULL AND maintenance_window_id IS NULL
                    ELSE maintenance_window_id IS NOT NULL AND status_incident_id IS NULL
                         AND occurrence_start IS NOT NULL
               END),
    CONSTRAINT notification_event_outcome_check
        CHECK (outcome IN ('NOTIFIED', 'MUTED', 'OBSOLETE')),
    CONSTRAINT notification_event_notified_check
        CHECK ((notified_at IS NULL) = (outcome IS NULL)),
    CONSTRAINT notification_event_lease_check
        CHECK ((lease_owner IS NULL) = (lease_expires_at IS NULL))
);
-- The work queue: per subject, its pending events in order (pending rows only).
CREATE INDEX notification_event_pending_idx
    ON notification_event (subject_id, seq) WHERE notified_at IS NULL;
-- Serves the cascades from a deleted page, status incident or window.
CREATE INDEX notification_event_status_page_id_idx ON notification_event (status_page_id);
CREATE INDEX notification_event_status_incident_id_idx
    ON notification_event (status_incident_id) WHERE status_incident_id IS NOT NULL;
-- One reminder per window and occurrence, whatever the number of schedulers; also serves the
-- cascade from a deleted window.
CREATE UNIQUE INDEX notification_event_reminder_key
    ON notification_event (maintenance_window_id, occurrence_start, kind)
    WHERE kind = 'maintenance_reminder';
CREATE INDEX notification_event_maintenance_window_id_idx
    ON notification_event (maintenance_window_id) WHERE maintenance_window_id IS NOT NULL;

COMMENT ON TABLE notification_event IS
    'Outbox of status-incident and maintenance notifications, written by triggers in the '
    'transaction of the change; workers lease, fan out and complete rows (statusdb.outbox).';
COMMENT ON COLUMN notification_event.id IS
    'Primary key: a UUIDv7 as text; with a subscriber id, the idempotency key of a delivery.';
COMMENT ON COLUMN notification_event.seq IS 'Order of writing (identity).';
COMMENT ON COLUMN notification_event.status_page_id IS 'The page whose subscribers are told.';
COMMENT ON COLUMN notification_event.kind IS
    'What happened: incident_created/updated/resolved/reopened, maintenance_scheduled/'
    'rescheduled/cancelled/reminder/started/completed (also the notify_on values).';
COMMENT ON COLUMN notification_event.status_incident_id IS
    'The status incident an incident_* event is about.';
COMMENT ON COLUMN notification_event.maintenance_window_id IS
    'The window a maintenance_* event is about.';
COMMENT ON COLUMN notification_event.occurrence_start IS
    'Start of the occurrence a maintenance_* event is about.';
COMMENT ON COLUMN notification_event.component_ids IS
    'Affected components: their followers are told; empty: the whole page.';
COMMENT ON COLUMN notification_event.payload IS
    'What a message needs, as JSON: page {id,name,slug}, components [{name,status}], and '
    'incident {id,title,severity} + update {status,message,timestamp}, or window {id,title,'
    'description,time_zone,recurring} + occurrence {start,end,start_local,end_local} + previous '
    '(rescheduled only). Times in UTC ISO 8601; *_local in the window''s time zone.';
COMMENT ON COLUMN notification_event.created_at IS 'When the event was written.';
COMMENT ON COLUMN notification_event.lease_owner IS 'The worker holding the event, if any.';
COMMENT ON COLUMN notification_event.lease_expires_at IS
    'When the worker''s lease runs out (then another worker may claim the event).';
COMMENT ON COLUMN notification_event.notified_at IS
    'When fan-out finished; null: still to be notified.';
COMMENT ON COLUMN notification_event.outcome IS
    'NOTIFIED, MUTED (window with notify_subscribers off) or OBSOLETE (reminder of an '
    'occurrence that no longer comes).';
COMMENT ON COLUMN notification_event.subject_id IS
    'The status incident or window (generated): its events are claimed in order.';
COMMENT ON COLUMN maintenance_window.reminder_lead IS
    'How long before each occurrence a reminder goes out (0: none; at most 7 days).';

-- The backend reads events and leases and completes them; only the triggers (as the owner)
-- and statusdb_maintenance_remind write them, so the backend cannot forge or prune them.
GRANT SELECT ON TABLE notification_event TO statusdb_app;
GRANT UPDATE (lease_owner, lease_expires_at, notified_at, outcome)
    ON TABLE notification_event TO statusdb_app;

ALTER TABLE notification_event ENABLE ROW LEVEL SECURITY;
CREATE POLICY notification_event_team_isolation ON notification_event
    USING ((SELECT statusdb_current_team()) IS NULL
           OR status_page_id IN (SELECT p.id FROM status_page p
                                 WHERE p.team_id = (SELECT statusdb_current_team())));

-- --------------------------------------------------------------------------------------------
-- Who gets what: the one predicate
--
-- The subscribers of a page to tell of something about some components (none: the whole page)
-- that is one of `kinds`: active, verified, wanting one of `kinds` and none of `folded_kinds`
-- (those get the same news through another event: see outbox_claim), and following one of the
-- components or every component; a page-wide event reaches every subscriber of the page.
-- One row per subscriber, whatever the number of components it shares with the event. Both
-- outboxes (status changes and events) use it. Three disjoint branches, each read through its
-- own index (0010): those following every component (an index-only scan), those following some
-- of the components (GIN), and, for page-wide events only, the other followers of the page.
-- LANGUAGE sql, STABLE, not STRICT: the planner inlines it into the caller's query, so each
-- branch is planned with the caller's values.
CREATE FUNCTION statusdb_notification_recipients(
    page_id text, event_component_ids text[], kinds text[], folded_kinds text[]
) RETURNS TABLE (subscriber_id text, channel text, destination text)
LANGUAGE sql
STABLE
AS $$
    SELECT s.id, s.channel, s.destination
    FROM public.status_subscriber s
    WHERE s.status_page_id = page_id
      AND s.component_ids = '{}'
      AND s.is_active
      AND s.is_verified
      AND s.notify_on && kinds
      AND NOT (s.notify_on && folded_kinds)
    UNION ALL
    SELECT s.id, s.channel, s.destination
    -- Gated like the third branch: a page-wide event skips it whole (under row-level security
    -- the GIN index cannot serve && and the planner would read the page's followers for none).
    FROM (SELECT WHERE cardinality(event_component_ids) > 0) AS some_components
    CROSS JOIN public.status_subscriber s
    WHERE s.component_ids && event_component_ids
      AND s.component_ids <> '{}'
      AND s.is_active
      AND s.is_verified
      AND s.status_page_id = page_id
      AND s.notify_on && kinds
      AND NOT (s.notify_on && folded_kinds)
    UNION ALL
    SELECT s.id, s.channel, s.destination
    -- The gate as a relation of its own: for an event with components the planner drops the
    -- branch whole (a constant-false qual beside row-level security's would not be).
    FROM (SELECT WHERE cardinality(event_component_ids) = 0) AS page_wide
    CROSS JOIN public.status_subscriber s
    WHERE s.status_page_id = page_id
      AND s.component_ids <> '{}'
      AND s.is_active
      AND s.is_verified
      AND s.notify_on && kinds
      AND NOT (s.notify_on && folded_kinds)
$$;
-- The third branch's index: a page's subscribers who follow some components, in id order,
-- covering what the fan-out reads, so that a page-wide event (an incident or window without
-- components) reaches them by an index-only scan as 0010's index does for those who follow
-- everything (a page-wide update to a million subscribers otherwise visits 700,000 heap rows).
-- Built in yoyo's transaction as 0010's were (see there: on a larger table, create it by hand
-- CONCURRENTLY first; IF NOT EXISTS then skips it).
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX IF NOT EXISTS status_subscriber_fan_out_page_idx
    ON status_subscriber (status_page_id, id) INCLUDE (channel, destination, notify_on)
    WHERE component_ids <> '{}' AND is_active AND is_verified;

COMMENT ON FUNCTION statusdb_notification_recipients(text, text[], text[], text[]) IS
    'Who is told: active, verified subscribers of the page wanting one of kinds and none of '
    'folded_kinds, following one of the components (or all; none given: the whole page). '
    'One row per subscriber.';
-- Runs as the caller (statusdb_app reads status_subscriber anyway); its work is one pass over
-- the page's matching subscribers, which the caller may read directly.
REVOKE EXECUTE ON FUNCTION statusdb_notification_recipients(text, text[], text[], text[])
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION statusdb_notification_recipients(text, text[], text[], text[])
    TO statusdb_app;

-- --------------------------------------------------------------------------------------------
-- Payload helpers (run as the owner, from the triggers below)

-- A timestamp as the UTC ISO 8601 form the status timeline uses.
CREATE FUNCTION statusdb_event_time(at timestamptz) RETURNS text
LANGUAGE sql
IMMUTABLE
SET search_path = public, pg_temp
AS $$
    SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;
COMMENT ON FUNCTION statusdb_event_time(timestamptz) IS
    'A timestamp as UTC ISO 8601 with microseconds and Z (notification payloads).';
REVOKE EXECUTE ON FUNCTION statusdb_event_time(timestamptz) FROM PUBLIC;

-- The page part of a payload.
CREATE FUNCTION statusdb_event_page(page_id text) RETURNS jsonb
LANGUAGE sql
STABLE
SET search_path = public, pg_temp
AS $$
    SELECT jsonb_build_object('id', p.id, 'name', p.name, 'slug', p.slug)
    FROM status_page p
    WHERE p.id = page_id
$$;
COMMENT ON FUNCTION statusdb_event_page(text) IS
    'The page part of a notification payload: id, name, slug.';
REVOKE EXECUTE ON FUNCTION statusdb_event_page(text) FROM PUBLIC;

-- Components by name and current status, in the page's display order.
CREATE FUNCTION statusdb_event_components(ids text[]) RETURNS jsonb
LANGUAGE sql
STABLE
SET search_path = public, pg_temp
AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object('name', c.name, 'status', c.current_status)
                              ORDER BY c.display_order, c.name), '[]')
    FROM status_page_component c
    WHERE c.id = ANY (ids)
$$;
COMMENT ON FUNCTION statusdb_event_components(text[]) IS
    'Components of a notification payload: [{name, status}] in display order.';
REVOKE EXECUTE ON FUNCTION statusdb_event_components(text[]) FROM PUBLIC;

-- --------------------------------------------------------------------------------------------
-- Status incident events
--
-- Fired by a new incident, a timeline entry appended (the updates array grew), or a status
-- moving into or out of RESOLVED (also when a plain-SQL writer sets the status without an
-- entry). Editing title, message, severity or components (statusdb's `edit`) notifies nobody:
-- it corrects what was posted, it is not news.
CREATE FUNCTION statusdb_status_incident_notify() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    event_kind text;
    latest jsonb;
    entry jsonb;
BEGIN
    IF TG_OP = 'INSERT' THEN
        event_kind := 'incident_created';
    ELSIF NEW.status = 'RESOLVED' AND OLD.status <> 'RESOLVED' THEN
        event_kind := 'incident_resolved';
    ELSIF OLD.status = 'RESOLVED' AND NEW.status <> 'RESOLVED' THEN
        event_kind := 'incident_reopened';
    ELSE
        event_kind := 'incident_updated';
    END IF;
    latest := NEW.updates -> -1;
    IF TG_OP = 'INSERT' AND latest IS NOT NULL
       OR TG_OP = 'UPDATE'
          AND jsonb_array_length(NEW.updates) > jsonb_array_length(OLD.updates) THEN
        entry := jsonb_build_object('status', latest ->> 'status',
                                    'message', latest ->> 'message',
                                    'timestamp', latest ->> 'timestamp');
    ELSE  -- no entry written: the incident's current state, now
        entry := jsonb_build_object('status', NEW.status, 'message', NEW.message,
                                    'timestamp', statusdb_event_time(clock_timestamp()));
    END IF;
    INSERT INTO notification_event (status_page_id, kind, status_incident_id, component_ids,
                                    payload)
    VALUES (NEW.status_page_id, event_kind, NEW.id, NEW.affected_component_ids,
            jsonb_build_object(
                'page', statusdb_event_page(NEW.status_page_id),
                'incident', jsonb_build_object('id', NEW.id, 'title', NEW.title,
                                               'severity', NEW.severity,
                                               'status', NEW.status,
                                               'created_at', statusdb_event_time(NEW.created_at)),
                'update', entry,
                'components', statusdb_event_components(NEW.affected_component_ids)));
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION statusdb_status_incident_notify() IS
    'Trigger: writes the incident_* notification event of a new status incident or timeline entry.';
REVOKE EXECUTE ON FUNCTION statusdb_status_incident_notify() FROM PUBLIC;

CREATE TRIGGER status_incident_notify_created
    AFTER INSERT ON status_incident
    FOR EACH ROW EXECUTE FUNCTION statusdb_status_incident_notify();
CREATE TRIGGER status_incident_notify_updated
    AFTER UPDATE OF status, updates ON status_incident
    FOR EACH ROW
    WHEN (jsonb_array_length(NEW.updates) > jsonb_array_length(OLD.updates)
          OR (NEW.status = 'RESOLVED') <> (OLD.status = 'RESOLVED'))
    EXECUTE FUNCTION statusdb_status_incident_notify();

-- --------------------------------------------------------------------------------------------
-- Maintenance events

-- Write one maintenance event of a window (as it is now), about one occurrence.
CREATE FUNCTION statusdb_maintenance_event(
    window_id text, event_kind text, start_at timestamptz, end_at timestamptz,
    previous jsonb
) RETURNS void
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
BEGIN
    INSERT INTO notification_event (status_page_id, kind, maintenance_window_id,
                                    occurrence_start, component_ids, payload)
    SELECT w.status_page_id, event_kind, w.id, start_at, l.ids,
           jsonb_build_object(
               'page', statusdb_event_page(w.status_page_id),
               'window', jsonb_build_object('id', w.id, 'title', w.title,
                                            'description', w.description,
                                            'time_zone', w.time_zone,
                                            'recurring', w.recurrence_rule IS NOT NULL),
               'occurrence', jsonb_build_object(
                   'start', statusdb_event_time(start_at),
                   'end', statusdb_event_time(end_at),
                   'start_local', to_char(start_at AT TIME ZONE w.time_zone,
                                          'YYYY-MM-DD HH24:MI'),
                   'end_local', to_char(end_at AT TIME ZONE w.time_zone, 'YYYY-MM-DD HH24:MI')),
               'previous', previous,
               'components', statusdb_event_components(l.ids))
    FROM maintenance_window w,
         LATERAL (SELECT coalesce(array_agg(mc.component_id ORDER BY mc.component_id), '{}')
                         AS ids
                  FROM maintenance_window_component mc
                  WHERE mc.maintenance_window_id = w.id) AS l
    WHERE w.id = window_id
    -- A reminder is written once per occurrence (statusdb_maintenance_remind).
    ON CONFLICT (maintenance_window_id, occurrence_start, kind)
        WHERE kind = 'maintenance_reminder' DO NOTHING;
END;
$$;
COMMENT ON FUNCTION statusdb_maintenance_event(text, text, timestamptz, timestamptz, jsonb) IS
    'Writes one maintenance_* notification event of a window, about one occurrence.';
REVOKE EXECUTE ON FUNCTION
    statusdb_maintenance_event(text, text, timestamptz, timestamptz, jsonb) FROM PUBLIC;

-- Scheduled: at commit (a deferred constraint trigger), so that the components linked by later
-- statements of the same transaction are named, and a window cancelled or deleted by then is
-- not announced.
CREATE FUNCTION statusdb_maintenance_window_notify_scheduled() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    current maintenance_window%ROWTYPE;
BEGIN
    SELECT * INTO current FROM maintenance_window w WHERE w.id = NEW.id;
    IF FOUND AND current.status IN ('SCHEDULED', 'IN_PROGRESS') THEN
        PERFORM statusdb_maintenance_event(current.id, 'maintenance_scheduled',
                                           current.start_time, current.end_time, NULL);
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION statusdb_maintenance_window_notify_scheduled() IS
    'Constraint trigger (at commit): writes the maintenance_scheduled event of a new window.';
REVOKE EXECUTE ON FUNCTION statusdb_maintenance_window_notify_scheduled() FROM PUBLIC;

CREATE CONSTRAINT TRIGGER maintenance_window_notify_scheduled
    AFTER INSERT ON maintenance_window
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION statusdb_maintenance_window_notify_scheduled();

-- Everything else a window's UPDATE can mean, told apart by the change itself (no client
-- setting says "this is the scheduler"):
--   * status -> CANCELLED: cancelled;
--   * IN_PROGRESS and then not the same occurrence in progress (COMPLETED, or a series moved
--     on): completed, about the occurrence that ended; CANCELLED is not a completion;
--   * IN_PROGRESS now, and not the same occurrence before: started, about the new occurrence;
--   * still SCHEDULED or IN_PROGRESS, and the rule, its start or the time zone changed, or a
--     one-off window's times, or a series' end_time alone (the length of every occurrence):
--     rescheduled. The scheduler moving a series to its next occurrence changes start_time and
--     end_time together and never the rule, so it is not a reschedule.
-- A window created in this same transaction gets only its scheduled event (at commit).
CREATE FUNCTION statusdb_maintenance_window_notify() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    IF OLD.created_at = now() THEN
        RETURN NULL;  -- created in this transaction: announced once, at commit
    END IF;
    IF NEW.status = 'CANCELLED' THEN
        IF OLD.status <> 'CANCELLED' THEN
            PERFORM statusdb_maintenance_event(NEW.id, 'maintenance_cancelled',
                                               OLD.start_time, OLD.end_time, NULL);
        END IF;
        RETURN NULL;
    END IF;
    IF OLD.status = 'IN_PROGRESS'
       AND (NEW.status <> 'IN_PROGRESS' OR NEW.start_time <> OLD.start_time) THEN
        PERFORM statusdb_maintenance_event(NEW.id, 'maintenance_completed',
                                           OLD.start_time, OLD.end_time, NULL);
    END IF;
    IF NEW.status = 'IN_PROGRESS'
       AND (OLD.status <> 'IN_PROGRESS' OR NEW.start_time <> OLD.start_time) THEN
        PERFORM statusdb_maintenance_event(NEW.id, 'maintenance_started',
                                           NEW.start_time, NEW.end_time, NULL);
    END IF;
    IF NEW.status IN ('SCHEDULED', 'IN_PROGRESS') AND OLD.status = NEW.status
       AND ((NEW.recurrence_rule, NEW.recurrence_start, NEW.time_zone)
                IS DISTINCT FROM (OLD.recurrence_rule, OLD.recurrence_start, OLD.time_zone)
            OR (NEW.recurrence_rule IS NULL
                AND (NEW.start_time, NEW.end_time) <> (OLD.start_time, OLD.end_time))
            OR (NEW.recurrence_rule IS NOT NULL AND NEW.start_time = OLD.start_time
                AND NEW.end_time <> OLD.end_time)) THEN
        PERFORM statusdb_maintenance_event(
            NEW.id, 'maintenance_rescheduled', NEW.start_time, NEW.end_time,
            jsonb_build_object('start', statusdb_event_time(OLD.start_time),
                               'end', statusdb_event_time(OLD.end_time),
                               'start_local', to_char(OLD.start_time AT TIME ZONE OLD.time_zone,
                                                      'YYYY-MM-DD HH24:MI'),
                               'end_local', to_char(OLD.end_time AT TIME ZONE OLD.time_zone,
                                                    'YYYY-MM-DD HH24:MI')));
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION statusdb_maintenance_window_notify() IS
    'Trigger: writes the maintenance_cancelled/started/completed/rescheduled event of a window '
    'update.';
REVOKE EXECUTE ON FUNCTION statusdb_maintenance_window_notify() FROM PUBLIC;

CREATE TRIGGER maintenance_window_notify
    AFTER UPDATE OF status, start_time, end_time, recurrence_rule, recurrence_start, time_zone
    ON maintenance_window
    FOR EACH ROW EXECUTE FUNCTION statusdb_maintenance_window_notify();

-- --------------------------------------------------------------------------------------------
-- Reminders: written by the scheduler's step (statusdb.maintenance.advance) for its `now`
--
-- Windows that are SCHEDULED and whose (current or next) occurrence starts within their
-- reminder_lead of `at` (and not before `at`: a missed start reminds nobody). Each window is
-- locked FOR NO KEY UPDATE SKIP LOCKED, as the scheduler's other statements do: a window
-- another scheduler or a cancel holds is skipped (its holder decides; a cancelled window then
-- is no longer SCHEDULED). The unique key (window, occurrence start, kind) makes a second
-- scheduler's reminder, or a second step's, a no-op: never two reminders for one occurrence.
-- A reminder written before the window was cancelled or moved is completed OBSOLETE by the
-- worker (sql/outbox.sql), not delivered.
-- Runs as the owner (statusdb_app cannot write events) and bounds its work: at most 1000
-- windows per call, start times at most 7 days after `at` (the largest lead). A caller picks
-- `at`: it can make a real window's reminder come early, once, which it can do anyway by
-- rescheduling the window.
CREATE FUNCTION statusdb_maintenance_remind(at timestamptz) RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    due record;
    written integer := 0;
BEGIN
    IF at IS NULL THEN
        RAISE EXCEPTION 'at must not be null'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR due IN
        SELECT w.id, w.start_time, w.end_time
        FROM maintenance_window w
        WHERE w.status = 'SCHEDULED'
          AND w.start_time > at
          AND w.start_time <= at + interval '7 days'
          AND w.start_time - w.reminder_lead <= at
          AND w.reminder_lead > interval '0'
          AND NOT EXISTS (SELECT 1 FROM notification_event e
                          WHERE e.maintenance_window_id = w.id
                            AND e.occurrence_start = w.start_time
                            AND e.kind = 'maintenance_reminder')
        ORDER BY w.start_time, w.id
        LIMIT 1000
        FOR NO KEY UPDATE SKIP LOCKED
    LOOP
        PERFORM statusdb_maintenance_event(due.id, 'maintenance_reminder', due.start_time,
                                           due.end_time, NULL);
        written := written + 1;
    END LOOP;
    RETURN written;
END;
$$;
COMMENT ON FUNCTION statusdb_maintenance_remind(timestamptz) IS
    'The scheduler''s reminders: a maintenance_reminder event per SCHEDULED occurrence starting '
    'within its window''s reminder_lead of at (once per occurrence; at most 1000 per call).';
REVOKE EXECUTE ON FUNCTION statusdb_maintenance_remind(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION statusdb_maintenance_remind(timestamptz) TO statusdb_app;
