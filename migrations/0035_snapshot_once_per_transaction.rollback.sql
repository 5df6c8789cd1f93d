-- statusdb 0035 rollback: the snapshot triggers render per statement again, the page reads are
-- STABLE and read the stored snapshot only (bodies as before 0035). Drops exactly what 0035
-- created (nothing else uses it; the pending table is empty outside open transactions).

-- squawk-ignore-file ban-drop-function, ban-drop-table

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

CREATE OR REPLACE FUNCTION statusdb_status_page_snapshot() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
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

CREATE OR REPLACE FUNCTION statusdb_status_page_component_snapshot() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
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
                   n.status_updated_at, n.group_id)
                  IS DISTINCT FROM
                  (o.name, o.description, o.display_order, o.current_status,
                   o.status_updated_at, o.group_id)));
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION statusdb_status_incident_snapshot() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
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

CREATE OR REPLACE FUNCTION statusdb_maintenance_window_snapshot() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
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

CREATE OR REPLACE FUNCTION statusdb_maintenance_window_component_snapshot() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
BEGIN
    -- The window's page (a window deleted with its components: its own trigger refreshes it).
    IF TG_OP = 'INSERT' THEN
        PERFORM statusdb_page_snapshot_refresh(ARRAY(
            SELECT DISTINCT w.status_page_id
            FROM maintenance_window w
            WHERE w.id IN (SELECT n.maintenance_window_id FROM new_rows n)));
    ELSIF TG_OP = 'DELETE' THEN
        -- Nor a component deleted with its links (0023): its own statement trigger refreshes
        -- the page after its group roll-up, keeping snapshot rows last in the lock order.
        PERFORM statusdb_page_snapshot_refresh(ARRAY(
            SELECT DISTINCT w.status_page_id
            FROM maintenance_window w
            WHERE w.id IN (SELECT o.maintenance_window_id FROM old_rows o
                           WHERE EXISTS (SELECT 1 FROM status_page_component c
                                         WHERE c.id = o.component_id))));
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

CREATE OR REPLACE FUNCTION statusdb_component_group_snapshot() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM statusdb_page_snapshot_refresh(
            ARRAY(SELECT DISTINCT n.status_page_id FROM new_rows n));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM statusdb_page_snapshot_refresh(
            ARRAY(SELECT DISTINCT o.status_page_id FROM old_rows o));
    ELSE
        -- Only groups whose shown columns changed (a group cannot change page: its guard).
        PERFORM statusdb_page_snapshot_refresh(ARRAY(
            SELECT DISTINCT n.status_page_id
            FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE (n.name, n.description, n.parent_id, n.display_order, n.current_status,
                   n.updated_at)
                  IS DISTINCT FROM
                  (o.name, o.description, o.parent_id, o.display_order, o.current_status,
                   o.updated_at)));
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION statusdb_page_snapshot_repair(repair boolean)
 RETURNS TABLE(page_id text, stored_version bigint)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
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
               s.window_starts, s.window_scheduled, s.groups::text)
              IS DISTINCT FROM
              (r.slug, r.is_public, r.access_token_hash, r.name, r.description, r.updated_at,
               r.components::text, r.incidents::text, r.windows::text,
               r.window_starts, r.window_scheduled, r.groups::text)
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

CREATE OR REPLACE FUNCTION statusdb_page_view(page_slug text, page_token_hash bytea, maintenance_horizon interval, maintenance_limit integer, if_version bigint DEFAULT NULL::bigint)
 RETURNS TABLE(id text, name text, description text, slug text, is_public boolean, updated_at timestamp with time zone, components json, incidents json, maintenance json, version bigint, fresh_until timestamp with time zone, not_modified boolean, groups json)
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
           v.groups
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

CREATE OR REPLACE FUNCTION statusdb_page_view_v2(page_slug text, page_token_hash bytea, maintenance_horizon interval, maintenance_limit integer, if_version bigint DEFAULT NULL::bigint)
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

CREATE OR REPLACE FUNCTION statusdb_page_view_bytes(page_slug text, page_token_hash bytea, maintenance_horizon interval, maintenance_limit integer, if_version bigint DEFAULT NULL::bigint)
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
           || '}'
    INTO body
    FROM status_page_snapshot s
    WHERE s.page_id = found_page;
    RETURN NEXT;
END;
$$;

CREATE OR REPLACE FUNCTION statusdb_page_view_bytes_v2(page_slug text, page_token_hash bytea, maintenance_horizon interval, maintenance_limit integer, if_version bigint DEFAULT NULL::bigint)
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

CREATE OR REPLACE FUNCTION statusdb_page_feed(page_slug text, page_token_hash bytea, feed_limit integer)
 RETURNS TABLE(id text, name text, description text, slug text, is_public boolean, time_zone text, updated_at timestamp with time zone, incidents json, maintenance json)
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER ROWS 1
 SET search_path TO 'public', 'pg_temp'
AS $$
#variable_conflict use_column
DECLARE
    entries integer := coalesce(feed_limit, 50);
    stored_hash bytea;
BEGIN
    IF entries < 1 OR entries > 200 THEN
        RAISE EXCEPTION 'feed_limit must be from 1 to 200, not %', entries
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(page_slug) > 100 THEN
        RETURN;  -- no slug is that long: like an unknown slug
    END IF;
    IF octet_length(page_token_hash) = 32 THEN
        stored_hash := sha256(page_token_hash);
    END IF;
    RETURN QUERY
    SELECT p.id, p.name, p.description, p.slug, p.is_public, p.time_zone, p.updated_at,
           inc.items, win.items
    FROM status_page_snapshot s
    JOIN status_page p ON p.id = s.page_id
    CROSS JOIN LATERAL (
        SELECT coalesce(json_agg(json_build_object(
                   'id', i.id, 'title', i.title, 'message', i.message,
                   'severity', i.severity, 'status', i.status,
                   'created_at', i.created_at, 'updated_at', i.updated_at,
                   'resolved_at', i.resolved_at,
                   'updates', (SELECT coalesce(jsonb_agg(e.entry ORDER BY e.n), '[]')
                               FROM jsonb_array_elements(i.updates) WITH ORDINALITY
                                    AS e (entry, n)
                               WHERE e.n > jsonb_array_length(i.updates) - 50),
                   'components', (SELECT coalesce(json_agg(c.name ORDER BY c.display_order, c.id),
                                                  '[]')
                                  FROM status_page_component c
                                  WHERE c.status_page_id = p.id
                                    AND c.id = ANY (i.affected_component_ids)))
                   ORDER BY i.updated_at DESC, i.id DESC), '[]') AS items
        FROM (SELECT picked.*
              FROM ((SELECT a.id, a.title, a.message, a.severity, a.status, a.created_at,
                            a.updated_at, a.resolved_at, a.updates, a.affected_component_ids
                     FROM status_incident a
                     WHERE a.status_page_id = p.id
                       AND a.status IN ('INVESTIGATING', 'IDENTIFIED', 'MONITORING')
                     ORDER BY a.updated_at DESC, a.id DESC
                     LIMIT entries)
                    UNION ALL
                    (SELECT r.id, r.title, r.message, r.severity, r.status, r.created_at,
                            r.updated_at, r.resolved_at, r.updates, r.affected_component_ids
                     FROM status_incident r
                     WHERE r.status_page_id = p.id AND r.status = 'RESOLVED'
                     ORDER BY r.resolved_at DESC, r.id DESC
                     LIMIT entries)) AS picked
              ORDER BY picked.updated_at DESC, picked.id DESC
              LIMIT entries) AS i
    ) AS inc
    CROSS JOIN LATERAL (
        SELECT coalesce(json_agg(json_build_object(
                   'id', w.id, 'title', w.title, 'description', w.description,
                   'status', w.status, 'start_time', w.start_time, 'end_time', w.end_time,
                   'recurrence_rule', w.recurrence_rule,
                   'recurrence_start', w.recurrence_start,
                   'recurrence_local_start', w.recurrence_local_start,
                   'time_zone', w.time_zone,
                   'created_at', w.created_at, 'updated_at', w.updated_at,
                   'components', (SELECT coalesce(json_agg(c.name ORDER BY c.display_order, c.id),
                                                  '[]')
                                  FROM maintenance_window_component l
                                  JOIN status_page_component c ON c.id = l.component_id
                                  WHERE l.maintenance_window_id = w.id),
                   'changes', (SELECT coalesce(json_agg(json_build_array(ch.status, ch.at)
                                                        ORDER BY ch.at), '[]')
                               FROM (SELECT v.status, v.at
                                     FROM (SELECT h.row_data ->> 'status' AS status,
                                                  h.valid_from AS at,
                                                  lag(h.row_data ->> 'status')
                                                      OVER (ORDER BY h.valid_from) AS before
                                           FROM (SELECT hh.row_data, hh.valid_from
                                                 FROM row_history hh
                                                 WHERE hh.table_name = 'maintenance_window'
                                                   AND hh.row_id = w.id
                                                 ORDER BY hh.valid_from DESC
                                                 LIMIT 100) AS h) AS v
                                     WHERE v.before IS DISTINCT FROM v.status
                                     ORDER BY v.at DESC
                                     LIMIT 20) AS ch))
                   ORDER BY w.final, w.upcoming, w.start_time DESC, w.id), '[]') AS items
        FROM (SELECT picked.*,
                     picked.status IN ('COMPLETED', 'CANCELLED') AS final,
                     CASE WHEN picked.status IN ('SCHEDULED', 'IN_PROGRESS')
                          THEN picked.start_time END AS upcoming
              FROM ((SELECT a.id, a.title, a.description, a.status, a.start_time, a.end_time,
                            a.recurrence_rule, a.recurrence_start, a.recurrence_local_start,
                            a.time_zone, a.created_at, a.updated_at
                     FROM maintenance_window a
                     WHERE a.status_page_id = p.id AND a.status IN ('SCHEDULED', 'IN_PROGRESS')
                     ORDER BY a.start_time, a.id
                     LIMIT entries)
                    UNION ALL
                    (SELECT f.id, f.title, f.description, f.status, f.start_time, f.end_time,
                            f.recurrence_rule, f.recurrence_start, f.recurrence_local_start,
                            f.time_zone, f.created_at, f.updated_at
                     FROM maintenance_window f
                     WHERE f.status_page_id = p.id AND f.status IN ('COMPLETED', 'CANCELLED')
                     ORDER BY f.start_time DESC, f.id
                     LIMIT entries)) AS picked
              ORDER BY 13, 14, picked.start_time DESC, picked.id
              LIMIT entries) AS w
    ) AS win
    WHERE s.slug = page_slug
      AND (s.is_public OR s.access_token_hash = stored_hash);
END;
$$;

DROP FUNCTION statusdb_page_snapshot_flush_slug(text);
DROP TRIGGER status_page_snapshot_pending_flush ON status_page_snapshot_pending;
DROP FUNCTION statusdb_page_snapshot_pending_flush();
DROP FUNCTION statusdb_page_snapshot_flush();
DROP FUNCTION statusdb_page_snapshot_mark(text[]);
-- Empty outside open transactions: nothing is lost.
DROP TABLE status_page_snapshot_pending;
