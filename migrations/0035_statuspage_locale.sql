-- statusdb 0035: the Statuspage v2 documents in a locale (issue 24, item 3: "the formats above
-- take a locale and return the translated text").
-- depends: 0034_statuspage_v2
--
-- * statusdb_page_statuspage_v2(slug, token digest, horizon, limit, if_version, document,
--   page_locale): statusdb_page_statuspage (0034, kept unchanged for the previous release)
--   with every text its documents show translated by the chain of statusdb_page_view_v3 (the
--   tag, its language subtag, the page's own text: statusdb_locale_chain): the page name,
--   component and group names and descriptions, incident names, messages and update bodies
--   (the resolved incidents' too), maintenance names and descriptions (the completed windows'
--   too). Result column locale = the locale used (the first of the chain, else the page's
--   default_locale; page_locale null: the page's own texts, locale its default).
-- * version_text (the ETag) = the 0034 version_text, "." and the locale used: two locales'
--   documents never share an ETag, and a translation written moves the snapshot version
--   (0033), so the ETag moves too, resolved incidents' and completed windows' translations
--   included. The not-modified answer costs one locale-chain lookup more than 0034's.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

CREATE FUNCTION statusdb_page_statuspage_v2(page_slug text, page_token_hash bytea,
                                            maintenance_horizon interval,
                                            maintenance_limit integer, if_version text,
                                            document text, page_locale text)
RETURNS TABLE (version bigint, version_text text, fresh_until timestamptz, body text,
               locale text)
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
$$;

COMMENT ON FUNCTION statusdb_page_statuspage_v2(text, bytea, interval, integer, text, text,
                                                text) IS
    'statusdb_page_statuspage (0034) in a locale (0035): every text the documents show (page '
    'name, component and group names and descriptions, incident names and update bodies, '
    'maintenance names and descriptions, resolved and completed ones too) in the chain of '
    'statusdb_locale_chain (tag, language, the page''s own text). Result column locale = the '
    'locale used (first of the chain, else the page''s default_locale). version_text = the '
    '0034 version_text, "." and the locale used. Same bounds, token rule and not-modified '
    'answer.';

REVOKE EXECUTE ON FUNCTION
    statusdb_page_statuspage_v2(text, bytea, interval, integer, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    statusdb_page_statuspage_v2(text, bytea, interval, integer, text, text, text)
    TO statusdb_app, statusdb_reader;
