-- statusdb 0024 rollback: drop the bounds and checks of 0024, restore 0021's time zone trigger
-- and the backend's DELETE on delivery_attempt. Nothing is lost: only constraints go.
-- squawk-ignore-file ban-drop-constraint, ban-drop-function

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

GRANT DELETE ON TABLE delivery_attempt TO statusdb_app;

CREATE OR REPLACE FUNCTION statusdb_status_page_check_time_zone() RETURNS trigger
LANGUAGE plpgsql
SET TimeZone = 'UTC'
AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.time_zone IS NOT DISTINCT FROM OLD.time_zone THEN
        RETURN NEW;
    END IF;
    IF NEW.time_zone IS NULL THEN
        RETURN NEW;  -- the NOT NULL constraint refuses it
    END IF;
    IF length(NEW.time_zone) > 64
       OR NOT (NEW.time_zone = 'UTC'
               OR NEW.time_zone ~ '^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)+$') THEN
        RAISE EXCEPTION 'time zone % is not an IANA zone name such as Europe/Berlin',
                quote_literal(left(NEW.time_zone, 80))
            USING ERRCODE = 'check_violation', CONSTRAINT = 'status_page_time_zone_check';
    END IF;
    BEGIN
        PERFORM set_config('TimeZone', NEW.time_zone, true);
    EXCEPTION WHEN invalid_parameter_value THEN
        RAISE EXCEPTION 'unknown time zone %', quote_literal(NEW.time_zone)
            USING ERRCODE = 'check_violation', CONSTRAINT = 'status_page_time_zone_check';
    END;
    NEW.time_zone := current_setting('TimeZone');
    RETURN NEW;
END;
$$;

ALTER TABLE status_page DROP CONSTRAINT status_page_time_zone_iana_check;

ALTER TABLE team DROP CONSTRAINT team_id_length_check;
ALTER TABLE incident DROP CONSTRAINT incident_id_length_check;
ALTER TABLE status_page
    DROP CONSTRAINT status_page_id_length_check,
    DROP CONSTRAINT status_page_created_by_id_length_check,
    DROP CONSTRAINT status_page_description_length_check;
ALTER TABLE status_page_component
    DROP CONSTRAINT status_page_component_id_length_check,
    DROP CONSTRAINT status_page_component_description_length_check;
ALTER TABLE component_group DROP CONSTRAINT component_group_id_length_check;
ALTER TABLE status_incident
    DROP CONSTRAINT status_incident_id_length_check,
    DROP CONSTRAINT status_incident_message_length_check;
ALTER TABLE status_incident_template DROP CONSTRAINT status_incident_template_id_length_check;
ALTER TABLE maintenance_window
    DROP CONSTRAINT maintenance_window_id_length_check,
    DROP CONSTRAINT maintenance_window_created_by_id_length_check,
    DROP CONSTRAINT maintenance_window_description_length_check,
    DROP CONSTRAINT maintenance_window_time_zone_length_check;
ALTER TABLE status_subscriber DROP CONSTRAINT status_subscriber_id_length_check;
ALTER TABLE delivery_attempt DROP CONSTRAINT delivery_attempt_id_length_check;
ALTER TABLE notification_event DROP CONSTRAINT notification_event_lease_owner_length_check;
ALTER TABLE status_change DROP CONSTRAINT status_change_lease_owner_length_check;

ALTER TABLE status_incident
    DROP CONSTRAINT status_incident_updates_readable_check,
    -- squawk-ignore constraint-missing-not-valid
    ADD CONSTRAINT status_incident_updates_check CHECK (statusdb_is_status_update_list(updates));
DROP FUNCTION statusdb_is_readable_timeline(jsonb);
DROP FUNCTION statusdb_is_readable_timestamp(text);

ALTER TABLE team
    DROP CONSTRAINT team_created_at_range_check,
    DROP CONSTRAINT team_updated_at_range_check;
ALTER TABLE incident
    DROP CONSTRAINT incident_created_at_range_check,
    DROP CONSTRAINT incident_updated_at_range_check,
    DROP CONSTRAINT incident_resolved_at_range_check;
ALTER TABLE status_page
    DROP CONSTRAINT status_page_created_at_range_check,
    DROP CONSTRAINT status_page_updated_at_range_check;
ALTER TABLE status_page_component
    DROP CONSTRAINT status_page_component_created_at_range_check,
    DROP CONSTRAINT status_page_component_updated_at_range_check,
    DROP CONSTRAINT status_page_component_status_updated_at_range_check;
ALTER TABLE component_group
    DROP CONSTRAINT component_group_created_at_range_check,
    DROP CONSTRAINT component_group_updated_at_range_check,
    DROP CONSTRAINT component_group_status_updated_at_range_check;
ALTER TABLE status_incident
    DROP CONSTRAINT status_incident_created_at_range_check,
    DROP CONSTRAINT status_incident_updated_at_range_check,
    DROP CONSTRAINT status_incident_resolved_at_range_check;
ALTER TABLE status_incident_postmortem
    DROP CONSTRAINT status_incident_postmortem_written_at_range_check;
ALTER TABLE status_incident_template
    DROP CONSTRAINT status_incident_template_created_at_range_check,
    DROP CONSTRAINT status_incident_template_updated_at_range_check;
ALTER TABLE maintenance_window
    DROP CONSTRAINT maintenance_window_start_time_range_check,
    DROP CONSTRAINT maintenance_window_end_time_range_check,
    DROP CONSTRAINT maintenance_window_recurrence_start_range_check,
    DROP CONSTRAINT maintenance_window_created_at_range_check,
    DROP CONSTRAINT maintenance_window_updated_at_range_check;
ALTER TABLE maintenance_window_scheduler_error
    DROP CONSTRAINT maintenance_window_scheduler_error_first_failed_at_range_check,
    DROP CONSTRAINT maintenance_window_scheduler_error_last_failed_at_range_check;
ALTER TABLE status_change
    DROP CONSTRAINT status_change_changed_at_range_check,
    DROP CONSTRAINT status_change_notified_at_range_check,
    DROP CONSTRAINT status_change_lease_expires_at_range_check;
ALTER TABLE component_group_status_change
    DROP CONSTRAINT component_group_status_change_changed_at_range_check;
ALTER TABLE notification_event
    DROP CONSTRAINT notification_event_created_at_range_check,
    DROP CONSTRAINT notification_event_occurrence_start_range_check,
    DROP CONSTRAINT notification_event_notified_at_range_check,
    DROP CONSTRAINT notification_event_lease_expires_at_range_check;
ALTER TABLE status_subscriber
    DROP CONSTRAINT status_subscriber_created_at_range_check,
    DROP CONSTRAINT status_subscriber_updated_at_range_check,
    DROP CONSTRAINT status_subscriber_verify_token_expires_at_range_check,
    DROP CONSTRAINT status_subscriber_deactivated_at_range_check;
ALTER TABLE delivery_attempt
    DROP CONSTRAINT delivery_attempt_attempted_at_range_check,
    DROP CONSTRAINT delivery_attempt_next_attempt_at_range_check,
    DROP CONSTRAINT delivery_attempt_lease_expires_at_range_check;
ALTER TABLE status_page_snapshot
    DROP CONSTRAINT status_page_snapshot_updated_at_range_check;
