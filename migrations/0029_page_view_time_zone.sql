-- statusdb 0029: the page's time zone in the page view (issue 25, item 3).
-- depends: 0028_page_view_bytes
--
-- A page's readers need its time zone to show its times (incidents, maintenance) as the page
-- means them; status_page.time_zone (0021) was only in notifications. The page view functions
-- get it in new versions (CONTRIBUTING: a new result column is a new contract), each the
-- current body plus one column (or key):
-- * statusdb_page_view_v2 = statusdb_page_view (0020/0028) + time_zone (last column);
-- * statusdb_page_view_bytes_v2 = statusdb_page_view_bytes (0028) + "time_zone" (last key of
--   the body); the not-modified answer is unchanged (the lookup alone);
-- * statusdb_page_view_at_v2 = statusdb_page_view_at (0025) + time_zone as it was at at_time
--   (from the page's kept version; UTC for versions kept before it had the column).
-- The zone is read from the page's row by primary key (one more index lookup, owner rights as
-- the rest of the function), not rendered into the snapshot: the renderer, the snapshot, its
-- refresh and its repair are unchanged. The version stays honest: changing status_page.
-- time_zone is an UPDATE of status_page, whose touch trigger moves updated_at, which the
-- renderer shows, so the snapshot is re-rendered with a new version and announced. (Only an
-- UPDATE that bypasses the triggers, which the repair exists for, could change the zone
-- without a new version.)
-- The old functions stay, unchanged, for the code of the previous release; a later migration
-- drops them. Same bounds, access rule and grants as the functions they extend.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

CREATE FUNCTION statusdb_page_view_v2(page_slug text, page_token_hash bytea, maintenance_horizon interval, maintenance_limit integer, if_version bigint DEFAULT NULL::bigint)
 RETURNS TABLE(id text, name text, description text, slug text, is_public boolean, updated_at timestamp with time zone, components json, incidents json, maintenance json, version bigint, fresh_until timestamp with time zone, not_modified boolean, groups json, time_zone text)
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER ROWS 1
 SET search_path TO 'public', 'pg_temp'
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
           v.components, v.incidents, v.maintenance, t.version, t.fresh_until, v.name IS NULL,
           v.groups, p.time_zone
    FROM status_page_snapshot s
    -- 0029: the page's time zone, from its row (primary key); a change of it touches the
    -- page's updated_at, which re-renders the snapshot: the version moves with it.
    JOIN status_page p ON p.id = s.page_id
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
        SELECT s.name, s.description, s.updated_at, s.components, s.incidents, s.groups,
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

COMMENT ON FUNCTION statusdb_page_view_v2(text, bytea, interval, integer, bigint) IS
    'statusdb_page_view (0020, 0028) with the page''s IANA time zone as a last column, '
    'time_zone (0029, from status_page by primary key). Same arguments, bounds, token rule, '
    'version, fresh_until and not_modified: a status page as its readers see it, read from its '
    'snapshot; private pages only with the SHA-256 digest of their access token.';

REVOKE EXECUTE ON FUNCTION statusdb_page_view_v2(text, bytea, interval, integer, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION statusdb_page_view_v2(text, bytea, interval, integer, bigint) TO statusdb_app, statusdb_reader;

CREATE FUNCTION statusdb_page_view_bytes_v2(page_slug text, page_token_hash bytea, maintenance_horizon interval, maintenance_limit integer, if_version bigint DEFAULT NULL::bigint)
 RETURNS TABLE(version bigint, fresh_until timestamp with time zone, body text)
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER ROWS 1
 SET search_path TO 'public', 'pg_temp'
AS $$
#variable_conflict use_column
DECLARE
    horizon interval := coalesce(maintenance_horizon, interval '7 days');
    window_limit integer := coalesce(maintenance_limit, 20);
    stored_hash bytea;
    found_page text;
    k integer;
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
    -- The lookup: the slug index, the access rule, k from the stored starts (0 with limit 0:
    -- nothing is shown, whatever the clock). No subplan, nothing detoasted.
    SELECT s.page_id, w.k, s.version * 256 + least(w.k, 255),
           CASE WHEN window_limit > 0 THEN s.scheduled_starts[w.k + 1] - horizon END
    INTO found_page, k, version, fresh_until
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
        RETURN NEXT;  -- not modified: the body is not even composed
        RETURN;
    END IF;
    -- The body: the snapshot's JSON texts in one document (keys as statusdb_page_view's
    -- columns; updated_at in UTC as the texts inside).
    SELECT '{"id": ' || to_json(s.page_id)::text
           || ', "name": ' || to_json(s.name)::text
           || ', "description": ' || coalesce(to_json(s.description)::text, 'null')
           || ', "slug": ' || to_json(s.slug)::text
           || ', "is_public": ' || CASE WHEN s.is_public THEN 'true' ELSE 'false' END
           || ', "updated_at": "'
           || replace(to_json(s.updated_at AT TIME ZONE 'UTC')::text, '"', '') || '+00:00"'
           || ', "components": ' || s.components::text
           || ', "incidents": ' || s.incidents::text
           || ', "maintenance": '
           || CASE WHEN window_limit = 0 OR cardinality(s.window_starts) = 0 THEN '[]'
                   -- every candidate shown: the stored text as is
                   WHEN k = cardinality(s.scheduled_starts)
                        AND cardinality(s.window_starts) <= window_limit
                   THEN s.windows::text
                   ELSE (SELECT coalesce(json_agg(e.item ORDER BY e.n), '[]')
                         FROM (SELECT w.item, w.n
                               FROM json_array_elements(s.windows) WITH ORDINALITY
                                    AS w (item, n)
                               WHERE NOT s.window_scheduled[w.n]
                                  OR s.window_starts[w.n] < now() + horizon
                               ORDER BY w.n
                               LIMIT window_limit) AS e)::text
              END
           || ', "groups": ' || s.groups::text
           || ', "time_zone": ' || to_json(p.time_zone)::text
           || '}'
    INTO body
    FROM status_page_snapshot s
    -- 0029: the page's time zone, from its row (primary key), only when a body is composed.
    JOIN status_page p ON p.id = s.page_id
    WHERE s.page_id = found_page;
    RETURN NEXT;
END;
$$;

COMMENT ON FUNCTION statusdb_page_view_bytes_v2(text, bytea, interval, integer, bigint) IS
    'statusdb_page_view_bytes (0028) with "time_zone" (the page''s IANA time zone) as the '
    'last key of the body (0029): body = {"id", "name", "description", "slug", "is_public", '
    '"updated_at" (UTC), "components", "incidents", "maintenance", "groups", "time_zone"}. '
    'Same arguments, bounds, token rule and versions; with if_version equal to version, '
    'answered from the index lookup alone, body null.';

REVOKE EXECUTE ON FUNCTION statusdb_page_view_bytes_v2(text, bytea, interval, integer, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION statusdb_page_view_bytes_v2(text, bytea, interval, integer, bigint) TO statusdb_app, statusdb_reader;

CREATE FUNCTION statusdb_page_view_at_v2(page_slug text, page_token_hash bytea, at_time timestamp with time zone, maintenance_horizon interval, maintenance_limit integer)
 RETURNS TABLE(id text, name text, description text, slug text, is_public boolean, updated_at timestamp with time zone, components json, incidents json, maintenance json, version bigint, fresh_until timestamp with time zone, groups json, time_zone text)
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER ROWS 1
 SET search_path TO 'public', 'pg_temp'
AS $$
#variable_conflict use_column
DECLARE
    horizon interval := coalesce(maintenance_horizon, interval '7 days');
    window_limit integer := coalesce(maintenance_limit, 20);
    stored_hash bytea;
    kept timestamptz;
BEGIN
    IF horizon < interval '0' OR horizon > interval '366 days' THEN
        RAISE EXCEPTION 'maintenance_horizon must be from 0 to 366 days, not %', horizon
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF window_limit < 0 OR window_limit > 200 THEN
        RAISE EXCEPTION 'maintenance_limit must be from 0 to 200, not %', window_limit
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    kept := greatest((SELECT min(h.valid_from) FROM row_history h),
                     (SELECT max(hz.kept_from) FROM row_history_horizon hz));
    IF at_time IS NULL OR at_time < kept OR at_time > now() THEN
        RAISE EXCEPTION 'at_time must be from % (the history kept) to now(), not %', kept, at_time
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
        SELECT h.row_id AS id, h.row_data AS r
        FROM row_history h
        JOIN status_page now_page ON now_page.id = h.row_id
        WHERE h.table_name = 'status_page'
          AND h.row_data ->> 'slug' = page_slug
          AND h.valid_from <= at_time AND (h.valid_to IS NULL OR h.valid_to > at_time)
          AND ((now_page.is_public AND (h.row_data ->> 'is_public')::boolean)
               OR now_page.access_token_hash = stored_hash)
    ),
    -- The page's versions valid at at_time (current, or ended after it) of what the page showed
    -- then: components and groups, incidents then active, windows then scheduled or running
    -- (0025: by row_history_page_table_status_idx; resolved incidents and ended windows are not
    -- read; window links are read per listed window, below).
    keys (table_name, status) AS (
        VALUES ('status_incident', 'INVESTIGATING'), ('status_incident', 'IDENTIFIED'),
               ('status_incident', 'MONITORING'),
               ('maintenance_window', 'SCHEDULED'), ('maintenance_window', 'IN_PROGRESS')
    ),
    versions AS (
        SELECT h.table_name, h.row_data AS r
        FROM page
        JOIN row_history h ON h.status_page_id = page.id
        WHERE h.table_name IN ('status_page_component', 'component_group')
          AND (h.row_data ->> 'status') IS NULL
          AND h.valid_to IS NULL AND h.valid_from <= at_time
        UNION ALL
        SELECT h.table_name, h.row_data AS r
        FROM page
        JOIN row_history h ON h.status_page_id = page.id
        WHERE h.table_name IN ('status_page_component', 'component_group')
          AND (h.row_data ->> 'status') IS NULL
          AND h.valid_to > at_time AND h.valid_from <= at_time
        UNION ALL
        SELECT h.table_name, h.row_data AS r
        FROM page CROSS JOIN keys k
        JOIN row_history h ON h.status_page_id = page.id AND h.table_name = k.table_name
                          AND (h.row_data ->> 'status') = k.status
        WHERE h.valid_to IS NULL AND h.valid_from <= at_time
        UNION ALL
        SELECT h.table_name, h.row_data AS r
        FROM page CROSS JOIN keys k
        JOIN row_history h ON h.status_page_id = page.id AND h.table_name = k.table_name
                          AND (h.row_data ->> 'status') = k.status
        WHERE h.valid_to > at_time AND h.valid_from <= at_time
    ),
    -- The versions' timestamps (written by to_jsonb in the writer's time zone), as instants and
    -- as the renderer's JSON text in UTC: the timestamp's JSON text at UTC, plus '+00:00'.
    page_components AS (
        SELECT coalesce(json_agg(json_build_array(
                   v.r ->> 'id', v.r ->> 'name', v.r ->> 'description',
                   (v.r ->> 'display_order')::integer, t.current_status,
                   to_json((to_json(t.status_updated_at AT TIME ZONE 'UTC') #>> '{}')
                           || '+00:00'),
                   v.r ->> 'group_id')
                   ORDER BY (v.r ->> 'display_order')::integer, v.r ->> 'name', v.r ->> 'id'),
                   '[]') AS items,
               max(t.status_updated_at) AS last_change
        FROM versions v
        -- The status at at_time: its latest logged change by then, or the version's (see
        -- "Component statuses"). Reads status_change_component_id_seq_idx backwards.
        LEFT JOIN LATERAL (
            SELECT sc.new_status, sc.changed_at
            FROM status_change sc
            WHERE sc.component_id = v.r ->> 'id' AND sc.changed_at <= at_time
            ORDER BY sc.seq DESC
            LIMIT 1
        ) AS s ON true
        CROSS JOIN LATERAL (
            SELECT coalesce(s.new_status, v.r ->> 'current_status') AS current_status,
                   coalesce(s.changed_at, (v.r ->> 'status_updated_at')::timestamptz)
                       AS status_updated_at
        ) AS t
        WHERE v.table_name = 'status_page_component'
    ),
    page_incidents AS (
        SELECT coalesce(json_agg(json_build_array(
                   v.r ->> 'id', v.r ->> 'title', v.r ->> 'message', v.r ->> 'severity',
                   v.r ->> 'status',
                   ARRAY(SELECT jsonb_array_elements_text(v.r -> 'affected_component_ids')),
                   to_json((to_json(t.created_at AT TIME ZONE 'UTC') #>> '{}') || '+00:00'),
                   to_json((to_json(t.updated_at AT TIME ZONE 'UTC') #>> '{}') || '+00:00'),
                   -- 0025: the timeline at at_time from its entries (row_history_incident_update_idx),
                   -- or, in a version written before 0025, as it holds it.
                   CASE WHEN v.r ? 'updates' THEN v.r -> 'updates' ELSE (
                       SELECT coalesce(jsonb_agg(e.row_data -> 'entry'
                                                 ORDER BY (e.row_data ->> 'position')::integer),
                                       '[]'::jsonb)
                       FROM row_history e
                       WHERE e.table_name = 'status_incident_update'
                         AND e.row_data ->> 'status_incident_id' = v.r ->> 'id'
                         AND (e.row_data ->> 'position')::integer
                             < (v.r ->> 'updates_length')::integer
                         AND e.valid_from <= at_time
                         AND (e.valid_to IS NULL OR e.valid_to > at_time)) END)
                   ORDER BY t.created_at DESC, v.r ->> 'id' DESC),
                   '[]') AS items,
               max(t.updated_at) AS last_change
        FROM versions v
        CROSS JOIN LATERAL (
            SELECT (v.r ->> 'created_at')::timestamptz AS created_at,
                   (v.r ->> 'updated_at')::timestamptz AS updated_at
        ) AS t
        WHERE v.table_name = 'status_incident'
          AND v.r ->> 'status' IN ('INVESTIGATING', 'IDENTIFIED', 'MONITORING')
    ),
    page_maintenance AS (
        SELECT coalesce(json_agg(json_build_array(
                   w.id, w.title, w.description, w.status,
                   to_json((to_json(w.start_time AT TIME ZONE 'UTC') #>> '{}') || '+00:00'),
                   to_json((to_json(w.end_time AT TIME ZONE 'UTC') #>> '{}') || '+00:00'),
                   -- The listed window's links at at_time (row_history_window_component_idx).
                   ARRAY(SELECT mc.row_data ->> 'component_id'
                         FROM row_history mc
                         WHERE mc.table_name = 'maintenance_window_component'
                           AND mc.row_data ->> 'maintenance_window_id' = w.window_id
                           AND mc.valid_from <= at_time
                           AND (mc.valid_to IS NULL OR mc.valid_to > at_time)
                         ORDER BY mc.row_data ->> 'component_id'))
                   ORDER BY w.start_time, w.id), '[]') AS items
        FROM (
            SELECT v.r ->> 'id' AS id, v.r ->> 'title' AS title,
                   v.r ->> 'description' AS description, v.r ->> 'status' AS status,
                   (v.r ->> 'start_time')::timestamptz AS start_time,
                   (v.r ->> 'end_time')::timestamptz AS end_time,
                   v.r ->> 'id' AS window_id
            FROM versions v
            WHERE v.table_name = 'maintenance_window'
              AND (v.r ->> 'status' = 'IN_PROGRESS'
                   OR (v.r ->> 'status' = 'SCHEDULED'
                       AND (v.r ->> 'start_time')::timestamptz < at_time + horizon))
            ORDER BY (v.r ->> 'start_time')::timestamptz, v.r ->> 'id'
            LIMIT window_limit
        ) AS w
    ),
    -- 0020's groups as they were: flat, in display order (readers build the tree).
    page_groups AS (
        SELECT coalesce(json_agg(json_build_array(
                   v.r ->> 'id', v.r ->> 'name', v.r ->> 'description', v.r ->> 'parent_id',
                   (v.r ->> 'display_order')::integer, v.r ->> 'current_status')
                   ORDER BY (v.r ->> 'display_order')::integer, v.r ->> 'name', v.r ->> 'id'),
                   '[]') AS items,
               max((v.r ->> 'updated_at')::timestamptz) AS last_change
        FROM versions v
        WHERE v.table_name = 'component_group'
    )
    SELECT page.id, page.r ->> 'name', page.r ->> 'description', page.r ->> 'slug',
           (page.r ->> 'is_public')::boolean,
           greatest((page.r ->> 'updated_at')::timestamptz, page_components.last_change,
                    page_incidents.last_change, page_groups.last_change),
           page_components.items, page_incidents.items, page_maintenance.items,
           0::bigint, NULL::timestamptz, page_groups.items,
           -- 0029: the page's time zone as it was (versions kept before the column existed
           -- had none: the default, UTC).
           coalesce(page.r ->> 'time_zone', 'UTC')
    FROM page, page_components, page_incidents, page_maintenance, page_groups;
END;
$$;

COMMENT ON FUNCTION statusdb_page_view_at_v2(text, bytea, timestamp with time zone, interval, integer) IS
    'statusdb_page_view_at (0022, 0025) with the page''s IANA time zone as it was at at_time '
    'as a last column, time_zone (0029; UTC for versions kept without one). Same arguments, '
    'bounds, access rule and history: version 0, fresh_until null.';

REVOKE EXECUTE ON FUNCTION statusdb_page_view_at_v2(text, bytea, timestamp with time zone, interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION statusdb_page_view_at_v2(text, bytea, timestamp with time zone, interval, integer) TO statusdb_app, statusdb_reader;
