-- statusdb 0036 rollback: the snapshot triggers render per statement again, the page reads are
-- STABLE and read the stored snapshot only (bodies as before 0036). Drops exactly what 0036
-- created (nothing else uses it; the pending table is empty outside open transactions).

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

-- The Statuspage v2 documents in a locale as 0035 made them (no flush, STABLE).
CREATE OR REPLACE FUNCTION public.statusdb_page_statuspage_v2(page_slug text, page_token_hash bytea, maintenance_horizon interval, maintenance_limit integer, if_version text, document text, page_locale text)
 RETURNS TABLE(version bigint, version_text text, fresh_until timestamp with time zone, body text, locale text)
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER ROWS 1
 SET search_path TO 'public', 'pg_temp'
AS $function$
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
    stamp text;
    listed text[];
    resolved jsonb := '[]'::jsonb;
    completed jsonb := '[]'::jsonb;
    caller_zone text := current_setting('TimeZone');
    stamps jsonb;
    by_id jsonb;
    component_objects json[];
    incidents_json json;
    windows_json json;
    status_json json;
    result json;
    chain text[] := '{}'::text[];
    locale_used text;
    page_name text;
BEGIN
    IF length(page_locale) > 35
       OR page_locale !~ '^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$' THEN
        RAISE EXCEPTION 'page_locale must be a BCP 47 tag (language[-Script][-REGION]), not %',
                        quote_literal(left(page_locale, 40))
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
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
    -- The stamp of the history the document lists: one bounded index scan.
    IF document = 'incidents' THEN
        SELECT left(md5(string_agg(h.id || '/' || h.t, ','
                                   ORDER BY h.resolved_at DESC, h.id DESC)), 16)
        INTO stamp
        FROM (SELECT i.id, i.resolved_at,
                     (extract(epoch FROM i.updated_at) * 1000000)::bigint::text || '/'
                     || i.ctid::text AS t
              FROM status_incident i
              WHERE i.status_page_id = found_page AND i.status = 'RESOLVED'
              ORDER BY i.resolved_at DESC, i.id DESC
              LIMIT 50) AS h;
    ELSIF document = 'scheduled-maintenances' THEN
        SELECT string_agg(h.id || '/' || h.t, ',' ORDER BY h.start_time DESC, h.id DESC),
               array_agg(h.id)
        INTO stamp, listed
        FROM (SELECT w.id, w.start_time,
                     (extract(epoch FROM w.updated_at) * 1000000)::bigint::text || '/'
                     || w.ctid::text AS t
              FROM maintenance_window w
              WHERE w.status_page_id = found_page AND w.status = 'COMPLETED'
              ORDER BY w.start_time DESC, w.id DESC
              LIMIT 50) AS h;
        -- Their components (an edit of those does not touch the window's row): one scan of
        -- the primary key for the listed ids.
        SELECT left(md5(stamp || '|' || coalesce(string_agg(mc.maintenance_window_id || ' '
                                                            || mc.component_id, ','
                                                            ORDER BY mc.maintenance_window_id,
                                                                     mc.component_id), '')), 16)
        INTO stamp
        FROM maintenance_window_component mc
        WHERE mc.maintenance_window_id = ANY (listed);
    END IF;
    -- The locale used (0035): the first of the chain, else the page's default; it qualifies
    -- the ETag (a translation written moves the version as well).
    IF page_locale IS NOT NULL THEN
        chain := statusdb_locale_chain(found_page, page_locale);
    END IF;
    locale_used := coalesce(chain[1], (SELECT p.default_locale FROM status_page p
                                       WHERE p.id = found_page));
    locale := locale_used;
    version_text := version::text || coalesce('-' || stamp, '') || '.' || locale_used;
    -- No version_text is over 40 bytes: a longer if_version matches nothing (compared as is).
    IF octet_length(if_version) <= 100 AND version_text = if_version THEN
        RETURN NEXT;  -- not modified: nothing else runs
        RETURN;
    END IF;
    SELECT * INTO STRICT s FROM status_page_snapshot WHERE page_id = found_page;
    SELECT p.time_zone INTO zone FROM status_page p WHERE p.id = found_page;
    zone := coalesce(zone, 'UTC');
    -- Created / updated stamps by id (which ones: the migration's header).
    SELECT coalesce(jsonb_object_agg(st.id, jsonb_build_array(st.created_at, st.updated_at)),
                    '{}')
    INTO stamps
    FROM (SELECT c.id, c.created_at, c.status_updated_at AS updated_at
          FROM status_page_component c
          WHERE c.status_page_id = found_page
          UNION ALL
          SELECT g.id, g.created_at, g.updated_at
          FROM component_group g
          WHERE g.status_page_id = found_page
          UNION ALL
          (SELECT w.id, w.created_at, greatest(w.created_at, w.start_time)
           FROM maintenance_window w
           WHERE w.status_page_id = found_page AND w.status = 'IN_PROGRESS'
           ORDER BY w.start_time, w.id
           LIMIT 200)
          UNION ALL
          (SELECT w.id, w.created_at, w.created_at
           FROM maintenance_window w
           WHERE w.status_page_id = found_page AND w.status = 'SCHEDULED'
           ORDER BY w.start_time, w.id
           LIMIT 200)) AS st;
    IF document = 'incidents' THEN
        -- The 50 latest resolved: each keeps its 25 latest updates (a timeline may hold 500)
        -- and how many earlier ones it dropped (update ids count from the first).
        SELECT coalesce(jsonb_agg(jsonb_build_array(
                   i.id, i.title, i.message, i.severity, i.status, i.affected_component_ids,
                   i.created_at, i.updated_at,
                   i.updates,
                   i.resolved_at, greatest(jsonb_array_length(i.updates) - 25, 0))
                   ORDER BY i.resolved_at DESC, i.id DESC), '[]')
        INTO resolved
        FROM (SELECT i.* FROM status_incident i
              WHERE i.status_page_id = found_page AND i.status = 'RESOLVED'
              ORDER BY i.resolved_at DESC, i.id DESC
              LIMIT 50) AS i;
        -- Translated (timeline entries by their number, so before dropping any), then each
        -- keeps its 25 latest updates.
        IF cardinality(chain) > 0 THEN
            resolved := statusdb_translate_rows(resolved::json, chain, 'incident', 'title',
                                                'message')::jsonb;
        END IF;
        SELECT coalesce(jsonb_agg(CASE WHEN jsonb_array_length(r.item -> 8) <= 25 THEN r.item
                                       ELSE jsonb_set(r.item, '{8}', (
                                           SELECT jsonb_agg(u.item ORDER BY u.n)
                                           FROM jsonb_array_elements(r.item -> 8)
                                                WITH ORDINALITY AS u (item, n)
                                           WHERE u.n > jsonb_array_length(r.item -> 8) - 25))
                                  END ORDER BY r.n), '[]')
        INTO resolved
        FROM jsonb_array_elements(resolved) WITH ORDINALITY AS r (item, n);
    ELSIF document = 'scheduled-maintenances' THEN
        SELECT coalesce(jsonb_agg(jsonb_build_array(
                   w.id, w.title, w.description, w.status, w.start_time, w.end_time,
                   ARRAY(SELECT mc.component_id FROM maintenance_window_component mc
                         WHERE mc.maintenance_window_id = w.id ORDER BY mc.component_id),
                   w.created_at, w.updated_at)
                   ORDER BY w.start_time DESC, w.id DESC), '[]')
        INTO completed
        FROM (SELECT w.* FROM maintenance_window w
              WHERE w.status_page_id = found_page AND w.status = 'COMPLETED'
              ORDER BY w.start_time DESC, w.id DESC
              LIMIT 50) AS w;
        IF cardinality(chain) > 0 THEN
            completed := statusdb_translate_rows(completed::json, chain, 'maintenance', 'title',
                                                 'description')::jsonb;
        END IF;
    END IF;
    -- The snapshot's texts in the chain (0035), as statusdb_page_view_v3 shows them.
    page_name := s.name;
    IF cardinality(chain) > 0 THEN
        page_name := coalesce(statusdb_translation_text(chain, 'page', found_page, 'name'),
                              s.name);
        s.components := statusdb_translate_rows(s.components, chain, 'component', 'name',
                                                'description');
        s.groups := statusdb_translate_rows(s.groups, chain, 'group', 'name', 'description');
        s.incidents := statusdb_translate_rows(s.incidents, chain, 'incident', 'title',
                                               'message');
        s.windows := statusdb_translate_rows(s.windows, chain, 'maintenance', 'title',
                                             'description');
    END IF;
    -- The page's zone while composing: to_char's TZH:TZM then write each instant's offset in
    -- it. The caller's setting is put back before returning (an error rolls the change back
    -- with the statement or savepoint).
    PERFORM set_config('TimeZone', zone, true);
    page_json := json_build_object(
        'id', s.page_id, 'name', page_name, 'url', NULL, 'time_zone', zone,
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
                       (c.item ->> 5)::timestamptz, t_format),
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
            FROM jsonb_array_elements(resolved) AS i (item)
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
            FROM jsonb_array_elements(completed) WITH ORDINALITY AS w (item, n)
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
$function$;

-- The Statuspage v2 documents as 0034 made them (no flush, STABLE).
CREATE OR REPLACE FUNCTION public.statusdb_page_statuspage(page_slug text, page_token_hash bytea, maintenance_horizon interval, maintenance_limit integer, if_version text, document text)
 RETURNS TABLE(version bigint, version_text text, fresh_until timestamp with time zone, body text)
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER ROWS 1
 SET search_path TO 'public', 'pg_temp'
AS $function$
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
    stamp text;
    listed text[];
    resolved jsonb := '[]'::jsonb;
    completed jsonb := '[]'::jsonb;
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
    -- The stamp of the history the document lists: one bounded index scan.
    IF document = 'incidents' THEN
        SELECT left(md5(string_agg(h.id || '/' || h.t, ','
                                   ORDER BY h.resolved_at DESC, h.id DESC)), 16)
        INTO stamp
        FROM (SELECT i.id, i.resolved_at,
                     (extract(epoch FROM i.updated_at) * 1000000)::bigint::text || '/'
                     || i.ctid::text AS t
              FROM status_incident i
              WHERE i.status_page_id = found_page AND i.status = 'RESOLVED'
              ORDER BY i.resolved_at DESC, i.id DESC
              LIMIT 50) AS h;
    ELSIF document = 'scheduled-maintenances' THEN
        SELECT string_agg(h.id || '/' || h.t, ',' ORDER BY h.start_time DESC, h.id DESC),
               array_agg(h.id)
        INTO stamp, listed
        FROM (SELECT w.id, w.start_time,
                     (extract(epoch FROM w.updated_at) * 1000000)::bigint::text || '/'
                     || w.ctid::text AS t
              FROM maintenance_window w
              WHERE w.status_page_id = found_page AND w.status = 'COMPLETED'
              ORDER BY w.start_time DESC, w.id DESC
              LIMIT 50) AS h;
        -- Their components (an edit of those does not touch the window's row): one scan of
        -- the primary key for the listed ids.
        SELECT left(md5(stamp || '|' || coalesce(string_agg(mc.maintenance_window_id || ' '
                                                            || mc.component_id, ','
                                                            ORDER BY mc.maintenance_window_id,
                                                                     mc.component_id), '')), 16)
        INTO stamp
        FROM maintenance_window_component mc
        WHERE mc.maintenance_window_id = ANY (listed);
    END IF;
    version_text := version::text || coalesce('-' || stamp, '');
    -- No version_text is over 40 bytes: a longer if_version matches nothing (compared as is).
    IF octet_length(if_version) <= 100 AND version_text = if_version THEN
        RETURN NEXT;  -- not modified: nothing else runs
        RETURN;
    END IF;
    SELECT * INTO STRICT s FROM status_page_snapshot WHERE page_id = found_page;
    SELECT p.time_zone INTO zone FROM status_page p WHERE p.id = found_page;
    zone := coalesce(zone, 'UTC');
    -- Created / updated stamps by id (which ones: the migration's header).
    SELECT coalesce(jsonb_object_agg(st.id, jsonb_build_array(st.created_at, st.updated_at)),
                    '{}')
    INTO stamps
    FROM (SELECT c.id, c.created_at, c.status_updated_at AS updated_at
          FROM status_page_component c
          WHERE c.status_page_id = found_page
          UNION ALL
          SELECT g.id, g.created_at, g.updated_at
          FROM component_group g
          WHERE g.status_page_id = found_page
          UNION ALL
          (SELECT w.id, w.created_at, greatest(w.created_at, w.start_time)
           FROM maintenance_window w
           WHERE w.status_page_id = found_page AND w.status = 'IN_PROGRESS'
           ORDER BY w.start_time, w.id
           LIMIT 200)
          UNION ALL
          (SELECT w.id, w.created_at, w.created_at
           FROM maintenance_window w
           WHERE w.status_page_id = found_page AND w.status = 'SCHEDULED'
           ORDER BY w.start_time, w.id
           LIMIT 200)) AS st;
    IF document = 'incidents' THEN
        -- The 50 latest resolved: each keeps its 25 latest updates (a timeline may hold 500)
        -- and how many earlier ones it dropped (update ids count from the first).
        SELECT coalesce(jsonb_agg(jsonb_build_array(
                   i.id, i.title, i.message, i.severity, i.status, i.affected_component_ids,
                   i.created_at, i.updated_at,
                   CASE WHEN jsonb_array_length(i.updates) <= 25 THEN i.updates
                        ELSE (SELECT jsonb_agg(u.item ORDER BY u.n)
                              FROM jsonb_array_elements(i.updates) WITH ORDINALITY AS u (item, n)
                              WHERE u.n > jsonb_array_length(i.updates) - 25) END,
                   i.resolved_at, greatest(jsonb_array_length(i.updates) - 25, 0))
                   ORDER BY i.resolved_at DESC, i.id DESC), '[]')
        INTO resolved
        FROM (SELECT i.* FROM status_incident i
              WHERE i.status_page_id = found_page AND i.status = 'RESOLVED'
              ORDER BY i.resolved_at DESC, i.id DESC
              LIMIT 50) AS i;
    ELSIF document = 'scheduled-maintenances' THEN
        SELECT coalesce(jsonb_agg(jsonb_build_array(
                   w.id, w.title, w.description, w.status, w.start_time, w.end_time,
                   ARRAY(SELECT mc.component_id FROM maintenance_window_component mc
                         WHERE mc.maintenance_window_id = w.id ORDER BY mc.component_id),
                   w.created_at, w.updated_at)
                   ORDER BY w.start_time DESC, w.id DESC), '[]')
        INTO completed
        FROM (SELECT w.* FROM maintenance_window w
              WHERE w.status_page_id = found_page AND w.status = 'COMPLETED'
              ORDER BY w.start_time DESC, w.id DESC
              LIMIT 50) AS w;
    END IF;
    -- The page's zone while composing: to_char's TZH:TZM then write each instant's offset in
    -- it. The caller's setting is put back before returning (an error rolls the change back
    -- with the statement or savepoint).
    PERFORM set_config('TimeZone', zone, true);
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
                       (c.item ->> 5)::timestamptz, t_format),
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
            FROM jsonb_array_elements(resolved) AS i (item)
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
            FROM jsonb_array_elements(completed) WITH ORDINALITY AS w (item, n)
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
$function$;

-- squawk-ignore-file ban-drop-function, ban-drop-table


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
