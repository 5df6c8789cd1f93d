-- statusdb 0030: what a page's feeds show (issue 24, item 2): its recent status incidents with
-- their timelines and its maintenance windows with their series and status changes, in one
-- call, for the Atom / RSS 2.0 and iCalendar renderings of statusdb.formats.
-- depends: 0029_page_view_time_zone
--
-- * statusdb_page_feed(slug, token digest, limit): one row, the page (id, name, description,
--   slug, is_public, time_zone, updated_at) with two JSON arrays:
--   - incidents: the page's unresolved status incidents and its most recently resolved ones,
--     at most `limit` in all, newest updated first; each with its last 50 timeline entries
--     and the names of the components it affects;
--   - maintenance: its SCHEDULED and IN_PROGRESS windows (earliest first), then its COMPLETED
--     and CANCELLED ones (latest first), at most `limit` in all; each with what a calendar
--     needs to expand it (recurrence_rule, recurrence_local_start, time_zone, start and end),
--     the names of its components and its last status changes from row_history (0022; at
--     most 20, read from the window's last 100 versions: a daily series changes status twice
--     a day).
--   Windows and incidents are read through their existing indexes
--   (maintenance_window_status_page_id_start_time_idx, status_incident_status_page_id_status_idx,
--   status_incident_resolved_history_idx, row_history_pkey).
-- * Same access rule as statusdb_page_view (0014): a private page only with the SHA-256 digest
--   of its token, hashed once more here and compared with the snapshot's stored value; a wrong
--   or missing token returns no row, like an unknown slug, by the same statement.
--
-- Why SECURITY DEFINER: the reader role (a public front end) may not read the tables (that is
-- what keeps private pages private) nor row_history (owner only), so the read runs with the
-- owner's rights and shows only what the page's readers may see (no team, service, platform
-- incident, creator or digest). Bounded: `limit` 1 to 200 (null: 50), else SQLSTATE 22023.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

CREATE FUNCTION statusdb_page_feed(page_slug text, page_token_hash bytea, feed_limit integer)
RETURNS TABLE (
    id text, name text, description text, slug text, is_public boolean, time_zone text,
    updated_at timestamptz, incidents json, maintenance json
)
LANGUAGE plpgsql STABLE SECURITY DEFINER ROWS 1
SET search_path = public, pg_temp
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

COMMENT ON FUNCTION statusdb_page_feed(text, bytea, integer) IS
    'What a status page''s feeds show (0030): the page (id, name, description, slug, '
    'is_public, time_zone, updated_at), incidents = its unresolved and latest resolved status '
    'incidents, newest updated first, each {id, title, message, severity, status, created_at, '
    'updated_at, resolved_at, updates (last 50), components (names)}; maintenance = its '
    'scheduled and running windows (earliest first) then its completed and cancelled ones '
    '(latest first), each {id, title, description, status, start_time, end_time, '
    'recurrence_rule, recurrence_start, recurrence_local_start, time_zone, created_at, '
    'updated_at, components (names), changes ([status, at], oldest first, last 20)}. At most '
    'feed_limit (1 to 200, null: 50) of each. Same token rule as statusdb_page_view.';

REVOKE EXECUTE ON FUNCTION statusdb_page_feed(text, bytea, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION statusdb_page_feed(text, bytea, integer)
    TO statusdb_app, statusdb_reader;
