-- statusdb 0008: database roles, the page view as the readers' only door, and opt-in
-- row-level security per team.
-- depends: 0006_notification_outbox
--
-- Three roles, NOLOGIN groups that login users are made members of (README, "Operating
-- statusdb", has the SQL a DBA runs):
--   statusdb_owner   owns the schema and runs the migrations. Migrations should run AS this role
--                    (log in as it, or as a member whose session does SET ROLE statusdb_owner),
--                    so that everything they create belongs to it. This file does not ALTER
--                    ... OWNER TO: that would need the runner to be a superuser or a member of
--                    statusdb_owner, and would make the result depend on who ran it. Whoever
--                    runs the migrations owns the objects; the test suite runs them as the
--                    postgres superuser, a production deployment as statusdb_owner.
--   statusdb_app     the backend: reads and writes data through the repository; cannot create,
--                    alter or drop anything, cannot write derived statuses or the status log.
--   statusdb_reader  status page readers: may only call statusdb_page_view (the page view),
--                    which shows exactly what a reader with the slug (and token) may see.
--
-- Roles are cluster-wide, while everything granted here belongs to this database: the roles are
-- created only when missing (another database of the cluster may have created them already), and
-- the rollback revokes this file's grants but leaves the roles in place (other databases may
-- still use them; a DBA drops them, see the rollback file).
--
-- The PUBLIC defaults stay as PostgreSQL 15 makes them: USAGE (not CREATE) on schema public,
-- CONNECT and TEMPORARY on the database, EXECUTE on functions. Privileges on the database itself
-- are not granted here: they live outside the database (a copy made with CREATE DATABASE ...
-- TEMPLATE, or a restore, would not carry them), so a DBA who revokes the PUBLIC defaults grants
-- CONNECT to both roles and TEMPORARY to statusdb_app (subscriber import stages rows in a
-- temporary table) by hand.
--
-- Tables created by later migrations get their grants in their own migration (a schema test
-- checks that every table is granted to statusdb_app). ALTER DEFAULT PRIVILEGES FOR ROLE
-- statusdb_owner is a DBA's option for ad-hoc tables, deliberately not used here: a migration
-- that adds a table should say what the backend may do with it.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

-- --------------------------------------------------------------------------------------------
-- Roles

-- A role another database's migration creates between the check and CREATE ROLE makes CREATE
-- ROLE fail with unique_violation once that migration commits; the role exists then, which is
-- all this needs. A runner without CREATEROLE gets the SQL to ask a DBA for.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'statusdb_owner') THEN
        BEGIN
            CREATE ROLE statusdb_owner NOLOGIN;
            COMMENT ON ROLE statusdb_owner IS
                'statusdb: owns the schema and runs the migrations (group role; members log in).';
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'statusdb_app') THEN
        BEGIN
            CREATE ROLE statusdb_app NOLOGIN;
            COMMENT ON ROLE statusdb_app IS
                'statusdb: the backend; reads and writes data, cannot change the schema.';
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'statusdb_reader') THEN
        BEGIN
            CREATE ROLE statusdb_reader NOLOGIN;
            COMMENT ON ROLE statusdb_reader IS
                'statusdb: status page readers; may only call statusdb_page_view.';
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE EXCEPTION 'the statusdb roles do not exist and % may not create them', current_user
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Have a DBA run: CREATE ROLE statusdb_owner NOLOGIN; '
                     'CREATE ROLE statusdb_app NOLOGIN; CREATE ROLE statusdb_reader NOLOGIN; '
                     'then apply the migrations again.';
END;
$$;

-- PostgreSQL 15 no longer lets PUBLIC create objects in schema public, but a database upgraded
-- from an older version with pg_upgrade keeps the old grant. That is the DBA's call (revoking it
-- could break other users of the database), so the migration only warns.
DO $$
BEGIN
    IF has_schema_privilege('public', 'public', 'CREATE') THEN
        RAISE WARNING 'every role may create objects in schema public, statusdb_app included'
            USING HINT = 'Run REVOKE CREATE ON SCHEMA public FROM PUBLIC (the default since '
                         'PostgreSQL 15).';
    END IF;
END;
$$;

-- --------------------------------------------------------------------------------------------
-- The status derivation runs as the owner
--
-- The derivation (0003) reads across teams: an incident of team A re-derives components on any
-- page whose components follow team A, and a component follows incidents of a team that need
-- not own its page. Under row-level security (below) a trigger running as the caller would see
-- only the caller's team and derive wrong statuses. So the functions behind the derivation
-- triggers, and the operators' recompute, run as their owner (SECURITY DEFINER), who is not
-- subject to the policies (no FORCE ROW LEVEL SECURITY). The helpers they call
-- (statusdb_refresh_components, statusdb_derive_status, statusdb_log_status_change, ...) stay
-- SECURITY INVOKER: called from these functions they run as the owner; called directly by
-- statusdb_app they can do no more than statusdb_app can, which cannot write current_status or
-- status_change (grants below).
--
-- A SECURITY DEFINER function must not resolve names through a search path its caller
-- controls: pg_temp is put last explicitly (otherwise it is searched first for tables, and a
-- caller's temporary table named like ours would be read with the owner's rights).
-- Trigger functions cannot be called other than by their triggers, and a trigger does not check
-- EXECUTE when it fires; EXECUTE is still taken from PUBLIC so that the catalogue says who may
-- call what.
ALTER FUNCTION statusdb_incident_refresh_status()
    SECURITY DEFINER SET search_path = public, pg_temp;
ALTER FUNCTION statusdb_status_page_component_derive()
    SECURITY DEFINER SET search_path = public, pg_temp;
ALTER FUNCTION statusdb_status_page_component_log_initial_status()
    SECURITY DEFINER SET search_path = public, pg_temp;
ALTER FUNCTION statusdb_maintenance_window_refresh_status()
    SECURITY DEFINER SET search_path = public, pg_temp;
ALTER FUNCTION statusdb_maintenance_window_component_refresh_status()
    SECURITY DEFINER SET search_path = public, pg_temp;
REVOKE EXECUTE ON FUNCTION
    statusdb_incident_refresh_status(),
    statusdb_status_page_component_derive(),
    statusdb_status_page_component_log_initial_status(),
    statusdb_maintenance_window_refresh_status(),
    statusdb_maintenance_window_component_refresh_status()
FROM PUBLIC;

-- Recompute compares and repairs every component, whatever team the caller is scoped to.
ALTER FUNCTION statusdb_recompute_statuses(boolean)
    SECURITY DEFINER SET search_path = public, pg_temp;
REVOKE EXECUTE ON FUNCTION statusdb_recompute_statuses(boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION statusdb_recompute_statuses(boolean) TO statusdb_app;

-- --------------------------------------------------------------------------------------------
-- The page view
--
-- What a status page's readers see, in one call: the page, its components, active status
-- incidents and upcoming maintenance; a private page only with its token digest (a wrong or
-- missing digest finds nothing, exactly like an unknown slug). statusdb.views.page_view calls
-- it (sql/views.sql, page_view_by_slug), so readers and the backend share one code path.
--
-- It is statusdb_reader's only privilege: the role can read no table, so it can neither list
-- private pages nor read token digests or subscriber destinations, and learns nothing beyond
-- what the page shows. Column privileges could not give that: the token check compares
-- access_token_hash, so the reader would need to SELECT that column, and could read every
-- private page's components without a token. The function runs as the owner and ignores the
-- team setting (a page's readers are the public, not a team).
--
-- plpgsql rather than SQL: its statement's plan is cached per connection (a SECURITY DEFINER
-- SQL function cannot be inlined and is planned on every call), and the page view is the
-- hottest read.
CREATE FUNCTION statusdb_page_view(
    page_slug text, page_token_hash bytea, maintenance_horizon interval, maintenance_limit integer
)
RETURNS TABLE (
    id text, name text, description text, slug text, is_public boolean, updated_at timestamptz,
    components json, incidents json, maintenance json
)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = public, pg_temp
ROWS 1
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH page AS (
        SELECT p.id, p.name, p.description, p.slug, p.is_public, p.updated_at
        FROM status_page p
        WHERE p.slug = page_slug
          AND (p.is_public OR p.access_token_hash = page_token_hash)
    ),
    page_components AS (
        SELECT coalesce(json_agg(json_build_array(c.id, c.name, c.description, c.display_order,
                                                  c.current_status, c.status_updated_at)
                                 ORDER BY c.display_order, c.name, c.id), '[]') AS items,
               max(c.status_updated_at) AS last_change
        FROM page
        JOIN status_page_component c ON c.status_page_id = page.id
    ),
    page_incidents AS (
        SELECT coalesce(json_agg(json_build_array(i.id, i.title, i.message, i.severity, i.status,
                                                  i.affected_component_ids, i.created_at,
                                                  i.updated_at, i.updates)
                                 ORDER BY i.created_at DESC, i.id DESC), '[]') AS items,
               max(i.updated_at) AS last_change
        FROM page
        JOIN status_incident i ON i.status_page_id = page.id
        WHERE i.status IN ('INVESTIGATING', 'IDENTIFIED', 'MONITORING')
    ),
    page_maintenance AS (
        SELECT coalesce(json_agg(json_build_array(w.id, w.title, w.description, w.status,
                                                  w.start_time, w.end_time, w.component_ids)
                                 ORDER BY w.start_time, w.id), '[]') AS items
        FROM (
            SELECT w.id, w.title, w.description, w.status, w.start_time, w.end_time,
                   ARRAY(SELECT mc.component_id
                         FROM maintenance_window_component mc
                         WHERE mc.maintenance_window_id = w.id
                         ORDER BY mc.component_id) AS component_ids
            FROM page
            JOIN maintenance_window w ON w.status_page_id = page.id
            WHERE w.status = 'IN_PROGRESS'
               OR (w.status = 'SCHEDULED' AND w.start_time < now() + maintenance_horizon)
            ORDER BY w.start_time, w.id
            LIMIT maintenance_limit
        ) AS w
    )
    SELECT page.id, page.name, page.description, page.slug, page.is_public,
           greatest(page.updated_at, page_components.last_change, page_incidents.last_change),
           page_components.items, page_incidents.items, page_maintenance.items
    FROM page, page_components, page_incidents, page_maintenance;
END;
$$;

COMMENT ON FUNCTION statusdb_page_view(text, bytea, interval, integer) IS
    'A status page as its readers see it; private pages only with their token digest.';
REVOKE EXECUTE ON FUNCTION statusdb_page_view(text, bytea, interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION statusdb_page_view(text, bytea, interval, integer)
    TO statusdb_app, statusdb_reader;

-- --------------------------------------------------------------------------------------------
-- statusdb_app's privileges
--
-- USAGE on the schema is PUBLIC's already; granted explicitly so that the roles keep working
-- where a DBA has revoked it from PUBLIC. No CREATE: the backend changes no schema.
GRANT USAGE ON SCHEMA public TO statusdb_app, statusdb_reader;

GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE
    team,
    incident,
    status_page,
    status_subscriber,
    maintenance_window,
    maintenance_window_component,
    status_incident
TO statusdb_app;

-- Components: everything but the derived status. current_status and status_updated_at are
-- written only by the derivation (which runs as the owner), so the backend cannot set a status
-- by hand, not even by setting the derivation's own session flag.
GRANT SELECT, DELETE ON TABLE status_page_component TO statusdb_app;
GRANT INSERT (id, status_page_id, name, description, display_order, team_id, service_identifier,
              manual_status, created_at, updated_at),
      UPDATE (status_page_id, name, description, display_order, team_id, service_identifier,
              manual_status, updated_at)
    ON TABLE status_page_component TO statusdb_app;

-- The status-change log is written by the derivation only; the backend reads it (uptime,
-- history) and its outbox workers lease and complete rows. No INSERT or DELETE: the log cannot
-- be forged or pruned by the backend (rows go with their page or component, by cascade). Hence
-- no USAGE on the seq identity's sequence either: only the derivation draws from it.
GRANT SELECT ON TABLE status_change TO statusdb_app;
GRANT UPDATE (lease_owner, lease_expires_at, notified_at, outcome)
    ON TABLE status_change TO statusdb_app;

-- --------------------------------------------------------------------------------------------
-- Row-level security per team (opt-in)
--
-- A session that sets statusdb.team_id (statusdb.tenancy.set_team, or
-- SELECT set_config('statusdb.team_id', '<team id>', is_local)) sees and changes only that
-- team: the team itself, its incidents and its pages, and everything on its pages (components,
-- subscribers, maintenance windows and their components, status incidents, status changes).
-- Rows of other teams are invisible; UPDATE and DELETE do not reach them; INSERT or UPDATE of a
-- row that would belong to another team is refused (insufficient_privilege, "new row violates
-- row-level security policy"). A session that has not set it (or set it to '') sees everything,
-- as before this migration.
--
-- A component belongs to the team of its page. Its own team_id says whose incidents drive its
-- status, which may be another team: the derivation (SECURITY DEFINER above) follows team_id
-- across the policies.
--
-- The policies apply to every role except the tables' owner (and superusers and BYPASSRLS
-- roles): statusdb_app and its members, but also any other role a DBA grants privileges to,
-- so that no role silently sees nothing. FORCE ROW LEVEL SECURITY is not set: the owner runs
-- the derivation, restores and repairs, which must see every row.
--
-- Cost. The setting is read through a scalar subquery, evaluated once per statement; with no
-- team set, a policy is one comparison per row. A row on a page is checked against the team's
-- page ids, which PostgreSQL collects once per statement into a hash table (the subquery is
-- uncorrelated), so a scan of many rows pays a hash lookup per row, not a query. (The page ids
-- are read from status_page as the caller, so its policy applies there too, to the same effect.)
CREATE FUNCTION statusdb_current_team() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT nullif(current_setting('statusdb.team_id', true), '')
$$;
COMMENT ON FUNCTION statusdb_current_team() IS
    'The team this session is scoped to (setting statusdb.team_id), or null: not scoped.';

ALTER TABLE team ENABLE ROW LEVEL SECURITY;
CREATE POLICY team_team_isolation ON team
    USING ((SELECT statusdb_current_team()) IS NULL
           OR id = (SELECT statusdb_current_team()));

ALTER TABLE incident ENABLE ROW LEVEL SECURITY;
CREATE POLICY incident_team_isolation ON incident
    USING ((SELECT statusdb_current_team()) IS NULL
           OR team_id = (SELECT statusdb_current_team()));

ALTER TABLE status_page ENABLE ROW LEVEL SECURITY;
CREATE POLICY status_page_team_isolation ON status_page
    USING ((SELECT statusdb_current_team()) IS NULL
           OR team_id = (SELECT statusdb_current_team()));

ALTER TABLE status_page_component ENABLE ROW LEVEL SECURITY;
CREATE POLICY status_page_component_team_isolation ON status_page_component
    USING ((SELECT statusdb_current_team()) IS NULL
           OR status_page_id IN (SELECT p.id FROM status_page p
                                 WHERE p.team_id = (SELECT statusdb_current_team())));

ALTER TABLE status_subscriber ENABLE ROW LEVEL SECURITY;
CREATE POLICY status_subscriber_team_isolation ON status_subscriber
    USING ((SELECT statusdb_current_team()) IS NULL
           OR status_page_id IN (SELECT p.id FROM status_page p
                                 WHERE p.team_id = (SELECT statusdb_current_team())));

ALTER TABLE maintenance_window ENABLE ROW LEVEL SECURITY;
CREATE POLICY maintenance_window_team_isolation ON maintenance_window
    USING ((SELECT statusdb_current_team()) IS NULL
           OR status_page_id IN (SELECT p.id FROM status_page p
                                 WHERE p.team_id = (SELECT statusdb_current_team())));

ALTER TABLE maintenance_window_component ENABLE ROW LEVEL SECURITY;
CREATE POLICY maintenance_window_component_team_isolation ON maintenance_window_component
    USING ((SELECT statusdb_current_team()) IS NULL
           OR maintenance_window_id IN (
               SELECT w.id FROM maintenance_window w
               WHERE w.status_page_id IN (SELECT p.id FROM status_page p
                                          WHERE p.team_id = (SELECT statusdb_current_team()))));

ALTER TABLE status_incident ENABLE ROW LEVEL SECURITY;
CREATE POLICY status_incident_team_isolation ON status_incident
    USING ((SELECT statusdb_current_team()) IS NULL
           OR status_page_id IN (SELECT p.id FROM status_page p
                                 WHERE p.team_id = (SELECT statusdb_current_team())));

ALTER TABLE status_change ENABLE ROW LEVEL SECURITY;
CREATE POLICY status_change_team_isolation ON status_change
    USING ((SELECT statusdb_current_team()) IS NULL
           OR status_page_id IN (SELECT p.id FROM status_page p
                                 WHERE p.team_id = (SELECT statusdb_current_team())));
