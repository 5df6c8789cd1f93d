-- Reverts 0002_status_pages.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';
-- Rolling back drops what the forward migration created; that is its purpose, so the
-- drop-table and drop-function warnings (meant for forward migrations) are switched off here.
-- squawk-ignore-file ban-drop-table, ban-drop-function

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
