-- statusdb 0019: incident templates per page, and delivery bookkeeping (attempts, retries with
-- back-off, subscribers deactivated after repeated permanent failures).
-- depends: 0018_notification_events
--
-- 1. status_incident_template: what a page's staff reuse to open a status incident in one
--    click (name unique per page, title, first update message, severity, affected components).
--    Plain rows a DBA can read; the affected components follow status_incident's rules (same
--    page, checked on INSERT and UPDATE; a deleted component leaves every template).
-- 2. delivery_attempt: one row per attempt to deliver a notification to a
--    subscriber. The trigger (below) numbers the attempts of each (notification_key,
--    subscriber_id), schedules the next retry of a temporary failure with exponential back-off,
--    and counts permanent failures on the subscriber, deactivating it after 3 in a row. All of
--    that holds for every writer (psql included), not only for statusdb.deliveries.
--
-- Decisions (statusdb/deliveries.py mirrors the numbers; a test pins them together):
--   * outcomes: DELIVERED; FAILED_TEMPORARY (timeouts, connection errors, HTTP 5xx and 429,
--     SMTP 4xx: worth retrying); FAILED_PERMANENT (hard bounce / SMTP 5xx on the mailbox, HTTP
--     404 or 410, an invalid or refused destination: retrying cannot help).
--   * retries: a FAILED_TEMPORARY attempt n (n < 8) is due again at attempted_at +
--     min(1 minute * 2^(n-1), 1 hour): after 1, 2, 4, 8, 16, 32 and 60 minutes, about two
--     hours in all, 8 attempts at most. No jitter: the delays are deterministic (tests, support
--     staff can say when), and failures of one fan-out spread over time anyway; workers take
--     due retries with FOR UPDATE SKIP LOCKED under a lease, so they never queue on each other.
--   * deactivation: 3 consecutive permanent failures (in the order attempts are recorded, over
--     all notifications of the subscriber). A temporary failure that exhausts the 8 attempts
--     counts as one permanent failure (a destination dead for two hours is as good as gone);
--     other temporary failures neither count nor reset; a DELIVERED attempt resets the count.
--     The subscriber gets is_active = false, deactivated_at and deactivation_reason; making it
--     active again (re-subscribing, or UPDATE ... SET is_active = true) clears all three.
--   * the key is plain text, not a foreign key: today's component notifications use a
--     status_change id (outbox.ClaimedChange.key), other events keys of their own.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

-- --------------------------------------------------------------------------------------------
-- 1. Incident templates

CREATE TABLE status_incident_template (
    id text NOT NULL DEFAULT statusdb_new_id(),
    status_page_id text NOT NULL,
    name text NOT NULL,
    title text NOT NULL,
    message text NOT NULL,
    severity text NOT NULL,
    -- Components of the same page; kept free of dangling ids by triggers (below), like
    -- status_incident.affected_component_ids.
    affected_component_ids text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT status_incident_template_pkey PRIMARY KEY (id),
    -- Also serves the foreign key, "a page's templates by name", and the component cleanup.
    CONSTRAINT status_incident_template_status_page_id_name_key UNIQUE (status_page_id, name),
    CONSTRAINT status_incident_template_status_page_id_fkey FOREIGN KEY (status_page_id)
        REFERENCES status_page (id) ON DELETE CASCADE,
    CONSTRAINT status_incident_template_name_check
        CHECK (btrim(name) <> '' AND length(name) <= 200),
    -- As status_incident_title_check, so that a template always makes a valid incident.
    CONSTRAINT status_incident_template_title_check
        CHECK (btrim(title) <> '' AND length(title) <= 500),
    -- As statusdb.status_incidents.MESSAGE_MAX (status_incident leaves it to the repository).
    CONSTRAINT status_incident_template_message_check
        CHECK (btrim(message) <> '' AND length(message) <= 10000),
    CONSTRAINT status_incident_template_severity_check
        CHECK (severity IN ('MINOR', 'MAJOR', 'CRITICAL')),
    -- Bounded: the same-page check is linear in it.
    CONSTRAINT status_incident_template_affected_component_ids_check
        CHECK (array_position(affected_component_ids, NULL) IS NULL
               AND cardinality(affected_component_ids) <= 1000)
);

CREATE TRIGGER status_incident_template_touch_updated_at
    BEFORE UPDATE ON status_incident_template
    FOR EACH ROW EXECUTE FUNCTION statusdb_touch_updated_at();

CREATE FUNCTION statusdb_status_incident_template_check_component_ids() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM public.statusdb_check_component_ids(
        NEW.status_page_id, NEW.affected_component_ids,
        'status_incident_template_affected_component_ids_fkey');
    RETURN NEW;
END;
$$;

CREATE TRIGGER status_incident_template_check_component_ids
    BEFORE INSERT OR UPDATE OF status_page_id, affected_component_ids ON status_incident_template
    FOR EACH ROW EXECUTE FUNCTION statusdb_status_incident_template_check_component_ids();

-- A deleted component leaves the templates of its page (a trigger of its own, so that 0012's
-- statusdb_status_page_component_forget_ids stays as it is). Tables schema-qualified: the
-- function runs as the deleting role, with its search_path (0012).
CREATE FUNCTION statusdb_status_page_component_forget_template_ids() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE public.status_incident_template t
    SET affected_component_ids = array_remove(t.affected_component_ids, OLD.id)
    WHERE t.status_page_id = OLD.status_page_id AND t.affected_component_ids @> ARRAY[OLD.id];
    RETURN OLD;
END;
$$;

CREATE TRIGGER status_page_component_forget_template_ids
    AFTER DELETE ON status_page_component
    FOR EACH ROW EXECUTE FUNCTION statusdb_status_page_component_forget_template_ids();

GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE status_incident_template TO statusdb_app;

ALTER TABLE status_incident_template ENABLE ROW LEVEL SECURITY;
CREATE POLICY status_incident_template_team_isolation ON status_incident_template
    USING ((SELECT statusdb_current_team()) IS NULL
           OR status_page_id IN (SELECT p.id FROM status_page p
                                 WHERE p.team_id = (SELECT statusdb_current_team())));

-- --------------------------------------------------------------------------------------------
-- 2. Delivery bookkeeping

-- The subscriber's side: the running count and why it was switched off. Constant defaults: no
-- table rewrite. An inactive subscriber with no deactivated_at unsubscribed (or lost its
-- components); one with deactivated_at was switched off by its failures.
-- A count that deactivates at 3: 32 bits are plenty.
ALTER TABLE status_subscriber
    -- squawk-ignore prefer-bigint-over-int
    ADD COLUMN consecutive_permanent_failures integer NOT NULL DEFAULT 0,
    ADD COLUMN deactivated_at timestamptz,
    ADD COLUMN deactivation_reason text;

-- The columns are new (the defaults hold for every row), so the checks cost one scan under the
-- lock the ADD COLUMN already holds; NOT VALID + VALIDATE would gain nothing.
ALTER TABLE status_subscriber
    -- squawk-ignore constraint-missing-not-valid
    ADD CONSTRAINT status_subscriber_consecutive_permanent_failures_check
        CHECK (consecutive_permanent_failures >= 0),
    -- squawk-ignore constraint-missing-not-valid
    ADD CONSTRAINT status_subscriber_deactivated_check
        CHECK ((deactivated_at IS NULL) = (deactivation_reason IS NULL)
               AND (deactivated_at IS NULL OR NOT is_active)
               AND (deactivation_reason IS NULL OR length(deactivation_reason) <= 1000));

CREATE TABLE delivery_attempt (
    id text NOT NULL DEFAULT statusdb_new_id(),
    -- The notification's idempotency key: a status_change id, or another event's own key.
    notification_key text NOT NULL,
    subscriber_id text NOT NULL,
    -- 1, 2, ... per (notification_key, subscriber_id); set by the trigger, whatever is given.
    -- squawk-ignore prefer-bigint-over-int
    attempt integer NOT NULL,
    outcome text NOT NULL,
    error text,
    attempted_at timestamptz NOT NULL DEFAULT now(),
    -- Set by the trigger on a FAILED_TEMPORARY attempt that will be retried; cleared when the
    -- next attempt of the pair is recorded, or the subscriber becomes inactive. Non-null rows
    -- are the retry queue.
    next_attempt_at timestamptz,
    -- The retry worker holding this retry (FOR UPDATE SKIP LOCKED, then a lease).
    lease_owner text,
    lease_expires_at timestamptz,
    -- What the retry worker needs to deliver again (the notification, as JSON); only kept on
    -- attempts that will be retried.
    payload jsonb,
    CONSTRAINT delivery_attempt_pkey PRIMARY KEY (id),
    -- Serves "the attempts of one notification" and the trigger's numbering.
    CONSTRAINT delivery_attempt_notification_key_subscriber_id_attempt_key
        UNIQUE (notification_key, subscriber_id, attempt),
    CONSTRAINT delivery_attempt_subscriber_id_fkey FOREIGN KEY (subscriber_id)
        REFERENCES status_subscriber (id) ON DELETE CASCADE,
    CONSTRAINT delivery_attempt_notification_key_check
        CHECK (btrim(notification_key) <> '' AND length(notification_key) <= 200),
    CONSTRAINT delivery_attempt_attempt_check CHECK (attempt BETWEEN 1 AND 1000),
    CONSTRAINT delivery_attempt_outcome_check
        CHECK (outcome IN ('DELIVERED', 'FAILED_TEMPORARY', 'FAILED_PERMANENT')),
    CONSTRAINT delivery_attempt_error_check
        CHECK (error IS NULL OR (outcome <> 'DELIVERED' AND length(error) <= 1000)),
    CONSTRAINT delivery_attempt_next_attempt_at_check
        CHECK (next_attempt_at IS NULL OR outcome = 'FAILED_TEMPORARY'),
    CONSTRAINT delivery_attempt_lease_check
        CHECK ((lease_owner IS NULL) = (lease_expires_at IS NULL)
               AND (lease_owner IS NULL OR (next_attempt_at IS NOT NULL
                                            AND length(lease_owner) <= 200))),
    CONSTRAINT delivery_attempt_payload_check
        CHECK (payload IS NULL OR octet_length(payload::text) <= 16384)
);
-- "The attempts of a subscriber, newest first" (support staff), the cascade from a deleted
-- subscriber, and clearing a deactivated subscriber's retries.
CREATE INDEX delivery_attempt_subscriber_id_attempted_at_idx
    ON delivery_attempt (subscriber_id, attempted_at DESC);
-- The retry queue: pending retries only, so the claim never reads the delivered history.
CREATE INDEX delivery_attempt_next_attempt_at_idx
    ON delivery_attempt (next_attempt_at, id) WHERE next_attempt_at IS NOT NULL;

-- Every attempt, from any writer: number it, schedule its retry, count it on the subscriber.
-- SECURITY INVOKER (the writer needs no more than its own rights: statusdb_app may update
-- status_subscriber and this table's retry columns), so row-level security applies: a
-- team-scoped session cannot reach another team's subscriber. Tables are schema-qualified
-- (0012). The subscriber's row is locked first (FOR NO KEY UPDATE: it does not conflict with
-- the foreign key's KEY SHARE), which serialises the attempts of one subscriber: the numbering
-- and the running count cannot race. Batch writers insert in subscriber id order (sql/
-- deliveries.sql), so two batches cannot deadlock on these locks.
CREATE FUNCTION statusdb_delivery_attempt_record() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    was_active boolean;
    failures integer;
    previous integer;
BEGIN
    SELECT s.is_active, s.consecutive_permanent_failures INTO was_active, failures
    FROM public.status_subscriber s
    WHERE s.id = NEW.subscriber_id
    FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no subscriber with id %', NEW.subscriber_id
            USING ERRCODE = 'foreign_key_violation',
                  CONSTRAINT = 'delivery_attempt_subscriber_id_fkey';
    END IF;

    SELECT max(a.attempt) INTO previous
    FROM public.delivery_attempt a
    WHERE a.notification_key = NEW.notification_key AND a.subscriber_id = NEW.subscriber_id;
    NEW.attempt := coalesce(previous, 0) + 1;
    IF previous IS NOT NULL THEN
        -- This attempt is the retry of the earlier ones (or a redelivery): none is due any more.
        UPDATE public.delivery_attempt a
        SET next_attempt_at = NULL, lease_owner = NULL, lease_expires_at = NULL
        WHERE a.notification_key = NEW.notification_key
          AND a.subscriber_id = NEW.subscriber_id
          AND a.next_attempt_at IS NOT NULL;
    END IF;

    NEW.lease_owner := NULL;
    NEW.lease_expires_at := NULL;
    IF NEW.outcome = 'FAILED_TEMPORARY' AND NEW.attempt < 8 AND was_active THEN
        NEW.next_attempt_at := NEW.attempted_at
            + least(interval '1 minute' * power(2, NEW.attempt - 1), interval '1 hour');
    ELSE
        NEW.next_attempt_at := NULL;
        NEW.payload := NULL;
    END IF;

    IF NEW.outcome = 'DELIVERED' THEN
        IF failures > 0 THEN
            UPDATE public.status_subscriber s
            SET consecutive_permanent_failures = 0
            WHERE s.id = NEW.subscriber_id;
        END IF;
    ELSIF NEW.outcome = 'FAILED_PERMANENT' OR NEW.attempt >= 8 THEN
        -- A permanent failure, or a temporary one that exhausted the attempts.
        UPDATE public.status_subscriber s
        SET consecutive_permanent_failures = failures + 1,
            is_active = s.is_active AND failures + 1 < 3,
            deactivated_at = CASE WHEN s.is_active AND failures + 1 >= 3
                                  THEN NEW.attempted_at ELSE s.deactivated_at END,
            deactivation_reason = CASE
                WHEN s.is_active AND failures + 1 >= 3
                THEN left(format('%s consecutive permanent delivery failures; last (%s, %s): %s',
                                 failures + 1, NEW.notification_key, NEW.outcome,
                                 coalesce(NEW.error, 'no error text')), 1000)
                ELSE s.deactivation_reason END
        WHERE s.id = NEW.subscriber_id;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER delivery_attempt_record
    BEFORE INSERT ON delivery_attempt
    FOR EACH ROW EXECUTE FUNCTION statusdb_delivery_attempt_record();

-- Activity changes of a subscriber, from any writer: made active again, it starts over (count,
-- deactivation cleared: re-subscribing renews a bounced address); made inactive (unsubscribed,
-- deactivated, its components deleted), its pending retries are dropped.
CREATE FUNCTION statusdb_status_subscriber_activity_changed() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF NEW.is_active THEN
        NEW.consecutive_permanent_failures := 0;
        NEW.deactivated_at := NULL;
        NEW.deactivation_reason := NULL;
    ELSE
        UPDATE public.delivery_attempt a
        SET next_attempt_at = NULL, lease_owner = NULL, lease_expires_at = NULL
        WHERE a.subscriber_id = NEW.id AND a.next_attempt_at IS NOT NULL;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER status_subscriber_activity_changed
    BEFORE UPDATE OF is_active ON status_subscriber
    FOR EACH ROW
    WHEN (NEW.is_active IS DISTINCT FROM OLD.is_active)
    EXECUTE FUNCTION statusdb_status_subscriber_activity_changed();

-- The log is append-only for the backend: it records attempts and moves only the retry queue
-- (claims, releases, giving up a retry). Rewriting an outcome or an error (hiding failures) is
-- refused by privilege. DELETE: pruning old attempts (retention). The trigger sets attempt,
-- next_attempt_at and the lease itself, whatever the INSERT says.
GRANT SELECT, DELETE ON TABLE delivery_attempt TO statusdb_app;
GRANT INSERT (id, notification_key, subscriber_id, attempt, outcome, error, attempted_at,
              payload),
      UPDATE (next_attempt_at, lease_owner, lease_expires_at)
    ON TABLE delivery_attempt TO statusdb_app;

-- Rows follow their subscriber's team. The subscriber's own policy filters the subquery, so a
-- scoped session sees, records and claims only its team's attempts.
ALTER TABLE delivery_attempt ENABLE ROW LEVEL SECURITY;
CREATE POLICY delivery_attempt_team_isolation ON delivery_attempt
    USING ((SELECT statusdb_current_team()) IS NULL
           OR subscriber_id IN (SELECT s.id FROM status_subscriber s));

-- For support staff: every attempt with its subscriber's page, channel, destination and state,
-- so that "why did this address stop getting mail" is one query. security_invoker: it reads
-- the tables with the caller's privileges and policies (a team-scoped session sees its team's
-- rows only; statusdb_reader, without privileges on the tables, sees nothing).
CREATE VIEW delivery_log WITH (security_invoker = true) AS
SELECT a.id,
       a.notification_key,
       a.subscriber_id,
       s.status_page_id,
       s.channel,
       s.destination,
       a.attempt,
       a.outcome,
       a.error,
       a.attempted_at,
       a.next_attempt_at,
       a.lease_owner,
       s.is_active AS subscriber_is_active,
       s.consecutive_permanent_failures,
       s.deactivated_at,
       s.deactivation_reason
FROM delivery_attempt a
JOIN status_subscriber s ON s.id = a.subscriber_id;

GRANT SELECT ON delivery_log TO statusdb_app;

-- Trigger functions need no EXECUTE privilege to fire; nobody calls them directly.
REVOKE EXECUTE ON FUNCTION
    statusdb_status_incident_template_check_component_ids(),
    statusdb_status_page_component_forget_template_ids(),
    statusdb_delivery_attempt_record(),
    statusdb_status_subscriber_activity_changed()
FROM PUBLIC;

COMMENT ON TABLE status_incident_template IS
    'A page''s reusable incident: status_incidents.create_from_template opens a status incident from it.';
COMMENT ON COLUMN status_incident_template.id IS
    'Primary key: a UUIDv7 as text (statusdb_new_id()).';
COMMENT ON COLUMN status_incident_template.status_page_id IS
    'The page it belongs to (deleted with it).';
COMMENT ON COLUMN status_incident_template.name IS
    'What staff pick it by, unique on its page, non-blank, at most 200 characters.';
COMMENT ON COLUMN status_incident_template.title IS
    'The incident''s title, non-blank, at most 500 characters.';
COMMENT ON COLUMN status_incident_template.message IS
    'The first update''s message, non-blank, at most 10,000 characters.';
COMMENT ON COLUMN status_incident_template.severity IS
    'MINOR, MAJOR or CRITICAL.';
COMMENT ON COLUMN status_incident_template.affected_component_ids IS
    'Components of the same page (at most 1,000); checked on write, removed when a component is deleted.';
COMMENT ON COLUMN status_incident_template.created_at IS
    'When the row was inserted.';
COMMENT ON COLUMN status_incident_template.updated_at IS
    'When the row last changed (kept by a trigger).';
COMMENT ON COLUMN status_subscriber.consecutive_permanent_failures IS
    'Permanent delivery failures in a row (an exhausted retry counts; a delivery resets it); 3 deactivate. Kept by delivery_attempt''s trigger.';
COMMENT ON COLUMN status_subscriber.deactivated_at IS
    'When repeated permanent delivery failures switched it off; null otherwise. Cleared when it becomes active again.';
COMMENT ON COLUMN status_subscriber.deactivation_reason IS
    'Why it was switched off (the count and the last error), at most 1,000 characters; set exactly with deactivated_at.';
COMMENT ON TABLE delivery_attempt IS
    'One attempt to deliver a notification to a subscriber; temporary failures are retried with back-off (the retry queue is next_attempt_at).';
COMMENT ON COLUMN delivery_attempt.id IS
    'Primary key: a UUIDv7 as text (statusdb_new_id()).';
COMMENT ON COLUMN delivery_attempt.notification_key IS
    'The notification''s idempotency key (a status_change id, or an event''s own key), at most 200 characters.';
COMMENT ON COLUMN delivery_attempt.subscriber_id IS
    'The subscriber it was for (deleted with it).';
COMMENT ON COLUMN delivery_attempt.attempt IS
    '1, 2, ... per (notification_key, subscriber_id); numbered by the trigger.';
COMMENT ON COLUMN delivery_attempt.outcome IS
    'DELIVERED, FAILED_TEMPORARY (retried: timeouts, 5xx, 429) or FAILED_PERMANENT (hard bounce, 404/410, invalid destination).';
COMMENT ON COLUMN delivery_attempt.error IS
    'What went wrong, at most 1,000 characters; null when DELIVERED.';
COMMENT ON COLUMN delivery_attempt.attempted_at IS
    'When the attempt was made; retries are scheduled from it.';
COMMENT ON COLUMN delivery_attempt.next_attempt_at IS
    'When this temporary failure is due again (1, 2, 4, ... minutes, at most 1 hour; 8 attempts); null: no retry pending.';
COMMENT ON COLUMN delivery_attempt.lease_owner IS
    'The retry worker that claimed this retry; null: unclaimed.';
COMMENT ON COLUMN delivery_attempt.lease_expires_at IS
    'When the claim lapses and another worker may take the retry; set exactly with lease_owner.';
COMMENT ON COLUMN delivery_attempt.payload IS
    'The notification as JSON (at most 16 KiB), kept only while a retry is pending.';
COMMENT ON VIEW delivery_log IS
    'For support staff: every delivery attempt with its subscriber''s page, channel, destination and activity.';
COMMENT ON COLUMN delivery_log.id IS
    'The attempt (delivery_attempt.id).';
COMMENT ON COLUMN delivery_log.notification_key IS
    'The notification''s idempotency key.';
COMMENT ON COLUMN delivery_log.subscriber_id IS
    'The subscriber it was for.';
COMMENT ON COLUMN delivery_log.status_page_id IS
    'The subscriber''s page.';
COMMENT ON COLUMN delivery_log.channel IS
    'The subscriber''s channel: EMAIL, SLACK or WEBHOOK.';
COMMENT ON COLUMN delivery_log.destination IS
    'Where it was sent (address or URL).';
COMMENT ON COLUMN delivery_log.attempt IS
    '1, 2, ... for this notification and subscriber.';
COMMENT ON COLUMN delivery_log.outcome IS
    'DELIVERED, FAILED_TEMPORARY or FAILED_PERMANENT.';
COMMENT ON COLUMN delivery_log.error IS
    'What went wrong (null when delivered).';
COMMENT ON COLUMN delivery_log.attempted_at IS
    'When the attempt was made.';
COMMENT ON COLUMN delivery_log.next_attempt_at IS
    'When it is retried; null: no retry pending.';
COMMENT ON COLUMN delivery_log.lease_owner IS
    'The retry worker holding the retry, if any.';
COMMENT ON COLUMN delivery_log.subscriber_is_active IS
    'Whether the subscriber still gets notifications.';
COMMENT ON COLUMN delivery_log.consecutive_permanent_failures IS
    'The subscriber''s permanent failures in a row (3 deactivate).';
COMMENT ON COLUMN delivery_log.deactivated_at IS
    'When delivery failures switched the subscriber off; null otherwise.';
COMMENT ON COLUMN delivery_log.deactivation_reason IS
    'Why they did.';
COMMENT ON FUNCTION statusdb_status_incident_template_check_component_ids() IS
    'Trigger: a template''s affected components are components of its page.';
COMMENT ON FUNCTION statusdb_status_page_component_forget_template_ids() IS
    'Trigger: a deleted component leaves the templates of its page.';
COMMENT ON FUNCTION statusdb_delivery_attempt_record() IS
    'Trigger: numbers an attempt, schedules its retry, counts permanent failures on the subscriber (3 in a row deactivate it).';
COMMENT ON FUNCTION statusdb_status_subscriber_activity_changed() IS
    'Trigger: an activated subscriber starts over (count and deactivation cleared); a deactivated one loses its pending retries.';
