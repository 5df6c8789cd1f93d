-- Reverts 0008_roles_and_rls.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';
-- Rolling back drops what the forward migration created; that is its purpose, so the
-- drop-function warning (meant for forward migrations) is switched off here.
-- squawk-ignore-file ban-drop-function
--
-- The roles stay. They are cluster-wide: other databases of the cluster may be using them (and
-- DROP ROLE fails while any database still grants them anything). This file revokes what the
-- forward file granted in this database; a DBA drops the roles once no database uses them:
--   REASSIGN OWNED BY statusdb_owner TO <new owner>;  -- in every database that used them
--   DROP OWNED BY statusdb_app, statusdb_reader;       -- likewise
--   DROP ROLE statusdb_reader, statusdb_app, statusdb_owner;

DROP POLICY status_change_team_isolation ON status_change;
ALTER TABLE status_change DISABLE ROW LEVEL SECURITY;
DROP POLICY status_incident_team_isolation ON status_incident;
ALTER TABLE status_incident DISABLE ROW LEVEL SECURITY;
DROP POLICY maintenance_window_component_team_isolation ON maintenance_window_component;
ALTER TABLE maintenance_window_component DISABLE ROW LEVEL SECURITY;
DROP POLICY maintenance_window_team_isolation ON maintenance_window;
ALTER TABLE maintenance_window DISABLE ROW LEVEL SECURITY;
DROP POLICY status_subscriber_team_isolation ON status_subscriber;
ALTER TABLE status_subscriber DISABLE ROW LEVEL SECURITY;
DROP POLICY status_page_component_team_isolation ON status_page_component;
ALTER TABLE status_page_component DISABLE ROW LEVEL SECURITY;
DROP POLICY status_page_team_isolation ON status_page;
ALTER TABLE status_page DISABLE ROW LEVEL SECURITY;
DROP POLICY incident_team_isolation ON incident;
ALTER TABLE incident DISABLE ROW LEVEL SECURITY;
DROP POLICY team_team_isolation ON team;
ALTER TABLE team DISABLE ROW LEVEL SECURITY;
DROP FUNCTION statusdb_current_team();

REVOKE UPDATE (lease_owner, lease_expires_at, notified_at, outcome)
    ON TABLE status_change FROM statusdb_app;
REVOKE SELECT ON TABLE status_change FROM statusdb_app;
REVOKE INSERT (id, status_page_id, name, description, display_order, team_id, service_identifier,
               manual_status, created_at, updated_at),
       UPDATE (status_page_id, name, description, display_order, team_id, service_identifier,
               manual_status, updated_at)
    ON TABLE status_page_component FROM statusdb_app;
REVOKE SELECT, DELETE ON TABLE status_page_component FROM statusdb_app;
REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLE
    team,
    incident,
    status_page,
    status_subscriber,
    maintenance_window,
    maintenance_window_component,
    status_incident
FROM statusdb_app;
REVOKE USAGE ON SCHEMA public FROM statusdb_app, statusdb_reader;

DROP FUNCTION statusdb_page_view(text, bytea, interval, integer);

REVOKE EXECUTE ON FUNCTION statusdb_recompute_statuses(boolean) FROM statusdb_app;
GRANT EXECUTE ON FUNCTION statusdb_recompute_statuses(boolean) TO PUBLIC;
ALTER FUNCTION statusdb_recompute_statuses(boolean) SECURITY INVOKER RESET search_path;

GRANT EXECUTE ON FUNCTION
    statusdb_incident_refresh_status(),
    statusdb_status_page_component_derive(),
    statusdb_status_page_component_log_initial_status(),
    statusdb_maintenance_window_refresh_status(),
    statusdb_maintenance_window_component_refresh_status()
TO PUBLIC;
ALTER FUNCTION statusdb_maintenance_window_component_refresh_status()
    SECURITY INVOKER RESET search_path;
ALTER FUNCTION statusdb_maintenance_window_refresh_status()
    SECURITY INVOKER RESET search_path;
ALTER FUNCTION statusdb_status_page_component_log_initial_status()
    SECURITY INVOKER RESET search_path;
ALTER FUNCTION statusdb_status_page_component_derive()
    SECURITY INVOKER RESET search_path;
ALTER FUNCTION statusdb_incident_refresh_status()
    SECURITY INVOKER RESET search_path;
