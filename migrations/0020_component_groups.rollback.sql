-- Reverts 0020_component_groups: no groups, no group followers; 0017's page snapshot (renderer,
-- refresh, repair, page view: every page rendered again without groups), 0012's repair and
-- component cleanup, 0010's fan-out index.

-- squawk-ignore-file ban-drop-table, ban-drop-column, ban-drop-constraint, ban-drop-function
-- squawk-ignore-file ban-drop-view, require-concurrent-index-deletion

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

-- Refuses while it would lose something (statusdb.allow_data_loss = on, `statusdb rollback
-- --allow-data-loss`): groups (with their members' membership and their status log), and
-- subscribers following groups (they would then follow every component of the page).
DO $$
DECLARE
    groups bigint;
    followers bigint;
BEGIN
    IF current_setting('statusdb.allow_data_loss', true) = 'on' THEN
        RETURN;
    END IF;
    SELECT count(*) INTO groups FROM component_group;
    SELECT count(*) INTO followers FROM status_subscriber s WHERE s.group_ids <> '{}';
    IF groups > 0 OR followers > 0 THEN
        RAISE EXCEPTION 'rolling back 0020_component_groups would lose data: component_group has '
                        '% rows (their membership and status log would go), and % subscribers '
                        'follow groups (they would follow every component). %',
                        groups, followers,
            'Pass --allow-data-loss to statusdb rollback (plain yoyo: '
            'PGOPTIONS=''-c statusdb.allow_data_loss=on'') to roll back anyway.'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END;
$$;

-- 0017's page snapshot functions, exactly as 0017 created them.
-- The groups leave the page snapshot: 0017's renderer, refresh/create/repair, component
-- trigger and page view come back as they were (every page is rendered again at the end, once
-- the groups are gone).
DROP TRIGGER component_group_snapshot_insert ON component_group;
DROP TRIGGER component_group_snapshot_update ON component_group;
DROP TRIGGER component_group_snapshot_delete ON component_group;
DROP FUNCTION statusdb_component_group_snapshot();

DROP FUNCTION statusdb_page_view(text, bytea, interval, integer, bigint);
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

REVOKE EXECUTE ON FUNCTION statusdb_page_view(text, bytea, interval, integer, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION statusdb_page_view(text, bytea, interval, integer, bigint)
    TO statusdb_app, statusdb_reader;

DROP FUNCTION statusdb_page_render(text[]);
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

REVOKE EXECUTE ON FUNCTION statusdb_page_render(text[]) FROM PUBLIC;

CREATE OR REPLACE FUNCTION statusdb_page_snapshot_refresh(page_ids text[]) RETURNS void
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

CREATE OR REPLACE FUNCTION statusdb_page_snapshot_create(page_ids text[]) RETURNS void
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

CREATE OR REPLACE FUNCTION statusdb_page_snapshot_repair(repair boolean)
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

CREATE OR REPLACE FUNCTION statusdb_status_page_component_snapshot() RETURNS trigger
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

COMMENT ON FUNCTION statusdb_status_page_component_snapshot() IS
    'Statement trigger of status_page_component (0017): re-renders the pages whose shown '
    'component columns changed.';

ALTER TABLE status_page_snapshot DROP COLUMN groups;
-- (End of 0017's page snapshot functions.)

CREATE OR REPLACE FUNCTION statusdb_recompute_statuses(repair boolean)
RETURNS TABLE (component_id text, current_status text, derived_status text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    drifted text[];
BEGIN
    IF repair THEN
        IF current_setting('transaction_isolation') = 'repeatable read' THEN
            RAISE EXCEPTION 'component statuses cannot be re-derived in a REPEATABLE READ '
                            'transaction'
                USING ERRCODE = 'invalid_transaction_state',
                      HINT = 'Use READ COMMITTED (the default) or SERIALIZABLE.';
        END IF;
        PERFORM 1 FROM status_lock l WHERE l.slot = 0 FOR UPDATE;
        IF NOT FOUND THEN  -- first use
            INSERT INTO status_lock (slot) VALUES (0) ON CONFLICT DO NOTHING;
            PERFORM 1 FROM status_lock l WHERE l.slot = 0 FOR UPDATE;
        END IF;
    END IF;
    SELECT coalesce(array_agg(d.component_id ORDER BY d.component_id), '{}')
    INTO drifted
    FROM statusdb_component_derived_status d
    WHERE d.current_status IS DISTINCT FROM d.derived_status;

    RETURN QUERY
    SELECT d.component_id, d.current_status, d.derived_status
    FROM statusdb_component_derived_status d
    WHERE d.component_id = ANY (drifted)
    ORDER BY d.component_id;

    IF repair AND cardinality(drifted) > 0 THEN
        INSERT INTO status_repair (xid) VALUES (pg_current_xact_id()) ON CONFLICT DO NOTHING;
        PERFORM statusdb_rederive_components(drifted, 'MANUAL', NULL, NULL);
        DELETE FROM status_repair r WHERE r.xid = pg_current_xact_id();
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION statusdb_status_page_component_forget_ids() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE public.status_subscriber s
    SET component_ids = array_remove(s.component_ids, OLD.id),
        is_active = s.is_active AND cardinality(array_remove(s.component_ids, OLD.id)) > 0
    WHERE s.status_page_id = OLD.status_page_id AND s.component_ids @> ARRAY[OLD.id];

    UPDATE public.status_incident i
    SET affected_component_ids = array_remove(i.affected_component_ids, OLD.id)
    WHERE i.status_page_id = OLD.status_page_id AND i.affected_component_ids @> ARRAY[OLD.id];
    RETURN OLD;
END;
$$;

DROP TRIGGER component_group_forget_ids ON component_group;
DROP TRIGGER status_subscriber_check_group_ids ON status_subscriber;
DROP TRIGGER component_group_roll_up_update ON component_group;
DROP TRIGGER component_group_roll_up_delete ON component_group;
DROP TRIGGER status_page_component_roll_up_insert ON status_page_component;
DROP TRIGGER status_page_component_roll_up_update ON status_page_component;
DROP TRIGGER status_page_component_roll_up_delete ON status_page_component;
DROP VIEW statusdb_group_derived_status;
-- 0018's notification predicate (without group followers).
CREATE OR REPLACE FUNCTION statusdb_notification_recipients(
    page_id text, event_component_ids text[], kinds text[], folded_kinds text[]
) RETURNS TABLE (subscriber_id text, channel text, destination text)
LANGUAGE sql
STABLE
AS $$
    SELECT s.id, s.channel, s.destination
    FROM public.status_subscriber s
    WHERE s.status_page_id = page_id
      AND s.component_ids = '{}'
      AND s.is_active
      AND s.is_verified
      AND s.notify_on && kinds
      AND NOT (s.notify_on && folded_kinds)
    UNION ALL
    SELECT s.id, s.channel, s.destination
    -- Gated like the third branch: a page-wide event skips it whole (under row-level security
    -- the GIN index cannot serve && and the planner would read the page's followers for none).
    FROM (SELECT WHERE cardinality(event_component_ids) > 0) AS some_components
    CROSS JOIN public.status_subscriber s
    WHERE s.component_ids && event_component_ids
      AND s.component_ids <> '{}'
      AND s.is_active
      AND s.is_verified
      AND s.status_page_id = page_id
      AND s.notify_on && kinds
      AND NOT (s.notify_on && folded_kinds)
    UNION ALL
    SELECT s.id, s.channel, s.destination
    -- The gate as a relation of its own: for an event with components the planner drops the
    -- branch whole (a constant-false qual beside row-level security's would not be).
    FROM (SELECT WHERE cardinality(event_component_ids) = 0) AS page_wide
    CROSS JOIN public.status_subscriber s
    WHERE s.status_page_id = page_id
      AND s.component_ids <> '{}'
      AND s.is_active
      AND s.is_verified
      AND s.notify_on && kinds
      AND NOT (s.notify_on && folded_kinds)
$$;

COMMENT ON FUNCTION statusdb_notification_recipients(text, text[], text[], text[]) IS
    'Who is told: active, verified subscribers of the page wanting one of kinds and none of '
    'folded_kinds, following one of the components (or all; none given: the whole page). '
    'One row per subscriber.';

DROP FUNCTION statusdb_component_group_path(text);
DROP FUNCTION statusdb_component_group_forget_ids();
DROP FUNCTION statusdb_status_subscriber_check_group_ids();
DROP FUNCTION statusdb_check_group_ids(text, text[], text);
DROP FUNCTION statusdb_recompute_group_statuses(boolean);
DROP FUNCTION statusdb_component_group_roll_up();
DROP FUNCTION statusdb_status_page_component_roll_up();
DROP FUNCTION statusdb_refresh_groups(text[]);
DROP FUNCTION statusdb_group_closure(text[]);
DROP FUNCTION statusdb_derive_group_statuses(text[]);

-- squawk-ignore require-concurrent-index-creation
CREATE INDEX IF NOT EXISTS status_subscriber_fan_out_all_idx
    ON status_subscriber (status_page_id, id) INCLUDE (channel, destination, notify_on)
    WHERE component_ids = '{}' AND is_active AND is_verified;
DROP INDEX status_subscriber_fan_out_everything_idx;
DROP INDEX status_subscriber_fan_out_group_idx;
ALTER TABLE status_subscriber
    DROP CONSTRAINT status_subscriber_group_ids_check,
    DROP COLUMN group_ids;

DROP TABLE component_group_status_change;
DROP INDEX status_page_component_group_id_status_page_id_idx;
ALTER TABLE status_page_component
    DROP CONSTRAINT status_page_component_group_id_fkey,
    DROP COLUMN group_id;
DROP TABLE component_group;
DROP FUNCTION statusdb_component_group_guard();
DROP FUNCTION statusdb_component_group_check_tree();

-- Every page rendered again by 0017's renderer (no groups, components without a group id).
DO $$
BEGIN
    PERFORM statusdb_page_snapshot_refresh(ARRAY(SELECT p.id FROM status_page p ORDER BY p.id));
END;
$$;
