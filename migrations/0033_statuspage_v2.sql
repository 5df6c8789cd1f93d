-- statusdb 0033: the Statuspage v2 public format (issue 24, item 1), rendered from the page's
-- snapshot so that private pages stay private and versions / not-modified reads keep working.
-- depends: 0028_page_view_bytes
--
-- * status_page_snapshot.history: what the Statuspage documents show beyond the page view,
--   rendered with the snapshot by the writers' triggers (statusdb_page_render_history): the
--   page's time zone, created_at/updated_at of its components, groups and shown maintenance
--   windows ("stamps", by id), its 50 most recently resolved status incidents ("resolved") and
--   50 most recently completed maintenance windows ("completed"). The refresh compares it with
--   the rest, so an edit of a resolved incident moves the page's version like any other change
--   of what a reader sees: the version stays the ETag of every document of the page.
--   statusdb_page_render is left as it is (its callers add the history beside it).
-- * statusdb_page_statuspage(slug, token digest, horizon, limit, if_version, document): the
--   lookup of statusdb_page_view_bytes (same access rule, bounds, version and fresh_until;
--   with if_version the version, nothing else runs and body is null), then one Statuspage v2
--   document as text, composed from the snapshot row: summary, status, components, incidents,
--   incidents/unresolved, scheduled-maintenances(/upcoming, /active).
--   Times are ISO 8601 with milliseconds in the page's zone with its offset at each instant
--   (Statuspage writes local times: DST moves the offset), whatever the caller's settings.

-- history has a constant default: PostgreSQL adds it without a rewrite, and the refresh at
-- the end fills it before any reader can see the column.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

ALTER TABLE status_page_snapshot
    ADD COLUMN history json NOT NULL DEFAULT '{}';

COMMENT ON COLUMN status_page_snapshot.history IS
    'What the Statuspage v2 documents show beyond the page view (0033), rendered by '
    'statusdb_page_render_history: {"time_zone", "stamps": {id: [created_at, updated_at]} of '
    'components, groups and windows, "resolved": the 50 latest resolved status incidents '
    '(render''s incident shape, the 25 latest updates, + resolved_at and the number of updates '
    'dropped), "completed": the 50 latest completed windows '
    '(render''s window shape)}.';

CREATE FUNCTION statusdb_page_render_history(page_ids text[])
RETURNS TABLE (page_id text, history json)
LANGUAGE plpgsql STABLE
SET "TimeZone" = 'UTC'
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT p.id,
           json_build_object(
               'time_zone', p.time_zone,
               'stamps', coalesce((SELECT json_object_agg(st.id, json_build_array(st.created_at,
                                                                                 st.updated_at))
                                   FROM (SELECT c.id, c.created_at, c.updated_at
                                         FROM status_page_component c
                                         WHERE c.status_page_id = p.id
                                         UNION ALL
                                         SELECT g.id, g.created_at, g.updated_at
                                         FROM component_group g
                                         WHERE g.status_page_id = p.id
                                         UNION ALL
                                         (SELECT w.id, w.created_at, w.updated_at
                                          FROM maintenance_window w
                                          WHERE w.status_page_id = p.id
                                            AND w.status = 'IN_PROGRESS'
                                          ORDER BY w.start_time, w.id
                                          LIMIT 200)
                                         UNION ALL
                                         (SELECT w.id, w.created_at, w.updated_at
                                          FROM maintenance_window w
                                          WHERE w.status_page_id = p.id
                                            AND w.status = 'SCHEDULED'
                                          ORDER BY w.start_time, w.id
                                          LIMIT 200)) AS st), '{}'),
               'resolved', r.items,
               'completed', d.items)
    FROM status_page p
    CROSS JOIN LATERAL (
        -- A resolved incident keeps its 25 latest updates here (a timeline may hold 500), and
        -- how many earlier ones it dropped (the readers' update ids count from the first).
        SELECT coalesce(json_agg(json_build_array(
                   i.id, i.title, i.message, i.severity, i.status, i.affected_component_ids,
                   i.created_at, i.updated_at,
                   CASE WHEN jsonb_array_length(i.updates) <= 25 THEN i.updates
                        ELSE (SELECT jsonb_agg(u.item ORDER BY u.n)
                              FROM jsonb_array_elements(i.updates) WITH ORDINALITY AS u (item, n)
                              WHERE u.n > jsonb_array_length(i.updates) - 25) END,
                   i.resolved_at, greatest(jsonb_array_length(i.updates) - 25, 0))
                                 ORDER BY i.resolved_at DESC, i.id DESC), '[]') AS items
        FROM (SELECT i.* FROM status_incident i
              WHERE i.status_page_id = p.id AND i.status = 'RESOLVED'
              ORDER BY i.resolved_at DESC, i.id DESC
              LIMIT 50) AS i
    ) AS r
    CROSS JOIN LATERAL (
        SELECT coalesce(json_agg(json_build_array(w.id, w.title, w.description, w.status,
                                                  w.start_time, w.end_time,
                                                  ARRAY(SELECT mc.component_id
                                                        FROM maintenance_window_component mc
                                                        WHERE mc.maintenance_window_id = w.id
                                                        ORDER BY mc.component_id),
                                                  w.created_at, w.updated_at)
                                 ORDER BY w.start_time DESC, w.id DESC), '[]') AS items
        FROM (SELECT w.* FROM maintenance_window w
              WHERE w.status_page_id = p.id AND w.status = 'COMPLETED'
              ORDER BY w.start_time DESC, w.id DESC
              LIMIT 50) AS w
    ) AS d
    WHERE p.id = ANY (page_ids);
END;
$$;

COMMENT ON FUNCTION statusdb_page_render_history(text[]) IS
    'status_page_snapshot.history of the given pages from scratch (0033), one row per existing '
    'page: {"time_zone", "stamps": {id: [created_at, updated_at]} of the components, groups '
    'and the windows statusdb_page_render shows, "resolved": [[id, title, message, severity, '
    'status, affected_component_ids, created_at, updated_at, updates (the 25 latest), '
    'resolved_at, updates dropped], ...] the 50 latest by resolved_at, "completed": [[id, '
    'title, description, status, start_time, '
    'end_time, component_ids, created_at, updated_at], ...] the 50 latest by start_time}, '
    'timestamps in UTC. Owner only (the refresh, the create and the repair).';

REVOKE EXECUTE ON FUNCTION statusdb_page_render_history(text[]) FROM PUBLIC;

-- The snapshot's writers render the history beside the page view, and a changed history is a
-- changed rendering (a new version). Bodies as 0020/0028 left them, plus history.
CREATE OR REPLACE FUNCTION statusdb_page_snapshot_refresh(page_ids text[])
RETURNS void
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
        SELECT r.*, h.history FROM statusdb_page_render(page_ids) AS r
        JOIN statusdb_page_render_history(page_ids) AS h ON h.page_id = r.page_id
    ),
    changed AS (
        UPDATE status_page_snapshot s
        SET version = nextval('status_page_snapshot_version_seq'),
            slug = r.slug, is_public = r.is_public, access_token_hash = r.access_token_hash,
            name = r.name, description = r.description, updated_at = r.updated_at,
            components = r.components, incidents = r.incidents, windows = r.windows,
            window_starts = r.window_starts, window_scheduled = r.window_scheduled, groups = r.groups,
            -- An unchanged history keeps its stored value (its TOAST pointer: not written
            -- again when only the page view changed, the common write during an outage).
            history = CASE WHEN s.history::text = r.history::text THEN s.history
                           ELSE r.history END
        FROM rendered r
        WHERE s.page_id = r.page_id
          AND (s.slug, s.is_public, s.access_token_hash, s.name, s.description, s.updated_at,
               s.components::text, s.incidents::text, s.windows::text, s.groups::text,
               s.history::text)
              IS DISTINCT FROM
              (r.slug, r.is_public, r.access_token_hash, r.name, r.description, r.updated_at,
               r.components::text, r.incidents::text, r.windows::text, r.groups::text,
               r.history::text)
        RETURNING s.version
    )
    -- The lowest version readers of the new rendering see (k = 0).
    SELECT count(pg_notify('statusdb_page_version', (changed.version * 256)::text))
    INTO STRICT announced
    FROM changed;
END;
$$;

CREATE OR REPLACE FUNCTION statusdb_page_snapshot_create(page_ids text[])
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    announced bigint;
BEGIN
    WITH created AS (
        INSERT INTO status_page_snapshot (page_id, version, slug, is_public, access_token_hash,
                                          name, description, updated_at, components,
                                          incidents, windows, window_starts, window_scheduled, groups,
                                          history)
        SELECT r.page_id, nextval('status_page_snapshot_version_seq'), r.slug, r.is_public,
               r.access_token_hash, r.name, r.description, r.updated_at, r.components,
               r.incidents, r.windows, r.window_starts, r.window_scheduled, r.groups, h.history
        FROM statusdb_page_render(page_ids) AS r
        JOIN statusdb_page_render_history(page_ids) AS h ON h.page_id = r.page_id
        ORDER BY r.page_id
        ON CONFLICT (page_id) DO NOTHING
        RETURNING version
    )
    SELECT count(pg_notify('statusdb_page_version', (created.version * 256)::text))
    INTO STRICT announced
    FROM created;
END;
$$;

CREATE OR REPLACE FUNCTION statusdb_page_snapshot_repair(repair boolean)
RETURNS TABLE (page_id text, stored_version bigint)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    missing text[];
    drifted text[];
    all_pages text[];
BEGIN
    -- One pass over the pages (the operator's repair, as statusdb_recompute_statuses: no
    -- argument to bound). Pages without a snapshot are reported with a null version.
    missing := ARRAY(SELECT p.id FROM status_page p
                     WHERE NOT EXISTS (SELECT 1 FROM status_page_snapshot s
                                       WHERE s.page_id = p.id)
                     ORDER BY p.id);
    all_pages := ARRAY(SELECT p.id FROM status_page p);
    drifted := ARRAY(
        SELECT s.page_id
        FROM status_page_snapshot s
        JOIN statusdb_page_render(all_pages) AS r
          ON r.page_id = s.page_id
        JOIN statusdb_page_render_history(all_pages) AS h
          ON h.page_id = s.page_id
        WHERE (s.slug, s.is_public, s.access_token_hash, s.name, s.description, s.updated_at,
               s.components::text, s.incidents::text, s.windows::text,
               s.window_starts, s.window_scheduled, s.groups::text, s.history::text)
              IS DISTINCT FROM
              (r.slug, r.is_public, r.access_token_hash, r.name, r.description, r.updated_at,
               r.components::text, r.incidents::text, r.windows::text,
               r.window_starts, r.window_scheduled, r.groups::text, h.history::text)
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

CREATE FUNCTION statusdb_page_statuspage(page_slug text, page_token_hash bytea,
                                         maintenance_horizon interval, maintenance_limit integer,
                                         if_version bigint, document text)
RETURNS TABLE (version bigint, fresh_until timestamptz, body text)
LANGUAGE plpgsql STABLE SECURITY DEFINER ROWS 1
SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    horizon interval := coalesce(maintenance_horizon, interval '7 days');
    window_limit integer := coalesce(maintenance_limit, 20);
    stored_hash bytea;
    found_page text;
    s status_page_snapshot;
    zone text;
    page_json json;
    components_json json;
    -- Statuspage's times: ISO 8601 with milliseconds and the offset (of the page's zone, set
    -- below, at each instant).
    t_format constant text := 'YYYY-MM-DD"T"HH24:MI:SS.MSTZH:TZM';
    extra jsonb;  -- the snapshot's history, parsed
    caller_zone text := current_setting('TimeZone');
    stamps jsonb;
    by_id jsonb;
    component_objects json[];
    incidents_json json;
    windows_json json;
    status_json json;
    result json;
BEGIN
    IF horizon < interval '0' OR horizon > interval '366 days' THEN
        RAISE EXCEPTION 'maintenance_horizon must be from 0 to 366 days, not %', horizon
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF window_limit < 0 OR window_limit > 200 THEN
        RAISE EXCEPTION 'maintenance_limit must be from 0 to 200, not %', window_limit
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF document IS NULL OR document NOT IN ('summary', 'status', 'components', 'incidents',
                                            'incidents/unresolved', 'scheduled-maintenances',
                                            'scheduled-maintenances/upcoming',
                                            'scheduled-maintenances/active') THEN
        RAISE EXCEPTION 'document must be a Statuspage v2 document name, not %', document
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(page_slug) > 100 THEN
        RETURN;  -- no slug is that long: like an unknown slug
    END IF;
    IF octet_length(page_token_hash) = 32 THEN
        stored_hash := sha256(page_token_hash);
    END IF;
    -- The lookup of statusdb_page_view_bytes: the slug index, the access rule, k.
    SELECT s.page_id, s.version * 256 + least(w.k, 255),
           CASE WHEN window_limit > 0 THEN s.scheduled_starts[w.k + 1] - horizon END
    INTO found_page, version, fresh_until
    FROM status_page_snapshot s
    CROSS JOIN LATERAL (
        SELECT CASE WHEN window_limit > 0
                    THEN width_bucket(now() + horizon - interval '1 microsecond',
                                      s.scheduled_starts)
                    ELSE 0 END AS k
    ) AS w
    WHERE s.slug = page_slug
      AND (s.is_public OR s.access_token_hash = stored_hash)
    LIMIT 1;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF version = if_version THEN
        RETURN NEXT;  -- not modified: nothing else runs
        RETURN;
    END IF;
    SELECT * INTO STRICT s FROM status_page_snapshot WHERE page_id = found_page;
    -- The stored json texts are parsed once, as jsonb (a json value is parsed again by each ->).
    extra := s.history::jsonb;
    zone := coalesce(extra ->> 'time_zone', 'UTC');
    -- The page's zone while composing: to_char's TZH:TZM then write each instant's offset in
    -- it. The caller's setting is put back before returning (an error rolls the change back
    -- with the statement or savepoint).
    PERFORM set_config('TimeZone', zone, true);
    stamps := coalesce(extra -> 'stamps', '{}');
    page_json := json_build_object(
        'id', s.page_id, 'name', s.name, 'url', NULL, 'time_zone', zone,
        'updated_at', to_char(s.updated_at, t_format));
    -- Components, then groups (Statuspage lists groups as components with group = true).
    IF document <> 'status' THEN
    WITH c AS (
        SELECT c.item ->> 0 AS id, c.n, c.item ->> 6 AS group_id,
               json_build_object(
                   'id', c.item ->> 0, 'name', c.item ->> 1,
                   'status', lower(c.item ->> 4),
                   'created_at', to_char(
                       (stamps -> (c.item ->> 0) ->> 0)::timestamptz, t_format),
                   'updated_at', to_char(
                       (stamps -> (c.item ->> 0) ->> 1)::timestamptz, t_format),
                   'position', c.n, 'description', c.item -> 2, 'showcase', false,
                   'start_date', NULL, 'group_id', c.item -> 6, 'page_id', s.page_id,
                   'group', false, 'only_show_if_degraded', false) AS obj
        FROM jsonb_array_elements(s.components::jsonb) WITH ORDINALITY AS c (item, n)
    ),
    g AS (
        SELECT g.item ->> 0 AS id, g.n + (SELECT count(*) FROM c) AS n,
               json_build_object(
                   'id', g.item ->> 0, 'name', g.item ->> 1,
                   'status', lower(g.item ->> 5),
                   'created_at', to_char(
                       (stamps -> (g.item ->> 0) ->> 0)::timestamptz, t_format),
                   'updated_at', to_char(
                       (stamps -> (g.item ->> 0) ->> 1)::timestamptz, t_format),
                   'position', g.n + (SELECT count(*) FROM c), 'description', g.item -> 2,
                   'showcase', false, 'start_date', NULL, 'group_id', g.item -> 3,
                   'page_id', s.page_id, 'group', true, 'only_show_if_degraded', false,
                   'components', coalesce(
                       (SELECT json_agg(m.id ORDER BY m.n) FROM c AS m
                        WHERE m.group_id = g.item ->> 0), '[]')) AS obj
        FROM jsonb_array_elements(s.groups::jsonb) WITH ORDINALITY AS g (item, n)
    ),
    a AS (SELECT c.id, c.n, c.obj FROM c UNION ALL SELECT g.id, g.n, g.obj FROM g)
    SELECT coalesce(json_agg(a.obj ORDER BY a.n), '[]'),
           coalesce(jsonb_object_agg(a.id, a.n) FILTER (WHERE a.id IS NOT NULL), '{}'),
           coalesce(array_agg(a.obj ORDER BY a.n), '{}')
    INTO components_json, by_id, component_objects
    FROM a;
    END IF;
    -- The overall status: the worst of the components' and the unresolved incidents'.
    SELECT json_build_object(
               'indicator', CASE r.rank WHEN 3 THEN 'critical' WHEN 2 THEN 'major'
                                        WHEN 1 THEN 'minor' ELSE 'none' END,
               'description', CASE r.rank WHEN 3 THEN 'Major System Outage'
                                          WHEN 2 THEN 'Partial System Outage'
                                          WHEN 1 THEN 'Minor Service Outage'
                                          ELSE CASE WHEN r.maintenance
                                                    THEN 'Service Under Maintenance'
                                                    ELSE 'All Systems Operational' END END)
    INTO status_json
    FROM (SELECT coalesce(max(x.rank), 0) AS rank, coalesce(bool_or(x.maintenance), false)
                 AS maintenance
          FROM (SELECT CASE c.item ->> 4 WHEN 'MAJOR_OUTAGE' THEN 3 WHEN 'PARTIAL_OUTAGE' THEN 2
                                         WHEN 'DEGRADED_PERFORMANCE' THEN 1 ELSE 0 END AS rank,
                       c.item ->> 4 = 'UNDER_MAINTENANCE' AS maintenance
                FROM jsonb_array_elements(s.components::jsonb) AS c (item)
                UNION ALL
                SELECT CASE i.item ->> 3 WHEN 'CRITICAL' THEN 3 WHEN 'MAJOR' THEN 2 ELSE 1 END,
                       false
                FROM jsonb_array_elements(s.incidents::jsonb) AS i (item)) AS x) AS r;
    IF document IN ('summary', 'incidents', 'incidents/unresolved') THEN
        WITH i AS (
            SELECT i.item, NULL::text AS resolved_at
            FROM jsonb_array_elements(s.incidents::jsonb) AS i (item)
            UNION ALL
            SELECT i.item, i.item ->> 9
            FROM jsonb_array_elements(extra -> 'resolved') AS i (item)
            WHERE document = 'incidents'
        ),
        o AS (
            SELECT (i.item ->> 6)::timestamptz AS created, i.item ->> 0 AS id,
                   json_build_object(
                       'id', i.item ->> 0, 'name', i.item ->> 1, 'status', lower(i.item ->> 4),
                       'created_at', to_char((i.item ->> 6)::timestamptz, t_format),
                       'updated_at', to_char((i.item ->> 7)::timestamptz, t_format),
                       'monitoring_at', to_char(
                           (SELECT max((u.item ->> 'timestamp')::timestamptz)
                            FROM jsonb_array_elements(i.item -> 8) AS u (item)
                            WHERE u.item ->> 'status' = 'MONITORING'), t_format),
                       'resolved_at', to_char(i.resolved_at::timestamptz, t_format),
                       'impact', lower(i.item ->> 3), 'shortlink', NULL,
                       'started_at', to_char((i.item ->> 6)::timestamptz, t_format),
                       'page_id', s.page_id,
                       'incident_updates', coalesce(
                           (SELECT json_agg(json_build_object(
                                       'id', (i.item ->> 0) || '-'
                                             || (u.n + coalesce((i.item ->> 10)::bigint, 0)),
                                       'status', lower(u.item ->> 'status'),
                                       'body', u.item ->> 'message',
                                       'incident_id', i.item ->> 0,
                                       'created_at', to_char(
                                           (u.item ->> 'timestamp')::timestamptz, t_format),
                                       'updated_at', to_char(
                                           (u.item ->> 'timestamp')::timestamptz, t_format),
                                       'display_at', to_char(
                                           (u.item ->> 'timestamp')::timestamptz, t_format),
                                       'affected_components', NULL,
                                       'deliver_notifications', NULL,
                                       'custom_tweet', NULL, 'tweet_id', NULL)
                                   ORDER BY u.n DESC)
                            FROM jsonb_array_elements(i.item -> 8) WITH ORDINALITY AS u (item, n)),
                           '[]'),
                       'components', coalesce(
                           (SELECT json_agg(component_objects[(by_id ->> a.id)::bigint] ORDER BY a.n)
                            FROM jsonb_array_elements_text(i.item -> 5) WITH ORDINALITY
                                 AS a (id, n)
                            WHERE by_id -> a.id IS NOT NULL), '[]')) AS obj
            FROM i
        )
        SELECT coalesce(json_agg(t.obj ORDER BY t.created DESC, t.id DESC), '[]')
        INTO incidents_json
        FROM (SELECT o.* FROM o ORDER BY o.created DESC, o.id DESC LIMIT 50) AS t;
    END IF;
    IF document IN ('summary', 'scheduled-maintenances', 'scheduled-maintenances/upcoming',
                    'scheduled-maintenances/active') THEN
        WITH shown AS (
            -- The windows the page view shows (running, and scheduled ones in the horizon,
            -- the first window_limit), as statusdb_page_view_bytes filters them.
            SELECT w.item, w.n
            FROM jsonb_array_elements(s.windows::jsonb) WITH ORDINALITY AS w (item, n)
            WHERE window_limit > 0
              AND (NOT s.window_scheduled[w.n] OR s.window_starts[w.n] < now() + horizon)
            ORDER BY w.n
            LIMIT window_limit
        ),
        w AS (
            SELECT w.item, w.n, (stamps -> (w.item ->> 0)) AS stamps
            FROM shown AS w
            WHERE document IN ('summary', 'scheduled-maintenances')
               OR (document = 'scheduled-maintenances/upcoming' AND w.item ->> 3 = 'SCHEDULED')
               OR (document = 'scheduled-maintenances/active' AND w.item ->> 3 = 'IN_PROGRESS')
            UNION ALL
            SELECT w.item, 1000 + w.n, jsonb_build_array(w.item -> 7, w.item -> 8)
            FROM jsonb_array_elements(extra -> 'completed') WITH ORDINALITY AS w (item, n)
            WHERE document = 'scheduled-maintenances'
        ),
        o AS (
            SELECT w.n, (w.item ->> 4)::timestamptz AS starts,
                   json_build_object(
                       'id', w.item ->> 0, 'name', w.item ->> 1,
                       'status', CASE w.item ->> 3 WHEN 'SCHEDULED' THEN 'scheduled'
                                                   WHEN 'IN_PROGRESS' THEN 'in_progress'
                                                   ELSE 'completed' END,
                       'created_at', to_char((w.stamps ->> 0)::timestamptz, t_format),
                       'updated_at', to_char((w.stamps ->> 1)::timestamptz, t_format),
                       'monitoring_at', NULL, 'resolved_at', NULL, 'impact', 'maintenance',
                       'shortlink', NULL,
                       'started_at', to_char((w.item ->> 4)::timestamptz, t_format),
                       'page_id', s.page_id,
                       'incident_updates', json_build_array(json_build_object(
                           'id', (w.item ->> 0) || '-' || lower(w.item ->> 3),
                           'status', CASE w.item ->> 3 WHEN 'SCHEDULED' THEN 'scheduled'
                                                       WHEN 'IN_PROGRESS' THEN 'in_progress'
                                                       ELSE 'completed' END,
                           'body', coalesce(w.item ->> 2, w.item ->> 1),
                           'incident_id', w.item ->> 0,
                           'created_at', to_char((w.stamps ->> 1)::timestamptz, t_format),
                           'updated_at', to_char((w.stamps ->> 1)::timestamptz, t_format),
                           'display_at', to_char((w.stamps ->> 1)::timestamptz, t_format),
                           'affected_components', NULL, 'deliver_notifications', NULL,
                           'custom_tweet', NULL, 'tweet_id', NULL)),
                       'components', coalesce(
                           (SELECT json_agg(component_objects[(by_id ->> a.id)::bigint] ORDER BY a.n)
                            FROM jsonb_array_elements_text(w.item -> 6) WITH ORDINALITY
                                 AS a (id, n)
                            WHERE by_id -> a.id IS NOT NULL), '[]'),
                       'scheduled_for', to_char((w.item ->> 4)::timestamptz, t_format),
                       'scheduled_until', to_char((w.item ->> 5)::timestamptz, t_format)) AS obj
            FROM w
        )
        -- Shown windows by start (as the page view), then the completed ones, latest first.
        SELECT coalesce(json_agg(t.obj ORDER BY t.n), '[]')
        INTO windows_json
        FROM (SELECT o.* FROM o ORDER BY o.n LIMIT 50) AS t;
    END IF;
    result := CASE document
        WHEN 'summary' THEN json_build_object(
            'page', page_json, 'components', components_json, 'incidents', incidents_json,
            'scheduled_maintenances', windows_json, 'status', status_json)
        WHEN 'status' THEN json_build_object('page', page_json, 'status', status_json)
        WHEN 'components' THEN json_build_object('page', page_json,
                                                 'components', components_json)
        WHEN 'incidents' THEN json_build_object('page', page_json, 'incidents', incidents_json)
        WHEN 'incidents/unresolved' THEN json_build_object('page', page_json,
                                                           'incidents', incidents_json)
        ELSE json_build_object('page', page_json, 'scheduled_maintenances', windows_json)
    END;
    PERFORM set_config('TimeZone', caller_zone, true);
    body := result::text;
    RETURN NEXT;
END;
$$;

COMMENT ON FUNCTION statusdb_page_statuspage(text, bytea, interval, integer, bigint, text) IS
    'A Statuspage v2 public document of a page (0033): document = summary, status, components, '
    'incidents, incidents/unresolved, scheduled-maintenances, scheduled-maintenances/upcoming '
    'or scheduled-maintenances/active. The arguments, bounds, token rule, version and '
    'fresh_until of statusdb_page_view_bytes (a wrong token: no row, like an unknown slug; with '
    'if_version equal to version, answered from the index lookup alone, body null); body = the '
    'document as JSON text, composed from the snapshot row (its history column included), times '
    'in the page''s time zone with each instant''s offset.';

REVOKE EXECUTE ON FUNCTION
    statusdb_page_statuspage(text, bytea, interval, integer, bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    statusdb_page_statuspage(text, bytea, interval, integer, bigint, text)
    TO statusdb_app, statusdb_reader;

-- Every snapshot gets its history now (a new version each: what the documents show changed).
DO $$
BEGIN
    PERFORM statusdb_page_snapshot_refresh(ARRAY(SELECT p.id FROM status_page p ORDER BY p.id));
END;
$$;
