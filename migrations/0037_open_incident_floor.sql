-- statusdb 0037: opening an incident pays less above its write floor (issue 20 items 3 and 6).
-- depends: 0036_snapshot_once_per_transaction
--
-- Measured with `python -m bench --case "trigger costs"` (bench/trigger_costs.py: each trigger,
-- foreign key and hot function variant switched off in turn in a scratch copy of the bench
-- database, alternated with everything on; numbers in bench/README.md, "Opening an incident:
-- what each trigger costs"). Four changes, each keeping every result the same:
--
-- * statusdb_status_rank and statusdb_priority_status become CALLED ON NULL INPUT (they were
--   STRICT). Their bodies are a single SELECT of a CASE, IMMUTABLE, not SECURITY DEFINER, no
--   SET: PostgreSQL inlines such a SQL function into the calling query, but not a STRICT one
--   whose body is not itself strict (a CASE may turn NULL into a value), so every call was a
--   function call. The results are unchanged: a NULL input matches no WHEN and the CASE gives
--   NULL, as STRICT did. (Only callers that may EXECUTE them inline them: the derivation's
--   SECURITY DEFINER functions, owned by the owner, do.)
--
-- * The derive trigger skips the derivation's own writes with a WHEN clause. The set-based
--   derivation (statement triggers of incident, maintenance_window_component, ...) UPDATEs
--   component statuses; the BEFORE ROW trigger status_page_component_derive then ran its
--   PL/pgSQL function for each of those rows only to return NEW at its first test (no status
--   input changed and pg_trigger_depth() > 1). The same test now sits in the trigger's WHEN
--   clause, evaluated before the function is called: the clause sees the depth of the UPDATE
--   itself (the function saw it plus one), so "> 1" in the function is "> 0" in the clause.
--   A WHEN clause cannot name OLD on INSERT, so the trigger is split: status_page_component_derive
--   (BEFORE UPDATE, WHEN ...) and status_page_component_derive_insert (BEFORE INSERT), both on
--   the unchanged function; they are the only BEFORE INSERT / the same place among the BEFORE
--   UPDATE triggers by name, so the firing order is unchanged. The function's own test stays
--   (it also lets status.recompute(repair=True) through, a test the clause cannot make: it
--   reads status_repair). The lock statements of the function are not touched (issue 28).
--
-- * statusdb_keep_row_history compares a component's columns one by one instead of to_jsonb
--   of both whole rows when it checks whether an UPDATE changed more than the status columns
--   (the hot check: every derivation UPDATE runs it). The rest of the function is 0025's.
--
-- * The foreign key status_change_status_page_id_fkey is dropped. Why it is redundant: the
--   log is append-only and written only by statusdb's SECURITY DEFINER functions (the
--   application roles may INSERT nothing into it: grants of 0008), which copy status_page_id
--   from the component row they log; status_change_component_id_fkey already makes the
--   component exist, a component never moves to another page (status_page_component_*_fixed,
--   0012) and its own foreign key makes its page exist; deleting a page deletes its components
--   (ON DELETE CASCADE), which deletes their log rows (status_change_component_id_fkey is ON
--   DELETE CASCADE too), so the page key's cascade never had a row left to delete. The index
--   status_change_status_page_id_changed_at_idx stays (uptime reads by page).
--   (component_group_status_change_status_page_id_fkey is the same shape; group roll-up is
--   another helper's area in this wave and it stays.)

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

ALTER FUNCTION statusdb_status_rank(text) CALLED ON NULL INPUT;
ALTER FUNCTION statusdb_priority_status(text) CALLED ON NULL INPUT;

DROP TRIGGER status_page_component_derive ON status_page_component;
CREATE TRIGGER status_page_component_derive
    BEFORE UPDATE ON status_page_component
    FOR EACH ROW
    WHEN ((NEW.team_id, NEW.service_identifier, NEW.manual_status)
              IS DISTINCT FROM (OLD.team_id, OLD.service_identifier, OLD.manual_status)
          OR ((NEW.current_status, NEW.status_updated_at)
                  IS DISTINCT FROM (OLD.current_status, OLD.status_updated_at)
              AND pg_trigger_depth() = 0))
    EXECUTE FUNCTION statusdb_status_page_component_derive();
CREATE TRIGGER status_page_component_derive_insert
    BEFORE INSERT ON status_page_component
    FOR EACH ROW EXECUTE FUNCTION statusdb_status_page_component_derive();
COMMENT ON TRIGGER status_page_component_derive ON status_page_component IS
    'Derives current_status of a changed component; skips (WHEN) the derivation''s own writes (0037).';
COMMENT ON TRIGGER status_page_component_derive_insert ON status_page_component IS
    'Derives current_status of an inserted component (0037: split from the UPDATE trigger).';

-- Redundant: see the top of this file.
-- squawk-ignore ban-drop-constraint
ALTER TABLE status_change DROP CONSTRAINT status_change_status_page_id_fkey;

-- statusdb_keep_row_history: 0025's body; changed only in the status_page_component check
-- (marked 0037).
CREATE OR REPLACE FUNCTION statusdb_keep_row_history() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
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
$$;
