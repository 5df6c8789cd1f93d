-- statusdb 0018 rollback: drop the notification events, their triggers and functions, the
-- reminder lead; notify_on back to the four component kinds.

-- squawk-ignore-file ban-drop-table, ban-drop-column, ban-drop-constraint, ban-drop-function, require-concurrent-index-deletion

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

-- Refuses while it would lose something (statusdb.allow_data_loss = on, `statusdb rollback
-- --allow-data-loss`, goes ahead): events (pending ones would never be delivered; delivered
-- ones are the record of what subscribers were told), reminder lead times other than the
-- default, and subscribers whose choice of kinds would not survive a rollback and a migrate
-- again (only the new kinds, or some incident kinds but not all four: the forward migration
-- would give them all of them). Every value the rollback changes counts, not only rows it drops.
DO $$
DECLARE
    events bigint;
    pending bigint;
    leads bigint;
    only_new bigint;
BEGIN
    IF current_setting('statusdb.allow_data_loss', true) = 'on' THEN
        RETURN;
    END IF;
    SELECT count(*), count(*) FILTER (WHERE e.notified_at IS NULL)
    INTO events, pending
    FROM notification_event e;
    SELECT count(*) INTO leads FROM maintenance_window w
    WHERE w.reminder_lead <> interval '1 hour';
    -- Every subscriber whose choice does not survive the round trip: mapped back to the four
    -- component kinds (as below), then forward again (as 0018 maps them), it must come back
    -- as it is now. {outage, incident_created} would come back with all four incident kinds.
    SELECT count(*) INTO only_new
    FROM status_subscriber s,
         LATERAL (SELECT ARRAY(
             SELECT k.kind
             FROM unnest(ARRAY['degraded', 'outage', 'maintenance', 'resolved']) AS k (kind)
             WHERE k.kind = ANY (s.notify_on)
                OR (NOT s.notify_on && ARRAY['degraded', 'outage', 'maintenance', 'resolved']
                    AND ((k.kind <> 'maintenance'
                          AND s.notify_on && ARRAY['incident_created', 'incident_updated',
                                                   'incident_resolved', 'incident_reopened'])
                         OR (k.kind = 'maintenance'
                             AND s.notify_on && ARRAY['maintenance_scheduled',
                                                      'maintenance_rescheduled',
                                                      'maintenance_cancelled',
                                                      'maintenance_reminder',
                                                      'maintenance_started',
                                                      'maintenance_completed']))))
         ) AS back (kinds),
         LATERAL (SELECT ARRAY(
             SELECT k.kind
             FROM unnest(ARRAY['degraded', 'outage', 'maintenance', 'resolved',
                               'incident_created', 'incident_updated', 'incident_resolved',
                               'incident_reopened', 'maintenance_scheduled',
                               'maintenance_rescheduled', 'maintenance_cancelled',
                               'maintenance_reminder', 'maintenance_started',
                               'maintenance_completed']) AS k (kind)
             WHERE k.kind = ANY (back.kinds)
                OR (k.kind LIKE 'incident\_%' AND back.kinds && ARRAY['degraded', 'outage', 'resolved'])
                OR (k.kind LIKE 'maintenance\_%' AND back.kinds @> ARRAY['maintenance']))
         ) AS again (kinds)
    WHERE NOT (again.kinds @> s.notify_on AND s.notify_on @> again.kinds);
    IF events > 0 OR leads > 0 OR only_new > 0 THEN
        RAISE EXCEPTION 'rolling back 0018_notification_events would lose data: '
                        'notification_event has % rows (% pending, never to be delivered), % '
                        'maintenance windows have their own reminder_lead, and % subscribers '
                        'chose event kinds that a rollback and migrate again would change. %',
                        events, pending, leads, only_new,
            'Pass --allow-data-loss to statusdb rollback (plain yoyo: '
            'PGOPTIONS=''-c statusdb.allow_data_loss=on'') to roll back anyway.'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END;
$$;

DROP FUNCTION statusdb_maintenance_remind(timestamptz);
DROP TRIGGER maintenance_window_notify ON maintenance_window;
DROP FUNCTION statusdb_maintenance_window_notify();
DROP TRIGGER maintenance_window_notify_scheduled ON maintenance_window;
DROP FUNCTION statusdb_maintenance_window_notify_scheduled();
DROP FUNCTION statusdb_maintenance_event(text, text, timestamptz, timestamptz, jsonb);
DROP TRIGGER status_incident_notify_updated ON status_incident;
DROP TRIGGER status_incident_notify_created ON status_incident;
DROP FUNCTION statusdb_status_incident_notify();
DROP FUNCTION statusdb_event_components(text[]);
DROP FUNCTION statusdb_event_page(text);
DROP FUNCTION statusdb_event_time(timestamptz);
DROP FUNCTION statusdb_notification_recipients(text, text[], text[], text[]);
DROP INDEX status_subscriber_fan_out_page_idx;
DROP TABLE notification_event;

ALTER TABLE maintenance_window
    DROP CONSTRAINT maintenance_window_reminder_lead_check,
    DROP COLUMN reminder_lead;

ALTER TABLE status_subscriber
    DROP CONSTRAINT status_subscriber_notify_on_check;
UPDATE status_subscriber s
SET notify_on = ARRAY(
    SELECT k.kind
    FROM unnest(ARRAY['degraded', 'outage', 'maintenance', 'resolved']) WITH ORDINALITY
         AS k (kind, position)
    WHERE k.kind = ANY (s.notify_on)
       OR (NOT s.notify_on && ARRAY['degraded', 'outage', 'maintenance', 'resolved']
           AND ((k.kind <> 'maintenance'
                 AND s.notify_on && ARRAY['incident_created', 'incident_updated',
                                          'incident_resolved', 'incident_reopened'])
                OR (k.kind = 'maintenance'
                    AND s.notify_on && ARRAY['maintenance_scheduled', 'maintenance_rescheduled',
                                             'maintenance_cancelled', 'maintenance_reminder',
                                             'maintenance_started', 'maintenance_completed'])))
    ORDER BY k.position)
WHERE NOT s.notify_on <@ ARRAY['degraded', 'outage', 'maintenance', 'resolved'];
ALTER TABLE status_subscriber
    -- squawk-ignore constraint-missing-not-valid
    ADD CONSTRAINT status_subscriber_notify_on_check
        CHECK (cardinality(notify_on) > 0
               AND array_position(notify_on, NULL) IS NULL
               AND notify_on <@ ARRAY['degraded', 'outage', 'maintenance', 'resolved']::text[]);
ALTER TABLE status_subscriber
    ALTER COLUMN notify_on SET DEFAULT '{degraded,outage,maintenance,resolved}';
