-- statusdb 0025 rollback: 0022's page history and postmortems again (the page view at T with
-- its CTE over all versions, versions stamped with the writer's now(), postmortems deleted with
-- their incident by any role).

-- squawk-ignore-file ban-drop-table, ban-drop-function, ban-drop-column

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

-- Refuses while it would lose the audit records of deleted postmortems (their text).
DO $$
DECLARE
    deletions bigint;
BEGIN
    IF current_setting('statusdb.allow_data_loss', true) = 'on' THEN
        RETURN;
    END IF;
    SELECT count(*) INTO deletions FROM status_incident_postmortem_deletion;
    IF deletions > 0 THEN
        RAISE EXCEPTION 'rolling back 0025_history_bounds would lose data: '
                        'status_incident_postmortem_deletion has % audit records (the text of '
                        'deleted postmortems). %', deletions,
            'Pass --allow-data-loss to statusdb rollback (plain yoyo: '
            'PGOPTIONS=''-c statusdb.allow_data_loss=on'') to roll back anyway.'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END;
$$;

DROP TRIGGER status_incident_postmortem_deleted ON status_incident_postmortem;
DROP FUNCTION statusdb_status_incident_postmortem_deleted();
DROP TABLE status_incident_postmortem_deletion;

-- Timelines back into every status_incident version (each as its entries were at its start),
-- then the entry versions go.
UPDATE row_history v
SET row_data = (v.row_data - 'updates_length') || jsonb_build_object('updates', (
        SELECT coalesce(jsonb_agg(e.row_data -> 'entry'
                                  ORDER BY (e.row_data ->> 'position')::integer), '[]'::jsonb)
        FROM row_history e
        WHERE e.table_name = 'status_incident_update'
          AND e.row_data ->> 'status_incident_id' = v.row_id
          AND (e.row_data ->> 'position')::integer < (v.row_data ->> 'updates_length')::integer
          AND e.valid_from <= v.valid_from
          AND (e.valid_to IS NULL OR e.valid_to > v.valid_from)))
WHERE v.table_name = 'status_incident' AND v.row_data ? 'updates_length';
DELETE FROM row_history h WHERE h.table_name = 'status_incident_update';
-- squawk-ignore require-concurrent-index-deletion
DROP INDEX row_history_incident_update_idx;

-- Every committed version is stamped (pending_xact is set only inside transactions).
DROP TRIGGER row_history_commit_stamp ON row_history_commit;
DROP FUNCTION statusdb_stamp_row_history();
DROP TABLE row_history_commit;
ALTER TABLE row_history DROP COLUMN pending_xact;  -- and its index row_history_pending_xact_idx
COMMENT ON COLUMN row_history.valid_from IS
    'Start of the version: the writing transaction''s now() (1 us after the previous version '
    'when that one was written by a transaction that started later).';
COMMENT ON COLUMN row_history.valid_to IS 'End of the version (exclusive); NULL: current.';

-- squawk-ignore require-concurrent-index-creation
CREATE INDEX row_history_status_page_id_valid_to_idx ON row_history (status_page_id, valid_to);
-- squawk-ignore require-concurrent-index-deletion
DROP INDEX row_history_window_component_idx;
-- squawk-ignore require-concurrent-index-deletion
DROP INDEX row_history_page_table_status_idx;

CREATE OR REPLACE FUNCTION statusdb_keep_row_history() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    key_columns text[] := string_to_array(TG_ARGV[0], ',');
    stamp timestamptz := now();
    me xid8;
    written text;  -- the rows to record, as a query of (d jsonb)
    gone text;     -- the keys that end, as a query of (key text)
    page_of text;  -- the page of a written row c
    -- status_page_component's columns whose changes alone record no version.
    status_only text[] := '{current_status,status_updated_at,updated_at,manual_status}';
    -- The key of a row given as jsonb (%1$s), spelled out (no function call per row): its key
    -- column's value, or a JSON array of the values of a composite key.
    key_of text := CASE WHEN cardinality(key_columns) = 1
                        THEN format('(%%1$s ->> %L)', key_columns[1])
                        ELSE format('jsonb_build_array(%s)::text',
                                    (SELECT string_agg(format('%%1$s -> %L', k), ', ' ORDER BY o)
                                     FROM unnest(key_columns) WITH ORDINALITY AS u (k, o)))
                   END;
    -- The same from a row of a transition table (%1$s: its alias), reading the key columns.
    key_of_row text := CASE WHEN cardinality(key_columns) = 1
                            THEN format('(%%1$s.%I)::text', key_columns[1])
                            ELSE format('jsonb_build_array(%s)::text',
                                        (SELECT string_agg(format('%%1$s.%I', k), ', '
                                                           ORDER BY o)
                                         FROM unnest(key_columns) WITH ORDINALITY AS u (k, o)))
                       END;
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF NOT EXISTS (SELECT 1 FROM old_rows) THEN
            RETURN NULL;
        END IF;
        gone := format('SELECT ' || key_of_row || ' AS key FROM old_rows o', 'o');
    ELSE
        IF NOT EXISTS (SELECT 1 FROM new_rows) THEN
            RETURN NULL;
        END IF;
        written := 'SELECT to_jsonb(n) - ''access_token_hash'' AS d FROM new_rows n';
        IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'status_page_component' THEN
            -- A component's status is kept by status_change (see "Component statuses"): an
            -- UPDATE that changes only its status columns (and updated_at, which every UPDATE
            -- touches) records nothing. Static SQL, planned for this table only.
            IF NOT EXISTS (SELECT 1 FROM new_rows n LEFT JOIN old_rows o ON o.id = n.id
                           WHERE o.id IS NULL
                              OR (to_jsonb(n) - status_only)
                                 IS DISTINCT FROM (to_jsonb(o) - status_only)) THEN
                RETURN NULL;
            END IF;
            written := 'SELECT to_jsonb(n) AS d FROM new_rows n LEFT JOIN old_rows o ON o.id = n.id'
                || ' WHERE o.id IS NULL OR (to_jsonb(n) - ' || quote_literal(status_only::text)
                || '::text[]) IS DISTINCT FROM (to_jsonb(o) - ' || quote_literal(status_only::text)
                || '::text[])';
        ELSIF TG_OP = 'UPDATE' THEN
            written := written
                || ' EXCEPT SELECT to_jsonb(o) - ''access_token_hash'' FROM old_rows o';
        END IF;
        written := format('SELECT ' || key_of || ' AS key, w.d FROM (%s) AS w', 'w.d', written);
        IF TG_OP = 'UPDATE' THEN
            -- A changed key: the old key's row ends (ids never change in statusdb).
            gone := format('SELECT ' || key_of_row || ' FROM old_rows o', 'o')
                || format(' EXCEPT SELECT ' || key_of_row || ' FROM new_rows n', 'n');
        END IF;
    END IF;
    me := pg_current_xact_id();

    IF gone IS NOT NULL THEN
        EXECUTE format(
            'DELETE FROM public.row_history h USING (%s) AS g (key)'
            ' WHERE h.table_name = $1 AND h.row_id = g.key AND h.valid_to IS NULL'
            '   AND h.written_by_xact = $3', gone)
            USING TG_TABLE_NAME::text, key_columns, me;
        EXECUTE format(
            'UPDATE public.row_history h'
            ' SET valid_to = greatest($4, h.valid_from + interval ''1 microsecond'')'
            ' FROM (%s) AS g (key)'
            ' WHERE h.table_name = $1 AND h.row_id = g.key AND h.valid_to IS NULL', gone)
            USING TG_TABLE_NAME::text, key_columns, me, stamp;
    END IF;
    IF written IS NULL THEN
        RETURN NULL;
    END IF;

    -- Versions this transaction wrote: overwritten.
    EXECUTE format(
        'UPDATE public.row_history h SET row_data = c.d FROM (%s) AS c'
        ' WHERE h.table_name = $1 AND h.row_id = c.key'
        '   AND h.valid_to IS NULL AND h.written_by_xact = $3', written)
        USING TG_TABLE_NAME::text, key_columns, me;
    -- Versions other transactions wrote: ended.
    EXECUTE format(
        'UPDATE public.row_history h'
        ' SET valid_to = greatest($4, h.valid_from + interval ''1 microsecond'')'
        ' FROM (%s) AS c'
        ' WHERE h.table_name = $1 AND h.row_id = c.key'
        '   AND h.valid_to IS NULL AND h.written_by_xact <> $3', written)
        USING TG_TABLE_NAME::text, key_columns, me, stamp;
    -- New versions, from where the previous one ended (or now()).
    IF TG_NARGS > 2 THEN
        page_of := format(
            'coalesce((SELECT p.status_page_id FROM public.%I p WHERE p.id = c.d ->> %L),'
            ' (SELECT v.status_page_id FROM public.row_history v'
            '  WHERE v.table_name = %L AND v.row_id = c.d ->> %L'
            '  ORDER BY v.valid_from DESC LIMIT 1))',
            TG_ARGV[2], TG_ARGV[1], TG_ARGV[2], TG_ARGV[1]);
    ELSE
        page_of := format('c.d ->> %L', TG_ARGV[1]);
    END IF;
    EXECUTE format(
        'INSERT INTO public.row_history (table_name, row_id, status_page_id, valid_from,'
        '                                written_by_xact, row_data)'
        ' SELECT $1, k.key, %s,'
        '        greatest($4, (SELECT l.valid_to FROM public.row_history l'
        '                      WHERE l.table_name = $1 AND l.row_id = k.key'
        '                      ORDER BY l.valid_from DESC LIMIT 1)),'
        '        $3, c.d'
        ' FROM (%s) AS c CROSS JOIN LATERAL (SELECT c.key) AS k (key)'
        ' WHERE NOT EXISTS (SELECT 1 FROM public.row_history o'
        '                   WHERE o.table_name = $1 AND o.row_id = k.key AND o.valid_to IS NULL)',
        page_of, written)
        USING TG_TABLE_NAME::text, key_columns, me, stamp;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION statusdb_keep_component_statuses() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    pieces row_history[];
BEGIN
    -- Bounded by the deleted changes and the versions of their components.
    WITH changes AS (
        SELECT o.component_id, o.seq, o.new_status, o.changed_at FROM old_rows o
    ),
    vers AS (
        SELECT h.* FROM row_history h
        WHERE h.table_name = 'status_page_component'
          AND h.row_id IN (SELECT c.component_id FROM changes c)
    ),
    bounds AS (
        SELECT v.row_id, v.valid_from AS b FROM vers v
        UNION
        SELECT c.component_id, c.changed_at
        FROM changes c
        JOIN vers v ON v.row_id = c.component_id AND c.changed_at > v.valid_from
                   AND (v.valid_to IS NULL OR c.changed_at < v.valid_to)
    )
    SELECT array_agg(ROW(v.table_name, v.row_id, v.status_page_id, b.b,
                         CASE WHEN b.next_b IS NULL THEN v.valid_to
                              ELSE least(b.next_b, coalesce(v.valid_to, b.next_b)) END,
                         v.written_by_xact,
                         CASE WHEN s.new_status IS NULL THEN v.row_data
                              ELSE v.row_data || jsonb_build_object(
                                  'current_status', s.new_status,
                                  'status_updated_at', s.changed_at) END)::row_history)
    INTO pieces
    FROM (SELECT bb.row_id, bb.b, lead(bb.b) OVER (PARTITION BY bb.row_id ORDER BY bb.b) AS next_b
          FROM bounds bb) AS b
    JOIN vers v ON v.row_id = b.row_id AND v.valid_from <= b.b
               AND (v.valid_to IS NULL OR v.valid_to > b.b)
    LEFT JOIN LATERAL (
        SELECT c.new_status, c.changed_at FROM changes c
        WHERE c.component_id = b.row_id AND c.changed_at <= b.b
        ORDER BY c.seq DESC LIMIT 1
    ) AS s ON true;
    IF pieces IS NULL THEN
        RETURN NULL;
    END IF;
    DELETE FROM row_history h
    WHERE h.table_name = 'status_page_component'
      AND h.row_id IN (SELECT DISTINCT p.row_id FROM unnest(pieces) AS p);
    INSERT INTO row_history SELECT * FROM unnest(pieces);
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION statusdb_page_view_at(
    page_slug text, page_token_hash bytea, at_time timestamptz, maintenance_horizon interval,
    maintenance_limit integer
)
RETURNS TABLE (
    id text, name text, description text, slug text, is_public boolean, updated_at timestamptz,
    components json, incidents json, maintenance json, version bigint, fresh_until timestamptz,
    groups json
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
    versions AS (
        SELECT h.table_name, h.row_data AS r
        FROM page
        JOIN row_history h ON h.status_page_id = page.id
        WHERE h.valid_to IS NULL AND h.valid_from <= at_time
          AND h.table_name IN ('status_page_component', 'status_incident', 'maintenance_window',
                               'maintenance_window_component', 'component_group')
        UNION ALL
        SELECT h.table_name, h.row_data AS r
        FROM page
        JOIN row_history h ON h.status_page_id = page.id
        WHERE h.valid_to > at_time AND h.valid_from <= at_time
          AND h.table_name IN ('status_page_component', 'status_incident', 'maintenance_window',
                               'maintenance_window_component', 'component_group')
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
                   v.r -> 'updates')
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
                   w.component_ids)
                   ORDER BY w.start_time, w.id), '[]') AS items
        FROM (
            SELECT v.r ->> 'id' AS id, v.r ->> 'title' AS title,
                   v.r ->> 'description' AS description, v.r ->> 'status' AS status,
                   (v.r ->> 'start_time')::timestamptz AS start_time,
                   (v.r ->> 'end_time')::timestamptz AS end_time,
                   ARRAY(SELECT mc.r ->> 'component_id'
                         FROM versions mc
                         WHERE mc.table_name = 'maintenance_window_component'
                           AND mc.r ->> 'maintenance_window_id' = v.r ->> 'id'
                         ORDER BY mc.r ->> 'component_id') AS component_ids
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
           0::bigint, NULL::timestamptz, page_groups.items
    FROM page, page_components, page_incidents, page_maintenance, page_groups;
END;
$$;

COMMENT ON FUNCTION statusdb_page_view_at(text, bytea, timestamptz, interval, integer) IS
    'A status page as statusdb_page_view showed it at at_time (from row_history, horizon to '
    'now()), groups included (last column, as 0020''s page view); access as the page is now: '
    'public then and now, or the digest of its current token. A past view has no version: '
    'version is 0 and fresh_until null.';
