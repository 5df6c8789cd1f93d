-- statusdb 0047: a group's status-only write records no row_history version (issue 20, the
-- group roll-up <= 1.3x).
-- depends: 0046_take_slots_savepoints
--
-- Measured (bench/README.md, "Issue 20: the group roll-up without group versions (0047)"): an
-- open moving 50 components in 5 groups cost 1.43-1.51x the same open without groups after
-- 0044, and with component_group_keep_history_update switched off 1.18-1.30x: every derived
-- group status change was an UPDATE of component_group that statusdb_keep_row_history recorded
-- as a new version through its generic path (dynamic EXECUTEs, to_jsonb ... EXCEPT of both
-- rows), queueing row_history_commit_stamp as well.
--
-- Now a group's status is kept by its log, as a component's is by status_change (0022):
-- * component_group_status_change gets updated_at, the group's updated_at as the logged write
--   left it (the page's updated_at is the greatest of its groups' too, and a group's status can
--   change with no component status change on the page: a non-operational component deleted
--   or moved out of the group). Existing rows are filled from the version that recorded their
--   change (the first version of the group whose status_updated_at is the change's changed_at),
--   else with changed_at.
-- * statusdb_refresh_groups (REPLACED: only its log INSERT writes updated_at too, from the
--   UPDATE's RETURNING) is the only writer of a group's status, and logs every change.
-- * statusdb_keep_row_history (REPLACED: one branch added, for UPDATEs of component_group)
--   records nothing for an UPDATE whose every row changes current_status and no column but
--   current_status, status_updated_at and updated_at, unless this transaction already wrote a
--   version of one of its groups: that version is stamped at commit, after the change it logs,
--   so it must hold the new status (the generic path rewrites it, and stamps again).
-- * statusdb_page_view_at and statusdb_page_view_at_v2 (REPLACED: the versions CTE carries
--   valid_from, page_groups reads the log) take a group's status and updated_at at T from its
--   latest log row by then (seq order, by component_group_status_change_group_id_seq_idx) when
--   that row's changed_at is after the version's valid_from, else from the version. Exact:
--   the writes of one group row are ordered by its row lock, so a later writer's
--   clock_timestamp() (changed_at) and commit stamp (valid_from) are after an earlier writer's
--   commit; a version written in the same transaction as a change is stamped after it (and
--   holds it: above).
-- * statusdb_keep_group_statuses (new): log rows go with their group (ON DELETE CASCADE); a
--   statement trigger folds them into the group's versions first, as
--   statusdb_keep_component_statuses (0022) does for components.
-- Versions written before this migration hold every change already; a log row then lies before
-- the version of its own transaction (stamped at commit), which page_view_at reads after it,
-- so they read as before.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

-- A new nullable column without default: no rewrite. Filled below, in this transaction; the
-- range check's scan follows the fill (a NOT VALID check would not check these rows).
ALTER TABLE component_group_status_change ADD COLUMN updated_at timestamptz;
-- One pass over each (a join, not a lookup per log row): the first version of each group and
-- status_updated_at.
WITH firsts AS (
    SELECT DISTINCT ON (h.row_id, (h.row_data ->> 'status_updated_at')::timestamptz)
           h.row_id, (h.row_data ->> 'status_updated_at')::timestamptz AS changed_at,
           (h.row_data ->> 'updated_at')::timestamptz AS updated_at
    FROM row_history h
    WHERE h.table_name = 'component_group'
    ORDER BY h.row_id, (h.row_data ->> 'status_updated_at')::timestamptz, h.valid_from
)
UPDATE component_group_status_change gc
SET updated_at = coalesce(f.updated_at, l.changed_at)
FROM component_group_status_change l
LEFT JOIN firsts f ON f.row_id = l.group_id AND f.changed_at = l.changed_at
WHERE gc.seq = l.seq;
ALTER TABLE component_group_status_change
    -- squawk-ignore constraint-missing-not-valid
    ADD CONSTRAINT component_group_status_change_updated_at_range_check
    CHECK (updated_at >= '0001-01-02 00:00:00+00' AND updated_at < '9999-12-31 00:00:00+00');
COMMENT ON COLUMN component_group_status_change.updated_at IS
    'The group''s updated_at as this change left it (0047; filled for older rows from the '
    'version that recorded the change, else changed_at): page_view_at shows it.';

-- statusdb_refresh_groups: as 0038 left it (schema/functions/), its log INSERT writing
-- updated_at.
CREATE OR REPLACE FUNCTION statusdb_refresh_groups(group_ids text[])
 RETURNS void
 LANGUAGE plpgsql
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
DECLARE
    locked text[] := '{}';
    wanted text[];
    busy text[];
    notified bigint;
BEGIN
    IF cardinality(group_ids) = 0 THEN
        RETURN;
    END IF;
    PERFORM statusdb_lock_status_keys('{}');
    LOOP
        wanted := statusdb_group_closure(group_ids);
        EXIT WHEN wanted <@ locked;
        -- A group being deleted by another transaction (locked FOR UPDATE, which KEY SHARE
        -- waits for) will wait for the rows of its components this transaction may hold (ON
        -- DELETE SET NULL): waiting for it is a deadlock, so refuse at once, retryably.
        busy := ARRAY(
            SELECT u.id FROM unnest(wanted) AS u (id)
            EXCEPT
            SELECT f.id FROM (SELECT g.id FROM component_group g
                              WHERE g.id = ANY (wanted)
                              FOR KEY SHARE SKIP LOCKED) AS f);
        IF cardinality(busy) > 0 THEN
            RAISE EXCEPTION 'component group % is being deleted by another transaction', busy[1]
                USING ERRCODE = 'serialization_failure',
                      HINT = 'Retry the transaction.';
        END IF;
        PERFORM 1 FROM component_group g WHERE g.id = ANY (wanted) ORDER BY g.id
        FOR NO KEY UPDATE;
        locked := locked || wanted;
        group_ids := wanted;
    END LOOP;
    WITH derived AS (
        SELECT d.group_id, d.current_status, d.derived_status
        FROM statusdb_derive_group_statuses(locked) AS d
        WHERE d.current_status IS DISTINCT FROM d.derived_status
    ),
    changed AS (
        UPDATE component_group g
        SET current_status = derived.derived_status,
            status_updated_at = clock_timestamp()
        FROM derived
        WHERE g.id = ANY (locked)
          AND g.id = derived.group_id
        RETURNING g.id, g.status_page_id, derived.current_status AS previous_status,
                  g.current_status AS new_status, g.status_updated_at, g.updated_at
    ),
    logged AS (
        INSERT INTO component_group_status_change (status_page_id, group_id, previous_status,
                                                   new_status, changed_at, updated_at)
        -- 0047: with the group's updated_at as this write left it (page_view_at reads it).
        SELECT changed.status_page_id, changed.id, changed.previous_status, changed.new_status,
               changed.status_updated_at, changed.updated_at
        FROM changed
        ORDER BY changed.id
        RETURNING component_group_status_change.seq
    )
    SELECT count(pg_notify('statusdb_status_change', logged.seq::text))
    INTO STRICT notified
    FROM logged;
END;
$function$;

-- statusdb_keep_row_history: as 0037 left it (schema/tables/component_group.sql), with the
-- component_group branch (see the top of this file).
CREATE OR REPLACE FUNCTION statusdb_keep_row_history()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
DECLARE
    key_columns text[] := string_to_array(TG_ARGV[0], ',');
    stamp timestamptz := now();  -- provisional: replaced at commit (0025)
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
    -- 0025: the tables written: the audited one, and for status_incident its timeline entries
    -- (status_incident_update, one version per entry written: see "Timelines" at the top).
    targets text[] := ARRAY[TG_TABLE_NAME::text];
    -- A status incident's row without its timeline, with its length (%1$s: the row's alias).
    timeline_free text := '((to_jsonb(%1$s) - ''updates'')'
        ' || jsonb_build_object(''updates_length'', jsonb_array_length(%1$s.updates)))';
    written_entries text;
    gone_entries text;
    i integer;
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
        IF TG_TABLE_NAME = 'status_incident' THEN
            -- 0025: the version holds the timeline's length; its entries are versions of
            -- their own (below), so the timeline is not copied into every version.
            written := 'SELECT ' || format(timeline_free, 'n') || ' AS d FROM new_rows n';
        END IF;
        IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'status_page_component' THEN
            -- A component's status is kept by status_change (see "Component statuses"): an
            -- UPDATE that changes only its status columns (and updated_at, which every UPDATE
            -- touches) records nothing. Static SQL, planned for this table only.
            -- 0037: compared column by column (every column but status_only), not as
            -- to_jsonb of whole rows: no jsonb built per row on the hot path.
            -- tests/test_trigger_costs.py keeps this list equal to the table's columns.
            IF NOT EXISTS (SELECT 1 FROM new_rows n LEFT JOIN old_rows o ON o.id = n.id
                           WHERE o.id IS NULL
                              OR (n.status_page_id, n.name, n.description, n.display_order,
                                  n.team_id, n.service_identifier, n.created_at, n.group_id)
                                 IS DISTINCT FROM
                                 (o.status_page_id, o.name, o.description, o.display_order,
                                  o.team_id, o.service_identifier, o.created_at, o.group_id))
            THEN
                RETURN NULL;
            END IF;
            written := 'SELECT to_jsonb(n) AS d FROM new_rows n LEFT JOIN old_rows o ON o.id = n.id'
                || ' WHERE o.id IS NULL OR (to_jsonb(n) - ' || quote_literal(status_only::text)
                || '::text[]) IS DISTINCT FROM (to_jsonb(o) - ' || quote_literal(status_only::text)
                || '::text[])';
        ELSIF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'component_group' THEN
            -- 0047: a group's status is kept by component_group_status_change, as a
            -- component's is by status_change: an UPDATE whose every row changes its
            -- current_status (logged by statusdb_refresh_groups with the new updated_at) and no
            -- column but the status ones (current_status, status_updated_at, updated_at)
            -- records nothing, unless this transaction already wrote a version of one of its
            -- groups (that version, stamped at commit after the log row, is then rewritten
            -- below, as every write of this transaction's rows is). Columns compared one by
            -- one (tests/test_group_history.py keeps the list equal to the table's columns).
            IF NOT EXISTS (SELECT 1 FROM new_rows n LEFT JOIN old_rows o ON o.id = n.id
                           WHERE o.id IS NULL
                              OR n.current_status IS NOT DISTINCT FROM o.current_status
                              OR (n.status_page_id, n.parent_id, n.name, n.description,
                                  n.display_order, n.created_at)
                                 IS DISTINCT FROM
                                 (o.status_page_id, o.parent_id, o.name, o.description,
                                  o.display_order, o.created_at))
               AND NOT EXISTS (SELECT 1 FROM new_rows n
                               JOIN public.row_history h
                                 ON h.table_name = 'component_group' AND h.row_id = n.id
                                AND h.valid_to IS NULL
                               WHERE h.written_by_xact = pg_current_xact_id())
            THEN
                RETURN NULL;
            END IF;
            written := written
                || ' EXCEPT SELECT to_jsonb(o) - ''access_token_hash'' FROM old_rows o';
        ELSIF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'status_incident' THEN
            written := written
                || ' EXCEPT SELECT ' || format(timeline_free, 'o') || ' FROM old_rows o';
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
    IF TG_TABLE_NAME = 'status_incident' THEN
        -- Timeline entries, keyed [incident id, position], as (key, page, d): those written
        -- (new, or changed at their position) and those gone (past the new end, or deleted).
        targets := targets || 'status_incident_update'::text;
        IF TG_OP <> 'DELETE' THEN
            written_entries :=
                'SELECT jsonb_build_array(n.id, u.p - 1)::text AS key, n.status_page_id AS page,'
                '       jsonb_build_object(''status_incident_id'', n.id, ''position'', u.p - 1,'
                '                          ''entry'', u.e) AS d'
                ' FROM new_rows n'
                || CASE WHEN TG_OP = 'UPDATE' THEN
                        ' LEFT JOIN old_rows o ON o.id = n.id'
                        ' CROSS JOIN LATERAL jsonb_array_elements('
                        '     CASE WHEN o.updates IS NOT DISTINCT FROM n.updates'
                        '          THEN ''[]''::jsonb ELSE n.updates END)'
                        '     WITH ORDINALITY AS u (e, p)'
                        ' WHERE (o.updates -> (u.p - 1)::integer) IS DISTINCT FROM u.e'
                   ELSE ' CROSS JOIN LATERAL jsonb_array_elements(n.updates)'
                        '     WITH ORDINALITY AS u (e, p)' END;
        END IF;
        IF TG_OP = 'UPDATE' THEN
            gone_entries :=
                'SELECT jsonb_build_array(o.id, g.p)::text FROM old_rows o'
                ' LEFT JOIN new_rows n ON n.id = o.id'
                ' CROSS JOIN LATERAL generate_series(coalesce(jsonb_array_length(n.updates), 0),'
                '                                    jsonb_array_length(o.updates) - 1) AS g (p)'
                ' WHERE n.updates IS DISTINCT FROM o.updates';
        ELSIF TG_OP = 'DELETE' THEN
            gone_entries :=
                'SELECT jsonb_build_array(o.id, g.p)::text FROM old_rows o'
                ' CROSS JOIN LATERAL generate_series(0, jsonb_array_length(o.updates) - 1)'
                '     AS g (p)';
        END IF;
    END IF;

    -- Each target table (the loop's body is 0022's, not re-indented, to keep it comparable).
    FOR i IN 1 .. cardinality(targets) LOOP
    IF i = 2 THEN
        written := written_entries;
        gone := gone_entries;
    END IF;

    IF gone IS NOT NULL THEN
        EXECUTE format(
            'DELETE FROM public.row_history h USING (%s) AS g (key)'
            ' WHERE h.table_name = $1 AND h.row_id = g.key AND h.valid_to IS NULL'
            '   AND h.written_by_xact = $3', gone)
            USING targets[i], key_columns, me;
        EXECUTE format(
            'UPDATE public.row_history h'
            ' SET valid_to = greatest($4, h.valid_from + interval ''1 microsecond''),'
            '     pending_xact = $3'
            ' FROM (%s) AS g (key)'
            ' WHERE h.table_name = $1 AND h.row_id = g.key AND h.valid_to IS NULL', gone)
            USING targets[i], key_columns, me, stamp;
    END IF;
    IF written IS NULL THEN
        CONTINUE;  -- (0022 returned here, before 0025's stamp below)
    END IF;

    -- Versions this transaction wrote: overwritten.
    EXECUTE format(
        'UPDATE public.row_history h SET row_data = c.d FROM (%s) AS c'
        ' WHERE h.table_name = $1 AND h.row_id = c.key'
        '   AND h.valid_to IS NULL AND h.written_by_xact = $3', written)
        USING targets[i], key_columns, me;
    -- Versions other transactions wrote: ended.
    EXECUTE format(
        'UPDATE public.row_history h'
        ' SET valid_to = greatest($4, h.valid_from + interval ''1 microsecond''),'
        '     pending_xact = $3'
        ' FROM (%s) AS c'
        ' WHERE h.table_name = $1 AND h.row_id = c.key'
        '   AND h.valid_to IS NULL AND h.written_by_xact <> $3', written)
        USING targets[i], key_columns, me, stamp;
    -- New versions, from where the previous one ended (or now()).
    IF i = 2 THEN
        page_of := 'c.page';
    ELSIF TG_NARGS > 2 THEN
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
        '                                written_by_xact, row_data, pending_xact)'
        ' SELECT $1, k.key, %s,'
        '        greatest($4, (SELECT l.valid_to FROM public.row_history l'
        '                      WHERE l.table_name = $1 AND l.row_id = k.key'
        '                      ORDER BY l.valid_from DESC LIMIT 1)),'
        '        $3, c.d, $3'
        ' FROM (%s) AS c CROSS JOIN LATERAL (SELECT c.key) AS k (key)'
        ' WHERE NOT EXISTS (SELECT 1 FROM public.row_history o'
        '                   WHERE o.table_name = $1 AND o.row_id = k.key AND o.valid_to IS NULL)',
        page_of, written)
        USING targets[i], key_columns, me, stamp;
    END LOOP;
    -- The stamp at commit (0025): due once per transaction, again after a write that follows
    -- an earlier stamp (see statusdb_stamp_row_history).
    INSERT INTO public.row_history_commit AS c (xact) VALUES (me)
    ON CONFLICT (xact) DO UPDATE SET previous_stamp = c.stamped_at, stamped_at = NULL
        WHERE c.stamped_at IS NOT NULL;
    RETURN NULL;
END;
$function$;

-- Deleted group log rows (their group, or its page, is deleted: ON DELETE CASCADE) are folded
-- into the group's versions first, as 0022 folds a deleted component's status changes: each
-- version is cut at the changes logged after its valid_from, each piece holding the status,
-- status_updated_at and updated_at of the latest such change (page_view_at's rule), so a deleted
-- group still shows its past statuses. Versions this transaction wrote are left as they are:
-- stamped at commit, after every change it logged, they never show a change of its log.
CREATE FUNCTION statusdb_keep_group_statuses() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    me xid8 := pg_current_xact_id();
    pieces row_history[];
BEGIN
    -- Bounded by the deleted changes and the versions of their groups.
    WITH changes AS (
        SELECT o.group_id, o.seq, o.new_status, o.changed_at, o.updated_at FROM old_rows o
    ),
    vers AS (
        SELECT h.* FROM row_history h
        WHERE h.table_name = 'component_group'
          AND h.row_id IN (SELECT c.group_id FROM changes c)
          AND h.written_by_xact <> me
    ),
    bounds AS (
        SELECT v.row_id, v.valid_from AS b FROM vers v
        UNION
        SELECT c.group_id, c.changed_at
        FROM changes c
        JOIN vers v ON v.row_id = c.group_id AND c.changed_at > v.valid_from
                   AND (v.valid_to IS NULL OR c.changed_at < v.valid_to)
    )
    SELECT array_agg(ROW(v.table_name, v.row_id, v.status_page_id, b.b,
                         CASE WHEN b.next_b IS NULL THEN v.valid_to
                              ELSE least(b.next_b, coalesce(v.valid_to, b.next_b)) END,
                         v.written_by_xact,
                         CASE WHEN s.new_status IS NULL THEN v.row_data
                              ELSE v.row_data || jsonb_build_object(
                                  'current_status', s.new_status,
                                  'status_updated_at', s.changed_at,
                                  'updated_at', coalesce(s.updated_at, s.changed_at)) END,
                         -- A pending end (this transaction ends the version) stays on the
                         -- last piece.
                         CASE WHEN b.next_b IS NULL OR b.next_b >= v.valid_to
                              THEN v.pending_xact END)::row_history)
    INTO pieces
    FROM (SELECT bb.row_id, bb.b, lead(bb.b) OVER (PARTITION BY bb.row_id ORDER BY bb.b) AS next_b
          FROM bounds bb) AS b
    JOIN vers v ON v.row_id = b.row_id AND v.valid_from <= b.b
               AND (v.valid_to IS NULL OR v.valid_to > b.b)
    LEFT JOIN LATERAL (
        SELECT c.new_status, c.changed_at, c.updated_at FROM changes c
        WHERE c.group_id = b.row_id AND c.changed_at <= b.b AND c.changed_at > v.valid_from
        ORDER BY c.seq DESC LIMIT 1
    ) AS s ON true;
    IF pieces IS NULL THEN
        RETURN NULL;
    END IF;
    DELETE FROM row_history h
    WHERE h.table_name = 'component_group' AND h.written_by_xact <> me
      AND h.row_id IN (SELECT DISTINCT p.row_id FROM unnest(pieces) AS p);
    INSERT INTO row_history SELECT * FROM unnest(pieces);
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION statusdb_keep_group_statuses() IS
    'Statement trigger on DELETE of component_group_status_change (0047): folds the deleted '
    'status changes of a group into its row_history versions, so page_view_at still shows them.';
REVOKE EXECUTE ON FUNCTION statusdb_keep_group_statuses() FROM PUBLIC;

CREATE TRIGGER component_group_status_change_keep_history_delete
AFTER DELETE ON component_group_status_change
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION statusdb_keep_group_statuses();

-- statusdb_page_view_at: as 0029 left it (schema/functions/), groups' statuses from their log.
CREATE OR REPLACE FUNCTION statusdb_page_view_at(page_slug text, page_token_hash bytea, at_time timestamp with time zone, maintenance_horizon interval, maintenance_limit integer)
 RETURNS TABLE(id text, name text, description text, slug text, is_public boolean, updated_at timestamp with time zone, components json, incidents json, maintenance json, version bigint, fresh_until timestamp with time zone, groups json)
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER ROWS 1
 SET search_path TO 'public', 'pg_temp'
AS $function$
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
        SELECT h.table_name, h.row_data AS r, h.valid_from
        FROM page
        JOIN row_history h ON h.status_page_id = page.id
        WHERE h.table_name IN ('status_page_component', 'component_group')
          AND (h.row_data ->> 'status') IS NULL
          AND h.valid_to IS NULL AND h.valid_from <= at_time
        UNION ALL
        SELECT h.table_name, h.row_data AS r, h.valid_from
        FROM page
        JOIN row_history h ON h.status_page_id = page.id
        WHERE h.table_name IN ('status_page_component', 'component_group')
          AND (h.row_data ->> 'status') IS NULL
          AND h.valid_to > at_time AND h.valid_from <= at_time
        UNION ALL
        SELECT h.table_name, h.row_data AS r, h.valid_from
        FROM page CROSS JOIN keys k
        JOIN row_history h ON h.status_page_id = page.id AND h.table_name = k.table_name
                          AND (h.row_data ->> 'status') = k.status
        WHERE h.valid_to IS NULL AND h.valid_from <= at_time
        UNION ALL
        SELECT h.table_name, h.row_data AS r, h.valid_from
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
                   (v.r ->> 'display_order')::integer, t.current_status)
                   ORDER BY (v.r ->> 'display_order')::integer, v.r ->> 'name', v.r ->> 'id'),
                   '[]') AS items,
               max(t.updated_at) AS last_change
        FROM versions v
        -- 0047: the status and updated_at at at_time: the group's latest logged change by then
        -- when it is later than the version (a status-only write records no version), else the
        -- version's. Reads component_group_status_change_group_id_seq_idx backwards.
        LEFT JOIN LATERAL (
            SELECT gc.new_status, gc.changed_at, gc.updated_at
            FROM component_group_status_change gc
            WHERE gc.group_id = v.r ->> 'id' AND gc.changed_at <= at_time
            ORDER BY gc.seq DESC
            LIMIT 1
        ) AS s ON s.changed_at > v.valid_from
        CROSS JOIN LATERAL (
            SELECT coalesce(s.new_status, v.r ->> 'current_status') AS current_status,
                   CASE WHEN s.new_status IS NULL THEN (v.r ->> 'updated_at')::timestamptz
                        ELSE coalesce(s.updated_at, s.changed_at) END AS updated_at
        ) AS t
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
$function$;

-- statusdb_page_view_at_v2: the same change.
CREATE OR REPLACE FUNCTION statusdb_page_view_at_v2(page_slug text, page_token_hash bytea, at_time timestamp with time zone, maintenance_horizon interval, maintenance_limit integer)
 RETURNS TABLE(id text, name text, description text, slug text, is_public boolean, updated_at timestamp with time zone, components json, incidents json, maintenance json, version bigint, fresh_until timestamp with time zone, groups json, time_zone text)
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER ROWS 1
 SET search_path TO 'public', 'pg_temp'
AS $function$
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
        SELECT h.table_name, h.row_data AS r, h.valid_from
        FROM page
        JOIN row_history h ON h.status_page_id = page.id
        WHERE h.table_name IN ('status_page_component', 'component_group')
          AND (h.row_data ->> 'status') IS NULL
          AND h.valid_to IS NULL AND h.valid_from <= at_time
        UNION ALL
        SELECT h.table_name, h.row_data AS r, h.valid_from
        FROM page
        JOIN row_history h ON h.status_page_id = page.id
        WHERE h.table_name IN ('status_page_component', 'component_group')
          AND (h.row_data ->> 'status') IS NULL
          AND h.valid_to > at_time AND h.valid_from <= at_time
        UNION ALL
        SELECT h.table_name, h.row_data AS r, h.valid_from
        FROM page CROSS JOIN keys k
        JOIN row_history h ON h.status_page_id = page.id AND h.table_name = k.table_name
                          AND (h.row_data ->> 'status') = k.status
        WHERE h.valid_to IS NULL AND h.valid_from <= at_time
        UNION ALL
        SELECT h.table_name, h.row_data AS r, h.valid_from
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
                   (v.r ->> 'display_order')::integer, t.current_status)
                   ORDER BY (v.r ->> 'display_order')::integer, v.r ->> 'name', v.r ->> 'id'),
                   '[]') AS items,
               max(t.updated_at) AS last_change
        FROM versions v
        -- 0047: the status and updated_at at at_time: the group's latest logged change by then
        -- when it is later than the version (a status-only write records no version), else the
        -- version's. Reads component_group_status_change_group_id_seq_idx backwards.
        LEFT JOIN LATERAL (
            SELECT gc.new_status, gc.changed_at, gc.updated_at
            FROM component_group_status_change gc
            WHERE gc.group_id = v.r ->> 'id' AND gc.changed_at <= at_time
            ORDER BY gc.seq DESC
            LIMIT 1
        ) AS s ON s.changed_at > v.valid_from
        CROSS JOIN LATERAL (
            SELECT coalesce(s.new_status, v.r ->> 'current_status') AS current_status,
                   CASE WHEN s.new_status IS NULL THEN (v.r ->> 'updated_at')::timestamptz
                        ELSE coalesce(s.updated_at, s.changed_at) END AS updated_at
        ) AS t
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
$function$;
