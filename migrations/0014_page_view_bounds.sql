-- statusdb 0014: the SQL door bounds itself. The page view clamps its arguments and takes the
-- access token itself (a digest copied from a dump opens nothing), and PUBLIC may execute only
-- the functions that every role writing the tables needs.
-- depends: 0011_global_status_lock
--
-- The database is the boundary for SQL clients: statusdb_reader and statusdb_app (and, through
-- PUBLIC, any role that can merely connect) call SQL functions directly, without the Python
-- wrapper's validation. So every function they may execute bounds its own work, and nothing else
-- is executable by them.
--
-- Audit of every function in schema public (0001-0011) and who may execute it after this file:
--
--   function                                     may execute          bounded by
--   statusdb_page_view(text,text,interval,int)   app, reader          its own checks (below)
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
-- The page view, bounded, and opened by the token rather than by its digest
--
-- 0008's page view took the token's SHA-256 digest, which is exactly what status_page stores:
-- the holder of a dump (or of any copy of access_token_hash) could open every private page with
-- a reader login. Now the caller passes the token and the function hashes it, so the stored
-- digest is useless as a credential (finding a token from its digest is a SHA-256 preimage).
--
-- The price: the token now reaches the server, as a bind parameter (statusdb never puts values
-- in the statement text). pg_stat_statements and pg_stat_activity show the statement with $n
-- placeholders, not the values, and errors log no parameters by default
-- (log_parameter_max_length_on_error = 0). But log_statement = 'all' and
-- log_min_duration_statement log an execution's bind parameters (up to
-- log_parameter_max_length, default unlimited): with those on, the server log holds page
-- tokens. Turn parameter logging off for the readers' logins (as a superuser:
-- ALTER ROLE status_web SET log_parameter_max_length = 0), or keep those logs as secret as the
-- tokens. The README's Security model says this too.
--
-- Bounds (documented maxima; the Python wrapper, statusdb.views.page_view, checks the same):
--   * maintenance_horizon: 0 to 366 days (statusdb.maintenance.MAX_HORIZON); null: 7 days;
--   * maintenance_limit: 0 to 200 windows; null: 20;
--     out-of-range values are refused with invalid_parameter_value, naming the argument;
--   * page_slug longer than 100 bytes (the slug check's maximum) finds no page, and a token
--     longer than 256 bytes (statusdb's tokens are 43 characters) is no token and is not
--     hashed: neither can match, and neither costs more than its own transfer.
-- The page's components and active incidents are shown in full: their number is what the page's
-- owner wrote, not something a reader chooses.
--
-- DROP + CREATE rather than a new overload: the digest-taking function must be gone, or the
-- attack stays open. Its grants are restated below.
-- squawk-ignore ban-drop-function
DROP FUNCTION statusdb_page_view(text, bytea, interval, integer);

-- plpgsql, as in 0008: its statement's plan is cached per connection. The argument checks and
-- the hash run before the statement, once per call.
CREATE FUNCTION statusdb_page_view(
    page_slug text, page_token text, maintenance_horizon interval, maintenance_limit integer
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
    presented_hash bytea;
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
    IF octet_length(page_token) <= 256 THEN
        presented_hash := sha256(convert_to(page_token, 'UTF8'));
    END IF;
    RETURN QUERY
    WITH page AS (
        SELECT p.id, p.name, p.description, p.slug, p.is_public, p.updated_at
        FROM status_page p
        WHERE p.slug = page_slug
          AND (p.is_public OR p.access_token_hash = presented_hash)
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

COMMENT ON FUNCTION statusdb_page_view(text, text, interval, integer) IS
    'A status page as its readers see it; private pages only with their access token. '
    'Horizon 0 to 366 days (null: 7 days), limit 0 to 200 windows (null: 20).';
REVOKE EXECUTE ON FUNCTION statusdb_page_view(text, text, interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION statusdb_page_view(text, text, interval, integer)
    TO statusdb_app, statusdb_reader;

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
    statusdb_log_status_change(text, text, text, text, text, text, text, timestamptz),
    statusdb_status_lock_key(text, text),
    statusdb_lock_status_keys(bigint[]),
    statusdb_refresh_components(text[], text, text, text),
    statusdb_refresh_team(text, text, text)
FROM PUBLIC;

-- The maintenance scheduler's statements (sql/maintenance.sql) take the status locks of the
-- components they touch, in key order, before any row's trigger does.
GRANT EXECUTE ON FUNCTION
    statusdb_status_lock_key(text, text),
    statusdb_lock_status_keys(bigint[])
TO statusdb_app;
