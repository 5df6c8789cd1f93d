-- Reverts 0002_status_pages.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';
-- Rolling back drops what the forward migration created; that is its purpose, so the
-- drop-table and drop-function warnings (meant for forward migrations) are switched off here.
-- squawk-ignore-file ban-drop-table, ban-drop-function

-- Refuses while any of the tables it drops holds rows (see 0006's rollback for the rule).
DO $$
DECLARE
    held text;
BEGIN
    IF current_setting('statusdb.allow_data_loss', true) = 'on' THEN
        RETURN;
    END IF;
    SELECT string_agg(format('%s (%s rows)', t.name, t.n), ', ' ORDER BY t.name)
    INTO held
    FROM (VALUES ('status_page', (SELECT count(*) FROM status_page)),
                 ('status_page_component', (SELECT count(*) FROM status_page_component)),
                 ('status_subscriber', (SELECT count(*) FROM status_subscriber)),
                 ('maintenance_window', (SELECT count(*) FROM maintenance_window)),
                 ('maintenance_window_component',
                  (SELECT count(*) FROM maintenance_window_component)),
                 ('status_incident', (SELECT count(*) FROM status_incident))) AS t (name, n)
    WHERE t.n > 0;
    IF held IS NOT NULL THEN
        RAISE EXCEPTION 'rolling back 0002_status_pages would lose data: it drops %. %', held,
        'Pass --allow-data-loss to statusdb rollback (plain yoyo: '
        'PGOPTIONS=''-c statusdb.allow_data_loss=on'') to roll back anyway.'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END;
$$;

DROP TABLE status_incident;
DROP TABLE maintenance_window_component;
DROP TABLE maintenance_window;
DROP TABLE status_subscriber;
DROP TABLE status_page_component;
DROP TABLE status_page;
DROP FUNCTION statusdb_status_page_component_forget_ids();
DROP FUNCTION statusdb_status_incident_check_component_ids();
DROP FUNCTION statusdb_status_subscriber_check_component_ids();
DROP FUNCTION statusdb_check_component_ids(text, text[], text);
DROP FUNCTION statusdb_status_incident_set_resolved_at();
DROP FUNCTION statusdb_is_status_update_list(jsonb);
DROP FUNCTION statusdb_maintenance_window_component_same_page();
