-- Reverts 0019_templates_and_deliveries.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';
-- Rolling back drops what the forward migration created; that is its purpose.
-- squawk-ignore-file ban-drop-table, ban-drop-column, ban-drop-constraint, ban-drop-function, ban-drop-view

-- Refuses while it would lose data (the safety catch of 0006/0013/0015: statusdb.allow_data_loss
-- = on, `statusdb rollback --allow-data-loss`): the templates, the delivery log (with its
-- pending retries), why subscribers were deactivated (they would stay inactive with no
-- record of why), and failure counts (migrating again would reset them to 0: a subscriber one
-- failure from deactivation would get a fresh allowance). The guard counts every value the
-- rollback drops, not only rows of the dropped tables (issue 26 item 10).
DO $$
DECLARE
    templates bigint;
    attempts bigint;
    deactivated bigint;
    failing bigint;
BEGIN
    IF current_setting('statusdb.allow_data_loss', true) = 'on' THEN
        RETURN;
    END IF;
    SELECT count(*) INTO templates FROM status_incident_template;
    SELECT count(*) INTO attempts FROM delivery_attempt;
    SELECT count(*) INTO deactivated FROM status_subscriber s WHERE s.deactivated_at IS NOT NULL;
    SELECT count(*) INTO failing FROM status_subscriber s
    WHERE s.consecutive_permanent_failures <> 0;
    IF templates > 0 OR attempts > 0 OR deactivated > 0 OR failing > 0 THEN
        RAISE EXCEPTION 'rolling back 0019_templates_and_deliveries would lose data: '
                        'status_incident_template has % rows, delivery_attempt has '
                        '% rows (pending retries included), and % subscribers were deactivated '
                        'by delivery failures (the reason would be lost), % subscribers have a '
                        'count of consecutive failures (it would be reset). %',
                        templates, attempts, deactivated, failing,
            'Pass --allow-data-loss to statusdb rollback (plain yoyo: '
            'PGOPTIONS=''-c statusdb.allow_data_loss=on'') to roll back anyway.'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END;
$$;

DROP VIEW delivery_log;
DROP TRIGGER status_subscriber_activity_changed ON status_subscriber;
DROP TABLE delivery_attempt;
DROP FUNCTION statusdb_status_subscriber_activity_changed();
DROP FUNCTION statusdb_delivery_attempt_record();
ALTER TABLE status_subscriber
    DROP CONSTRAINT status_subscriber_deactivated_check,
    DROP CONSTRAINT status_subscriber_consecutive_permanent_failures_check,
    DROP COLUMN deactivation_reason,
    DROP COLUMN deactivated_at,
    DROP COLUMN consecutive_permanent_failures;

DROP TRIGGER status_page_component_forget_template_ids ON status_page_component;
DROP FUNCTION statusdb_status_page_component_forget_template_ids();
DROP TABLE status_incident_template;
DROP FUNCTION statusdb_status_incident_template_check_component_ids();
