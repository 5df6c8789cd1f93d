-- Reverts 0003_status_derivation.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';
-- Rolling back drops what the forward migration created; that is its purpose, so the
-- drop warnings (meant for forward migrations) are switched off here.
-- squawk-ignore-file ban-drop-table, ban-drop-function, ban-drop-column, ban-drop-view

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
