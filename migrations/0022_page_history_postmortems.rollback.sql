-- statusdb 0022 rollback: drop the row history (with statusdb_page_view_at, the retention
-- function and the history triggers) and the postmortems.

-- squawk-ignore-file ban-drop-table, ban-drop-function

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

-- Refuses while it would lose something (statusdb.allow_data_loss = on, `statusdb rollback
-- --allow-data-loss`): postmortem revisions, and past row versions (those that ended: the current
-- versions are copies of the tables' rows, no loss).
DO $$
DECLARE
    revisions bigint;
    versions bigint;
BEGIN
    IF current_setting('statusdb.allow_data_loss', true) = 'on' THEN
        RETURN;
    END IF;
    SELECT count(*) INTO revisions FROM status_incident_postmortem;
    SELECT count(*) INTO versions FROM row_history h
    WHERE h.valid_to IS NOT NULL;
    IF revisions > 0 OR versions > 0 THEN
        RAISE EXCEPTION 'rolling back 0022_page_history_postmortems would lose data: '
                        'status_incident_postmortem has % revisions and row_history % past '
                        'versions (the page as it was, postmortems). %',
                        revisions, versions,
            'Pass --allow-data-loss to statusdb rollback (plain yoyo: '
            'PGOPTIONS=''-c statusdb.allow_data_loss=on'') to roll back anyway.'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END;
$$;

DROP TABLE status_incident_postmortem;
DROP FUNCTION statusdb_status_incident_postmortem_keep();
DROP FUNCTION statusdb_status_incident_postmortem_number();

DROP FUNCTION statusdb_page_view_at(text, bytea, timestamptz, interval, integer);
DROP FUNCTION statusdb_prune_row_history(timestamptz, integer);
DROP TRIGGER status_change_keep_history_delete ON status_change;
DROP FUNCTION statusdb_keep_component_statuses();
DROP TRIGGER component_group_keep_history_insert ON component_group;
DROP TRIGGER component_group_keep_history_update ON component_group;
DROP TRIGGER component_group_keep_history_delete ON component_group;
DROP TRIGGER maintenance_window_component_keep_history_insert ON maintenance_window_component;
DROP TRIGGER maintenance_window_component_keep_history_update ON maintenance_window_component;
DROP TRIGGER maintenance_window_component_keep_history_delete ON maintenance_window_component;
DROP TRIGGER maintenance_window_keep_history_insert ON maintenance_window;
DROP TRIGGER maintenance_window_keep_history_update ON maintenance_window;
DROP TRIGGER maintenance_window_keep_history_delete ON maintenance_window;
DROP TRIGGER status_incident_keep_history_insert ON status_incident;
DROP TRIGGER status_incident_keep_history_update ON status_incident;
DROP TRIGGER status_incident_keep_history_delete ON status_incident;
DROP TRIGGER status_page_component_keep_history_insert ON status_page_component;
DROP TRIGGER status_page_component_keep_history_update ON status_page_component;
DROP TRIGGER status_page_component_keep_history_delete ON status_page_component;
DROP TRIGGER status_page_keep_history_insert ON status_page;
DROP TRIGGER status_page_keep_history_update ON status_page;
DROP TRIGGER status_page_keep_history_delete ON status_page;
DROP FUNCTION statusdb_keep_history_of(regclass, text, text, text);
DROP FUNCTION statusdb_keep_row_history();
DROP TABLE row_history_horizon;
DROP TABLE row_history;
