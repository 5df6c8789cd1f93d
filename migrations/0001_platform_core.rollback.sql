-- Reverts 0001_platform_core.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';
-- Rolling back drops what the forward migration created; that is its purpose, so the
-- drop-table and drop-function warnings (meant for forward migrations) are switched off here.
-- squawk-ignore-file ban-drop-table, ban-drop-function

DROP TABLE incident;
DROP FUNCTION statusdb_incident_set_resolved_at();
DROP TABLE team;
DROP FUNCTION statusdb_touch_updated_at();
DROP FUNCTION statusdb_new_id();
