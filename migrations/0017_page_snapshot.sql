-- statusdb 0017: the page view is rendered when the page changes, not when it is read (issue 10).
-- depends: 0016_comments
--
-- status_page_snapshot holds, per page, what statusdb_page_view returns, rendered by the writer
-- in the same transaction as the change (statement-level triggers on every table the view
-- shows), under a version that moves whenever the rendering changes. Readers never write: the
-- page view is one index lookup of one row (streaming replicas receive the rendered row like any
-- other), and a conditional read (if_version) answers "not modified" without sending the body.
--
-- Design decisions:
--
-- * Who renders, and how often. AFTER ... FOR EACH STATEMENT triggers with transition tables
--   collect the pages a statement touched and render each of them once for the statement (an
--   incident opening moves 50 components in one nested UPDATE: one rendering). The trigger
--   functions are SECURITY DEFINER (a trigger fires whoever the writer is, psql included, and
--   the renderer must see every row whatever the writer's team scope); they call owner-only
--   helpers, so no role can render pages on demand.
--
-- * Concurrency (READ COMMITTED). statusdb_page_snapshot_refresh first locks the pages'
--   snapshot rows (SELECT ... FOR UPDATE, in page order) and renders in a LATER statement, which
--   takes a new snapshot: a writer that waited for another's lock renders with the other's
--   committed work. (One UPDATE ... SET body = (render) would, after a lock wait, re-check the
--   row but keep the rendering from its stale snapshot, and lose the other's change.) Under
--   REPEATABLE READ / SERIALIZABLE a snapshot row updated by a transaction committed after the
--   snapshot fails the lock with a serialization failure (retryable), never renders stale.
--   The snapshot row lock is held until commit: writers to one page queue there, as the
--   derivation's status locks already make them do for components.
--
-- * Versions come from one sequence (status_page_snapshot_version_seq): strictly increasing per
--   page (the row lock orders the writers of a page), never reused by a deleted and re-created
--   page of the same slug (an ETag of the old page cannot match the new one), and the version
--   is the base of the versions readers see (below). A rendering identical to the stored one
--   (text comparison) keeps the version and announces nothing.
--
-- * Time. What the view shows depends on the clock only through the maintenance horizon: a
--   SCHEDULED window is listed once start_time < now() + horizon (statuses move only through
--   the maintenance scheduler, which writes, so the snapshot follows them). The snapshot keeps
--   the candidates: the first 200 IN_PROGRESS and the first 200 SCHEDULED windows by
--   (start_time, id), whatever their start (the limit is at most 200 and the horizon filter
--   selects a prefix of the SCHEDULED list, so these 400 at most always contain the answer and
--   the candidate list itself never goes stale with time). The read filters them by
--   now() + horizon and the limit. fresh_until = the earliest start_time - horizon of a
--   candidate not shown yet (conservative: that window may still fall beyond the limit).
--
-- * The version readers see is composite, so that it is honest for the time-dependent part
--   too: version = snapshot version * 256 + k, k = the number of SCHEDULED candidates with
--   start_time < now() + horizon (0 when the limit is 0: nothing is shown then). For fixed
--   snapshot contents, horizon and limit, the view is determined by k (the shown list is the
--   first `limit`, by (start_time, id), of the IN_PROGRESS candidates together with the first
--   k SCHEDULED ones; IN_PROGRESS ones change only by writes), so equal versions mean equal
--   bodies and a conditional read compares if_version with it alone. k only grows with the
--   clock and is at most 200 (the SCHEDULED candidates kept; least(k, 255) and a CHECK make 8
--   bits enough), so a page's versions only increase: a window entering the horizon moves the
--   version without any write, and a new rendering starts above every version of the previous
--   one. The NOTIFY (statusdb_page_version) carries the lowest version of the new rendering,
--   snapshot version * 256: any version a cache holds below it is stale. Range: the sequence
--   starts at the clock in microseconds (about 2^50.7 in 2026, see the end) and stops at
--   2^55 - 1 (year ~3100 even at one version a microsecond), so version * 256 + 255 stays below
--   2^63. Versions do not fit a JavaScript number exactly (2^53): send them as text (an ETag is
--   text anyway).

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

-- MAXVALUE 2^55 - 1: readers see version * 256 + k (k <= 255), which must stay a bigint.
CREATE SEQUENCE status_page_snapshot_version_seq AS bigint MAXVALUE 36028797018963967;
COMMENT ON SEQUENCE status_page_snapshot_version_seq IS
    'Versions of page snapshots (0017): one sequence for all pages, so a version is never reused; '
    'at most 2^55 - 1 so that the readers'' versions (version * 256 + k) stay bigints.';

CREATE TABLE status_page_snapshot (
    page_id text NOT NULL,
    version bigint NOT NULL,
    slug text NOT NULL,
    is_public boolean NOT NULL,
    access_token_hash bytea,
    name text NOT NULL,
    description text,
    updated_at timestamptz NOT NULL,
    components json NOT NULL,
    incidents json NOT NULL,
    windows json NOT NULL,
    window_starts timestamptz[] NOT NULL,
    window_scheduled boolean[] NOT NULL,
    CONSTRAINT status_page_snapshot_pkey PRIMARY KEY (page_id),
    CONSTRAINT status_page_snapshot_page_id_fkey FOREIGN KEY (page_id)
        REFERENCES status_page (id) ON DELETE CASCADE,
    CONSTRAINT status_page_snapshot_version_key UNIQUE (version),
    CONSTRAINT status_page_snapshot_windows_check
        CHECK (cardinality(window_starts) = cardinality(window_scheduled)
               AND json_array_length(windows) = cardinality(window_starts)),
    -- k, the SCHEDULED candidates in the horizon, fits the readers' version's 8 low bits.
    CONSTRAINT status_page_snapshot_scheduled_check
        CHECK (cardinality(array_positions(window_scheduled, true)) <= 255)
);
-- Not unique: status_page enforces slugs, and a statement that swaps two pages' slugs must not
-- trip over the snapshot's intermediate states. The page view looks pages up here alone.
CREATE INDEX status_page_snapshot_slug_idx ON status_page_snapshot (slug);

COMMENT ON TABLE status_page_snapshot IS
    'Each page as statusdb_page_view shows it, rendered by the writers'' triggers in the same '
    'transaction (0017); statusdb_page_render renders from scratch.';
COMMENT ON COLUMN status_page_snapshot.page_id IS 'The page (status_page.id).';
COMMENT ON COLUMN status_page_snapshot.version IS
    'Changes (increases) whenever the rendering changes. Readers see version * 256 + the number '
    'of SCHEDULED candidates in their horizon; version * 256 is announced.';
COMMENT ON COLUMN status_page_snapshot.slug IS 'status_page.slug, for the page view''s lookup.';
COMMENT ON COLUMN status_page_snapshot.is_public IS 'status_page.is_public.';
COMMENT ON COLUMN status_page_snapshot.access_token_hash IS
    'status_page.access_token_hash (a digest of a digest: opens nothing, see 0014).';
COMMENT ON COLUMN status_page_snapshot.name IS 'status_page.name.';
COMMENT ON COLUMN status_page_snapshot.description IS 'status_page.description.';
COMMENT ON COLUMN status_page_snapshot.updated_at IS
    'Latest of the page''s updated_at, its components'' status_updated_at and its active '
    'incidents'' updated_at.';
COMMENT ON COLUMN status_page_snapshot.components IS
    'JSON array of [id, name, description, display_order, current_status, status_updated_at].';
COMMENT ON COLUMN status_page_snapshot.incidents IS
    'JSON array of active incidents [id, title, message, severity, status, '
    'affected_component_ids, created_at, updated_at, updates], newest first.';
COMMENT ON COLUMN status_page_snapshot.windows IS
    'JSON array of candidate maintenance windows [id, title, description, status, start_time, '
    'end_time, component_ids] by (start_time, id): first 200 IN_PROGRESS and first 200 SCHEDULED.';
COMMENT ON COLUMN status_page_snapshot.window_starts IS 'start_time of each entry of windows.';
COMMENT ON COLUMN status_page_snapshot.window_scheduled IS
    'Whether each entry of windows is SCHEDULED (shown only within the horizon).';

-- statusdb_app reads it (the page-version feed, under its team policy); only the owner's
-- triggers write it. statusdb_reader reads pages through statusdb_page_view only.
GRANT SELECT ON TABLE status_page_snapshot TO statusdb_app;
ALTER TABLE status_page_snapshot ENABLE ROW LEVEL SECURITY;
CREATE POLICY status_page_snapshot_team_isolation ON status_page_snapshot
    USING ((SELECT statusdb_current_team()) IS NULL
           OR page_id IN (SELECT p.id FROM status_page p
                          WHERE p.team_id = (SELECT statusdb_current_team())));

-- --------------------------------------------------------------------------------------------
-- The renderer: from scratch, for any set of pages. Also the repair's and the tests' reference.

CREATE FUNCTION statusdb_page_render(page_ids text[])
RETURNS TABLE (
    page_id text, slug text, is_public boolean, access_token_hash bytea, name text,
    description text, updated_at timestamptz, components json, incidents json, windows json,
    window_starts timestamptz[], window_scheduled boolean[]
)
LANGUAGE plpgsql STABLE
-- Timestamps in the JSON are rendered in UTC whoever writes, so that a rendering depends only
-- on the data (the readers decode them as aware datetimes: the same instants as before).
SET TimeZone = 'UTC'
-- plpgsql rather than sql: its one statement's plan is cached per session (a SQL function with
-- a SET clause is not inlined and would be planned again at every call).
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT p.id, p.slug, p.is_public, p.access_token_hash, p.name, p.description,
           greatest(p.updated_at, c.last_change, i.last_change),
           c.items, i.items, w.items, w.starts, w.scheduled
    FROM status_page p
    CROSS JOIN LATERAL (
        SELECT coalesce(json_agg(json_build_array(c.id, c.name, c.description, c.display_order,
                                                  c.current_status, c.status_updated_at)
                                 ORDER BY c.display_order, c.name, c.id), '[]') AS items,
               max(c.status_updated_at) AS last_change
        FROM status_page_component c
        WHERE c.status_page_id = p.id
    ) AS c
    CROSS JOIN LATERAL (
        SELECT coalesce(json_agg(json_build_array(i.id, i.title, i.message, i.severity, i.status,
                                                  i.affected_component_ids, i.created_at,
                                                  i.updated_at, i.updates)
                                 ORDER BY i.created_at DESC, i.id DESC), '[]') AS items,
               max(i.updated_at) AS last_change
        FROM status_incident i
        WHERE i.status_page_id = p.id
          AND i.status IN ('INVESTIGATING', 'IDENTIFIED', 'MONITORING')
    ) AS i
    CROSS JOIN LATERAL (
        SELECT coalesce(json_agg(json_build_array(w.id, w.title, w.description, w.status,
                                                  w.start_time, w.end_time,
                                                  ARRAY(SELECT mc.component_id
                                                        FROM maintenance_window_component mc
                                                        WHERE mc.maintenance_window_id = w.id
                                                        ORDER BY mc.component_id))
                                 ORDER BY w.start_time, w.id), '[]') AS items,
               coalesce(array_agg(w.start_time ORDER BY w.start_time, w.id), '{}') AS starts,
               coalesce(array_agg(w.status = 'SCHEDULED' ORDER BY w.start_time, w.id), '{}')
                   AS scheduled
        FROM (
            (SELECT w.id, w.title, w.description, w.status, w.start_time, w.end_time
             FROM maintenance_window w
             WHERE w.status_page_id = p.id AND w.status = 'IN_PROGRESS'
             ORDER BY w.start_time, w.id
             LIMIT 200)
            UNION ALL
            (SELECT w.id, w.title, w.description, w.status, w.start_time, w.end_time
             FROM maintenance_window w
             WHERE w.status_page_id = p.id AND w.status = 'SCHEDULED'
             ORDER BY w.start_time, w.id
             LIMIT 200)
        ) AS w
    ) AS w
    WHERE p.id = ANY (page_ids);
END;
$$;

COMMENT ON FUNCTION statusdb_page_render(text[]) IS
    'Renders the given pages from scratch (0017), one row per existing page, as '
    'status_page_snapshot stores them. Document shape (JSON arrays, timestamps in UTC): '
    'components = [[id, name, description, display_order, current_status, status_updated_at], '
    '...] by (display_order, name, id); incidents = active status incidents [[id, title, '
    'message, severity, status, affected_component_ids, created_at, updated_at, updates], ...] '
    'newest first; windows = maintenance candidates [[id, title, description, status, '
    'start_time, end_time, component_ids], ...] by (start_time, id): the first 200 IN_PROGRESS '
    'and the first 200 SCHEDULED, with window_starts / window_scheduled alongside for the '
    'read''s horizon filter. updated_at = latest of the page''s, its components'' status and its '
    'active incidents'' changes. Owner only (called by the triggers and the repair).';

-- Re-renders the given pages into their snapshots: lock first, render in a later statement.
CREATE FUNCTION statusdb_page_snapshot_refresh(page_ids text[]) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    announced bigint;
BEGIN
    IF coalesce(cardinality(page_ids), 0) = 0 THEN
        RETURN;
    END IF;
    -- 1. The snapshot rows, locked in page order (deleted pages have none).
    PERFORM 1 FROM status_page_snapshot s
    WHERE s.page_id = ANY (page_ids)
    ORDER BY s.page_id
    FOR UPDATE;
    -- 2. A new statement, a new snapshot (READ COMMITTED): the rendering includes what another
    --    writer of these pages committed while we waited for the locks.
    WITH rendered AS (
        SELECT r.* FROM statusdb_page_render(page_ids) AS r
    ),
    changed AS (
        UPDATE status_page_snapshot s
        SET version = nextval('status_page_snapshot_version_seq'),
            slug = r.slug, is_public = r.is_public, access_token_hash = r.access_token_hash,
            name = r.name, description = r.description, updated_at = r.updated_at,
            components = r.components, incidents = r.incidents, windows = r.windows,
            window_starts = r.window_starts, window_scheduled = r.window_scheduled
        FROM rendered r
        WHERE s.page_id = r.page_id
          AND (s.slug, s.is_public, s.access_token_hash, s.name, s.description, s.updated_at,
               s.components::text, s.incidents::text, s.windows::text)
              IS DISTINCT FROM
              (r.slug, r.is_public, r.access_token_hash, r.name, r.description, r.updated_at,
               r.components::text, r.incidents::text, r.windows::text)
        RETURNING s.version
    )
    -- The lowest version readers of the new rendering see (k = 0).
    SELECT count(pg_notify('statusdb_page_version', (changed.version * 256)::text))
    INTO STRICT announced
    FROM changed;
END;
$$;

COMMENT ON FUNCTION statusdb_page_snapshot_refresh(text[]) IS
    'Re-renders the snapshots of the given pages (0017): locks their rows, then renders in a '
    'later statement; a changed rendering gets a new version, announced on '
    'statusdb_page_version (payload: version * 256, the lowest version its readers see). '
    'Owner only.';

-- New pages: their first snapshot.
CREATE FUNCTION statusdb_page_snapshot_create(page_ids text[]) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    announced bigint;
BEGIN
    WITH created AS (
        INSERT INTO status_page_snapshot (page_id, version, slug, is_public, access_token_hash,
                                          name, description, updated_at, components,
                                          incidents, windows, window_starts, window_scheduled)
        SELECT r.page_id, nextval('status_page_snapshot_version_seq'), r.slug, r.is_public,
               r.access_token_hash, r.name, r.description, r.updated_at, r.components,
               r.incidents, r.windows, r.window_starts, r.window_scheduled
        FROM statusdb_page_render(page_ids) AS r
        ORDER BY r.page_id
        ON CONFLICT (page_id) DO NOTHING
        RETURNING version
    )
    SELECT count(pg_notify('statusdb_page_version', (created.version * 256)::text))
    INTO STRICT announced
    FROM created;
END;
$$;

COMMENT ON FUNCTION statusdb_page_snapshot_create(text[]) IS
    'Renders the first snapshot of new pages (0017) and announces it (version * 256). Owner '
    'only.';

-- --------------------------------------------------------------------------------------------
-- The triggers: one function per table, one statement-level trigger per event (a trigger with
-- transition tables has one event). TG_OP says which transition tables exist.

CREATE FUNCTION statusdb_status_page_snapshot() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM statusdb_page_snapshot_create(ARRAY(SELECT n.id FROM new_rows n));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM statusdb_page_snapshot_refresh(ARRAY(SELECT n.id FROM new_rows n));
    END IF;
    -- DELETE: the snapshot goes with the page (ON DELETE CASCADE).
    RETURN NULL;
END;
$$;

CREATE FUNCTION statusdb_status_page_component_snapshot() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM statusdb_page_snapshot_refresh(
            ARRAY(SELECT DISTINCT n.status_page_id FROM new_rows n));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM statusdb_page_snapshot_refresh(
            ARRAY(SELECT DISTINCT o.status_page_id FROM old_rows o));
    ELSE
        -- Only rows whose shown columns changed (manual_status, team_id, ... are not shown;
        -- a rendering that comes out the same would keep its version anyway).
        PERFORM statusdb_page_snapshot_refresh(ARRAY(
            SELECT DISTINCT n.status_page_id
            FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE (n.name, n.description, n.display_order, n.current_status,
                   n.status_updated_at)
                  IS DISTINCT FROM
                  (o.name, o.description, o.display_order, o.current_status,
                   o.status_updated_at)));
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION statusdb_status_incident_snapshot() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM statusdb_page_snapshot_refresh(
            ARRAY(SELECT DISTINCT n.status_page_id FROM new_rows n));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM statusdb_page_snapshot_refresh(
            ARRAY(SELECT DISTINCT o.status_page_id FROM old_rows o));
    ELSE
        PERFORM statusdb_page_snapshot_refresh(
            ARRAY(SELECT n.status_page_id FROM new_rows n
                  UNION SELECT o.status_page_id FROM old_rows o));
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION statusdb_maintenance_window_snapshot() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM statusdb_page_snapshot_refresh(
            ARRAY(SELECT DISTINCT n.status_page_id FROM new_rows n));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM statusdb_page_snapshot_refresh(
            ARRAY(SELECT DISTINCT o.status_page_id FROM old_rows o));
    ELSE
        PERFORM statusdb_page_snapshot_refresh(ARRAY(
            SELECT DISTINCT n.status_page_id
            FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE (n.status_page_id, n.title, n.description, n.status, n.start_time, n.end_time)
                  IS DISTINCT FROM
                  (o.status_page_id, o.title, o.description, o.status, o.start_time,
                   o.end_time)));
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION statusdb_maintenance_window_component_snapshot() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    -- The window's page (a window deleted with its components: its own trigger refreshes it).
    IF TG_OP = 'INSERT' THEN
        PERFORM statusdb_page_snapshot_refresh(ARRAY(
            SELECT DISTINCT w.status_page_id
            FROM maintenance_window w
            WHERE w.id IN (SELECT n.maintenance_window_id FROM new_rows n)));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM statusdb_page_snapshot_refresh(ARRAY(
            SELECT DISTINCT w.status_page_id
            FROM maintenance_window w
            WHERE w.id IN (SELECT o.maintenance_window_id FROM old_rows o)));
    ELSE
        PERFORM statusdb_page_snapshot_refresh(ARRAY(
            SELECT DISTINCT w.status_page_id
            FROM maintenance_window w
            WHERE w.id IN (SELECT n.maintenance_window_id FROM new_rows n
                           UNION SELECT o.maintenance_window_id FROM old_rows o)));
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION statusdb_status_page_snapshot() IS
    'Statement trigger of status_page (0017): first snapshot of new pages, re-render of changed.';
COMMENT ON FUNCTION statusdb_status_page_component_snapshot() IS
    'Statement trigger of status_page_component (0017): re-renders the pages whose shown '
    'component columns changed.';
COMMENT ON FUNCTION statusdb_status_incident_snapshot() IS
    'Statement trigger of status_incident (0017): re-renders the incidents'' pages.';
COMMENT ON FUNCTION statusdb_maintenance_window_snapshot() IS
    'Statement trigger of maintenance_window (0017): re-renders the pages of changed windows.';
COMMENT ON FUNCTION statusdb_maintenance_window_component_snapshot() IS
    'Statement trigger of maintenance_window_component (0017): re-renders the windows'' pages.';

CREATE TRIGGER status_page_snapshot_insert AFTER INSERT ON status_page
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION statusdb_status_page_snapshot();
CREATE TRIGGER status_page_snapshot_update AFTER UPDATE ON status_page
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION statusdb_status_page_snapshot();

CREATE TRIGGER status_page_component_snapshot_insert AFTER INSERT ON status_page_component
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION statusdb_status_page_component_snapshot();
CREATE TRIGGER status_page_component_snapshot_update AFTER UPDATE ON status_page_component
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION statusdb_status_page_component_snapshot();
CREATE TRIGGER status_page_component_snapshot_delete AFTER DELETE ON status_page_component
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION statusdb_status_page_component_snapshot();

CREATE TRIGGER status_incident_snapshot_insert AFTER INSERT ON status_incident
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION statusdb_status_incident_snapshot();
CREATE TRIGGER status_incident_snapshot_update AFTER UPDATE ON status_incident
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION statusdb_status_incident_snapshot();
CREATE TRIGGER status_incident_snapshot_delete AFTER DELETE ON status_incident
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION statusdb_status_incident_snapshot();

CREATE TRIGGER maintenance_window_snapshot_insert AFTER INSERT ON maintenance_window
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION statusdb_maintenance_window_snapshot();
CREATE TRIGGER maintenance_window_snapshot_update AFTER UPDATE ON maintenance_window
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION statusdb_maintenance_window_snapshot();
CREATE TRIGGER maintenance_window_snapshot_delete AFTER DELETE ON maintenance_window
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION statusdb_maintenance_window_snapshot();

CREATE TRIGGER maintenance_window_component_snapshot_insert
    AFTER INSERT ON maintenance_window_component
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION statusdb_maintenance_window_component_snapshot();
CREATE TRIGGER maintenance_window_component_snapshot_update
    AFTER UPDATE ON maintenance_window_component
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION statusdb_maintenance_window_component_snapshot();
CREATE TRIGGER maintenance_window_component_snapshot_delete
    AFTER DELETE ON maintenance_window_component
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION statusdb_maintenance_window_component_snapshot();

-- --------------------------------------------------------------------------------------------
-- The repair: re-render every page, report and fix drift.

CREATE FUNCTION statusdb_page_snapshot_repair(repair boolean)
RETURNS TABLE (page_id text, stored_version bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    missing text[];
    drifted text[];
BEGIN
    -- One pass over the pages (the operator's repair, as statusdb_recompute_statuses: no
    -- argument to bound). Pages without a snapshot are reported with a null version.
    missing := ARRAY(SELECT p.id FROM status_page p
                     WHERE NOT EXISTS (SELECT 1 FROM status_page_snapshot s
                                       WHERE s.page_id = p.id)
                     ORDER BY p.id);
    drifted := ARRAY(
        SELECT s.page_id
        FROM status_page_snapshot s
        JOIN statusdb_page_render(ARRAY(SELECT p.id FROM status_page p)) AS r
          ON r.page_id = s.page_id
        WHERE (s.slug, s.is_public, s.access_token_hash, s.name, s.description, s.updated_at,
               s.components::text, s.incidents::text, s.windows::text,
               s.window_starts, s.window_scheduled)
              IS DISTINCT FROM
              (r.slug, r.is_public, r.access_token_hash, r.name, r.description, r.updated_at,
               r.components::text, r.incidents::text, r.windows::text,
               r.window_starts, r.window_scheduled)
        ORDER BY s.page_id);
    RETURN QUERY
    SELECT m, NULL::bigint FROM unnest(missing) AS m
    UNION ALL
    SELECT s.page_id, s.version * 256 FROM status_page_snapshot s
    WHERE s.page_id = ANY (drifted)
    ORDER BY 1;
    IF repair THEN
        PERFORM statusdb_page_snapshot_create(missing);
        PERFORM statusdb_page_snapshot_refresh(drifted);
    END IF;
END;
$$;

COMMENT ON FUNCTION statusdb_page_snapshot_repair(boolean) IS
    'Pages whose snapshot is missing (null version) or differs from a rendering from scratch '
    '(0017), with the lowest version its readers were given (snapshot version * 256); '
    're-rendered when repair is true. One pass over every page.';

-- --------------------------------------------------------------------------------------------
-- The page view: one index lookup of the snapshot row. A new signature (if_version, and the
-- version columns), so the old function is dropped and the grants restated.

-- Callers of the four-argument form keep working (if_version defaults to null) and get three
-- more columns; psycopg and SQL clients select columns by name.
-- squawk-ignore ban-drop-function
DROP FUNCTION statusdb_page_view(text, bytea, interval, integer);

CREATE FUNCTION statusdb_page_view(
    page_slug text, page_token_hash bytea, maintenance_horizon interval, maintenance_limit integer,
    if_version bigint DEFAULT NULL
)
RETURNS TABLE (
    id text, name text, description text, slug text, is_public boolean, updated_at timestamptz,
    components json, incidents json, maintenance json, version bigint, fresh_until timestamptz,
    not_modified boolean
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
    SELECT s.page_id, v.name, v.description, s.slug, s.is_public, v.updated_at,
           v.components, v.incidents, v.maintenance, t.version, t.fresh_until, v.name IS NULL
    FROM status_page_snapshot s
    -- Time: k = the SCHEDULED candidates already in the horizon, which with the snapshot's
    -- version names the body (see the top); the first one not in it yet enters at its
    -- start - horizon. With the limit 0 nothing is shown, whatever the clock: k = 0.
    CROSS JOIN LATERAL (
        SELECT s.version * 256
                   + least(count(*) FILTER (WHERE u.start_time < now() + horizon), 255)
                   AS version,
               min(u.start_time) FILTER (WHERE u.start_time >= now() + horizon) - horizon
                   AS fresh_until
        FROM unnest(s.window_starts, s.window_scheduled) AS u (start_time, scheduled)
        WHERE u.scheduled AND window_limit > 0
    ) AS t
    -- The body, unless the caller has this version: then not even sent.
    LEFT JOIN LATERAL (
        SELECT s.name, s.description, s.updated_at, s.components, s.incidents,
               CASE WHEN window_limit = 0 OR cardinality(s.window_starts) = 0 THEN '[]'::json
                    ELSE (SELECT coalesce(json_agg(e.item ORDER BY e.n), '[]')
                          FROM (SELECT w.item, w.n
                                FROM json_array_elements(s.windows) WITH ORDINALITY
                                     AS w (item, n)
                                WHERE NOT s.window_scheduled[w.n]
                                   OR s.window_starts[w.n] < now() + horizon
                                ORDER BY w.n
                                LIMIT window_limit) AS e)
               END AS maintenance
        WHERE if_version IS DISTINCT FROM t.version
    ) AS v ON true
    WHERE s.slug = page_slug
      AND (s.is_public OR s.access_token_hash = stored_hash);
END;
$$;

COMMENT ON FUNCTION statusdb_page_view(text, bytea, interval, integer, bigint) IS
    'A status page as its readers see it, read from its snapshot (0017); private pages only with '
    'the SHA-256 digest of their access token. Horizon 0 to 366 days (null: 7 days), limit 0 to '
    '200 windows (null: 20). version (snapshot version * 256 + the scheduled candidates in the '
    'horizon: it names the body for this horizon and limit, and only increases) and fresh_until '
    '(next time-driven change, null: none) always; with if_version equal to version, '
    'not_modified is true and the body columns are null.';

-- --------------------------------------------------------------------------------------------
-- Who may execute what (0014's rule): the page view as before; the repair for statusdb_app
-- (status.recompute's peer); the rest is the owner's.

REVOKE EXECUTE ON FUNCTION
    statusdb_page_view(text, bytea, interval, integer, bigint),
    statusdb_page_render(text[]),
    statusdb_page_snapshot_refresh(text[]),
    statusdb_page_snapshot_create(text[]),
    statusdb_page_snapshot_repair(boolean),
    statusdb_status_page_snapshot(),
    statusdb_status_page_component_snapshot(),
    statusdb_status_incident_snapshot(),
    statusdb_maintenance_window_snapshot(),
    statusdb_maintenance_window_component_snapshot()
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION statusdb_page_view(text, bytea, interval, integer, bigint)
    TO statusdb_app, statusdb_reader;
GRANT EXECUTE ON FUNCTION statusdb_page_snapshot_repair(boolean) TO statusdb_app;

-- --------------------------------------------------------------------------------------------
-- Versions start at the clock (microseconds since 1970): a 0017 rolled back and applied again
-- never hands out a version that an earlier one did (an HTTP cache keyed on an ETag of the old
-- versions cannot match a different page state). About 2^50.7 in 2026, below the sequence's
-- MAXVALUE 2^55 - 1 for about eleven centuries; readers see it times 256 plus at most 255, below
-- 2^63 (see the top). Then every existing page's first snapshot.
DO $$
BEGIN
    PERFORM setval('status_page_snapshot_version_seq',
                   (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
    PERFORM statusdb_page_snapshot_create(ARRAY(SELECT p.id FROM status_page p ORDER BY p.id));
END;
$$;
