-- statusdb 0014: the SQL door bounds itself. The page view bounds its arguments, a page's stored
-- token digest no longer opens the page (a leaked dump opens nothing), and PUBLIC may execute only
-- the functions that every role writing the tables needs.
-- depends: 0013_destination_policy
--
-- The database is the boundary for SQL clients: statusdb_reader and statusdb_app (and, through
-- PUBLIC, any role that can merely connect) call SQL functions directly, without the Python
-- wrapper's validation. So every function they may execute bounds its own work, and nothing else
-- is executable by them.
--
-- Audit of every function in schema public (0001-0011) and who may execute it after this file:
--
--   function                                     may execute          bounded by
--   statusdb_page_view(text,bytea,interval,int)  app, reader          its own checks (below)
--   statusdb_new_id()                            PUBLIC               no arguments
--   statusdb_current_team()                      PUBLIC               no arguments
--   statusdb_is_status_update_list(jsonb)        PUBLIC               linear in its argument
--   statusdb_check_component_ids(text,text[],text) PUBLIC             linear in its argument
--   statusdb_status_lock_key(text,text)          app                  linear in its arguments
--   statusdb_lock_status_keys(bigint[])          app                  one lock per distinct key
--   statusdb_recompute_statuses(boolean)         app (0008)           one pass over components
--   trigger functions, derivation helpers        owner only           (called as the owner)
--
-- PUBLIC keeps EXECUTE on four functions because any role that writes statusdb's tables needs
-- them whoever it is (a DBA may grant table privileges to roles of their own): statusdb_new_id
-- is every id column's default, statusdb_is_status_update_list a CHECK of status_incident,
-- statusdb_current_team the team policies' filter, and statusdb_check_component_ids is called by
-- triggers that run as the writer. PostgreSQL checks EXECUTE on functions called from defaults,
-- CHECKs, policies and triggers' statements as the current user. These four are SECURITY
-- INVOKER and do nothing the caller could not do with plain SQL and its own privileges (row
-- locks only on rows it may lock), in time linear in the arguments it sends itself.
--
-- Everything else is taken from PUBLIC: the trigger functions (a trigger does not check EXECUTE
-- when it fires; taken so that the catalogue says who may call what, as 0008 did for the
-- derivation's), and the derivation's helpers, which only the SECURITY DEFINER derivation
-- functions call (as the owner, who keeps EXECUTE as their owner). statusdb_app keeps the two
-- lock helpers its maintenance scheduler calls (sql/maintenance.sql). An invoker function's bound
-- protects nothing by itself: a caller could run its body with its own privileges. What bounds
-- a role is what it may execute and read; a bound inside a function matters where the function
-- does more than the caller could (SECURITY DEFINER: the page view and recompute).
--
-- statusdb_recompute_statuses has no argument to bound: it reads every component once (the
-- operator's repair). statusdb_lock_status_keys takes one transaction-scoped advisory lock per
-- distinct key it is given; how the status locks are taken is 0003/0011's design, and any role
-- may take advisory locks with pg_advisory_lock itself, so a bound here would protect nothing.
--
-- Functions added by later migrations get PUBLIC's EXECUTE by default: such a migration revokes
-- it and grants what is needed (tests/security/test_s07_sql_bounds.py lists every function each
-- role may execute, so a new one cannot slip through).

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

-- --------------------------------------------------------------------------------------------
-- The page view, bounded, and a stored digest that opens nothing
--
-- Until now status_page stored the SHA-256 digest of a page's access token, and the page view
-- compared the digest it was given with it: the holder of a dump (or of any copy of
-- access_token_hash) could open every private page with a reader login, passing the stored
-- digest. Now the column stores the SHA-256 of that digest, and the page view hashes the digest
-- it is given once more before comparing. The caller still sends the token's digest, never the
-- token (statusdb.tokens.digest), so the server still never sees or logs a token; what it stores
-- is useless to the page view (opening the page with it would take a SHA-256 preimage).
--
-- What a server log can hold: the digest the caller sends is a bind parameter (statusdb never
-- puts values in the statement text). pg_stat_statements and pg_stat_activity show $n
-- placeholders, not values, and errors log no parameters by default
-- (log_parameter_max_length_on_error = 0); log_statement = 'all' and log_min_duration_statement
-- log an execution's parameters (up to log_parameter_max_length). A digest from such a log opens
-- the page through this function, so for a role that can log in and call it (statusdb_reader,
-- statusdb_app) it is as good as the token; for anyone else (the public in front of a status page
-- web front end, which takes the token and hashes it) it is useless. Keep such logs as private as
-- the database logins, or switch parameter logging off for the page view's logins (as a
-- superuser: ALTER ROLE status_web SET log_parameter_max_length = 0).
--
-- Rolling back cannot turn the stored values back into digests (that is the point): the rollback
-- refuses while private pages exist, unless statusdb.allow_data_loss = on, and then leaves every
-- private page unopenable until its token is rotated (statusdb.pages.rotate_access_token).
--
-- Bounds (documented maxima; the Python wrapper, statusdb.views.page_view, checks the same):
--   * maintenance_horizon: 0 to 366 days (statusdb.maintenance.MAX_HORIZON); null: 7 days;
--   * maintenance_limit: 0 to 200 windows; null: 20;
--     out-of-range values are refused with invalid_parameter_value, naming the argument;
--   * a page_slug longer than 100 bytes (the slug check's maximum) finds no page, and a
--     page_token_hash that is not 32 bytes is no digest and is not hashed: neither can match,
--     and neither costs more than its own transfer.
-- The page's components and active incidents are shown in full: their number is what the page's
-- owner wrote, not something a reader chooses.

-- The stored digests, hashed once more. status_page is small (one row per page). The updated_at
-- trigger is held off for the statement: the pages did not change for their readers. (DISABLE
-- TRIGGER takes SHARE ROW EXCLUSIVE on status_page until this file commits: writes to pages wait
-- for the rest of this file, page views do not. The tokens in use keep working throughout:
-- before the commit the old function compares digests with digests, after it the new one
-- compares hashed digests with hashed digests.)
ALTER TABLE status_page DISABLE TRIGGER status_page_touch_updated_at;
UPDATE status_page
SET access_token_hash = sha256(access_token_hash)
WHERE access_token_hash IS NOT NULL;
ALTER TABLE status_page ENABLE TRIGGER status_page_touch_updated_at;

COMMENT ON COLUMN status_page.access_token_hash IS
    'SHA-256 of the SHA-256 digest of the access token (0014): the page view is given the '
    'digest and hashes it again, so this value opens nothing.';

-- Same signature and argument names as 0008's, so CREATE OR REPLACE keeps its grants. plpgsql,
-- as in 0008: its statement's plan is cached per connection. The checks and the hash run before
-- the statement, once per call.
CREATE OR REPLACE FUNCTION statusdb_page_view(
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
DECLARE
    horizon interval := coalesce(maintenance_horizon, interval '7 days');
    window_limit integer := coalesce(maintenance_limit, 20);
    stored_hash bytea;
BEGIN
    IF horizon < interval '0' OR horizon > interval '366 days' THEN
        RAISE EXCEPTION 'maintenance_horizon must be from 0 to 366 days, not %', horizon
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF window_limit < 0 OR window_limit > 200 THEN
        RAISE EXCEPTION 'maintenance_limit must be from 0 to 200, not %', window_limit
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(page_slug) > 100 THEN
        RETURN;  -- no slug is that long: like an unknown slug
    END IF;
    IF octet_length(page_token_hash) = 32 THEN
        stored_hash := sha256(page_token_hash);
    END IF;
    RETURN QUERY
    WITH page AS (
        SELECT p.id, p.name, p.description, p.slug, p.is_public, p.updated_at
        FROM status_page p
        WHERE p.slug = page_slug
          AND (p.is_public OR p.access_token_hash = stored_hash)
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
               OR (w.status = 'SCHEDULED' AND w.start_time < now() + horizon)
            ORDER BY w.start_time, w.id
            LIMIT window_limit
        ) AS w
    )
    SELECT page.id, page.name, page.description, page.slug, page.is_public,
           greatest(page.updated_at, page_components.last_change, page_incidents.last_change),
           page_components.items, page_incidents.items, page_maintenance.items
    FROM page, page_components, page_incidents, page_maintenance;
END;
$$;

COMMENT ON FUNCTION statusdb_page_view(text, bytea, interval, integer) IS
    'A status page as its readers see it; private pages only with the SHA-256 digest of their '
    'access token. Horizon 0 to 366 days (null: 7 days), limit 0 to 200 windows (null: 20).';

-- --------------------------------------------------------------------------------------------
-- What PUBLIC may execute (see the audit above)

REVOKE EXECUTE ON FUNCTION
    -- trigger functions
    statusdb_touch_updated_at(),
    statusdb_incident_set_resolved_at(),
    statusdb_maintenance_window_component_same_page(),
    statusdb_status_incident_set_resolved_at(),
    statusdb_status_subscriber_check_component_ids(),
    statusdb_status_incident_check_component_ids(),
    statusdb_status_page_component_forget_ids(),
    statusdb_maintenance_window_check_time_zone(),
    -- the derivation's helpers, called as the owner by the SECURITY DEFINER functions
    statusdb_status_rank(text),
    statusdb_priority_status(text),
    statusdb_derive_status(text, text, text, text),
    statusdb_derive_statuses(text[]),
    statusdb_status_lock_key(text, text)
FROM PUBLIC;
-- (0012 already revoked statusdb_lock_status_keys, statusdb_log_status_change,
-- statusdb_refresh_components and statusdb_refresh_team, and granted statusdb_lock_status_keys
-- to statusdb_app.)

-- The maintenance scheduler's statements (sql/maintenance.sql) take the status locks of the
-- components they touch, in key order, before any row's trigger does.
GRANT EXECUTE ON FUNCTION statusdb_status_lock_key(text, text) TO statusdb_app;
