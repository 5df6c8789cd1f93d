-- Reverts 0003_status_derivation.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';
-- Rolling back drops what the forward migration created; that is its purpose, so the
-- drop warnings (meant for forward migrations) are switched off here.
-- squawk-ignore-file ban-drop-table, ban-drop-function, ban-drop-column, ban-drop-view

-- Refuses while there is something to lose (see 0006's rollback for the rule): the status-change
-- log (the table is dropped: uptime history and the outbox go with it) and the manual statuses
-- (the column is dropped; the next migrate sets every one to OPERATIONAL).
DO $$
DECLARE
    changes bigint;
    manual bigint;
BEGIN
    IF current_setting('statusdb.allow_data_loss', true) = 'on' THEN
        RETURN;
    END IF;
    SELECT count(*) INTO changes FROM status_change;
    SELECT count(*) INTO manual FROM status_page_component WHERE manual_status <> 'OPERATIONAL';
    IF changes > 0 OR manual > 0 THEN
        RAISE EXCEPTION 'rolling back 0003_status_derivation would lose data: it drops the '
                        'status-change log, status_change (% rows), and the column '
                        'status_page_component.manual_status (% components have a manual status '
                        'other than OPERATIONAL, which the next migrate resets). %',
                        changes, manual,
        'Pass --allow-data-loss to statusdb rollback (plain yoyo: '
        'PGOPTIONS=''-c statusdb.allow_data_loss=on'') to roll back anyway.'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END;
$$;

DROP FUNCTION statusdb_recompute_statuses(boolean);
DROP TRIGGER maintenance_window_component_refresh_status ON maintenance_window_component;
DROP FUNCTION statusdb_maintenance_window_component_refresh_status();
DROP TRIGGER maintenance_window_refresh_status ON maintenance_window;
DROP FUNCTION statusdb_maintenance_window_refresh_status();
DROP TRIGGER status_page_component_log_initial_status ON status_page_component;
DROP FUNCTION statusdb_status_page_component_log_initial_status();
DROP TRIGGER status_page_component_derive ON status_page_component;
DROP FUNCTION statusdb_status_page_component_derive();
DROP TRIGGER incident_refresh_status ON incident;
DROP FUNCTION statusdb_incident_refresh_status();
DROP FUNCTION statusdb_refresh_team(text, text, text);
DROP FUNCTION statusdb_refresh_components(text[], text, text, text);
DROP FUNCTION statusdb_lock_status_keys(bigint[]);
DROP FUNCTION statusdb_status_lock_key(text, text);
DROP FUNCTION statusdb_log_status_change(text, text, text, text, text, text, text, timestamptz);
DROP VIEW statusdb_component_derived_status;
DROP FUNCTION statusdb_derive_status(text, text, text, text);
DROP FUNCTION statusdb_priority_status(text);
DROP FUNCTION statusdb_status_rank(text);
DROP TABLE status_change;
ALTER TABLE status_page_component DROP COLUMN manual_status;
