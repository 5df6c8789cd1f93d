-- statusdb 0025: the page history bounded for readers, stamped at commit, and published
-- postmortems kept (issue 26, items 1, 3 and 4).
-- depends: 0024_readable_bounded_values
--
-- ## 1. statusdb_page_view_at's cost is bounded
--
-- 0022's page view at T gathered every version of the page valid at T (all its windows' links,
-- every incident ever resolved, every window ever completed) into one CTE and looked each
-- listed window's components up in it: on a public page with 2,000 windows x 30 components one
-- call as the reader took 2.4-2.6 s. Now it reads, through row_history indexes only:
--   * the page's versions valid at T of its components and groups, of its incidents then
--     active (status not RESOLVED) and of its windows then SCHEDULED or IN_PROGRESS, by
--     row_history_page_table_status_idx (page, table, status, valid_to): the current versions
--     (valid_to null) and those that ended after T, of those keys only; resolved incidents and
--     ended windows are not read;
--   * the component links of the listed windows only (at most maintenance_limit <= 200), each
--     by row_history_window_component_idx (the window's links' versions).
-- So a call costs what the page showed at T (its components, groups, active incidents and
-- upcoming windows: what page_view renders) plus the versions of those kinds that ended after T,
-- plus 200 windows' links: never windows x versions. tests/security/test_s19_history_cost.py
-- asserts it on the plan. The index replaces row_history_status_page_id_valid_to_idx (same
-- leading column; nothing else read it), so the write cost stays one index entry per version,
-- plus one for each window link version.
--
-- ## 3. Versions are stamped at commit
--
-- 0022 stamped a version with its writer's now(), the start of its transaction, which the
-- client chooses: a writer that began at T0, waited, then renamed a component and committed made
-- page_view_at(T1), T0 < T1 < commit, show a change no reader saw at T1. Now the versions a
-- transaction writes get one stamp at its commit: the history trigger records them as before
-- (provisionally from now(), so the transaction's own page_view_at(now()) sees them) and marks
-- them pending (row_history.pending_xact); it registers the transaction in row_history_commit,
-- whose DEFERRABLE INITIALLY DEFERRED constraint trigger runs at commit and sets, on every
-- pending version, valid_from (a new version) or valid_to (a version it ended) to the stamp:
-- clock_timestamp() then, after every version the transaction ended. A transaction that writes
-- again after its stamp (a later deferred trigger, or a client that ran SET CONSTRAINTS ...
-- IMMEDIATE, which makes the stamp run at the end of each writing statement) is stamped again,
-- all its versions moved to the new stamp: its stamp is never earlier than its last write.
-- What page_view_at(T) then guarantees (README "The page as it was, and postmortems"): it shows
-- exactly the transactions stamped by T, all of each or nothing; a stamp lies between the
-- transaction's last write and its commit (at the commit unless the client set the stamping
-- IMMEDIATE: then it may idle after its last write, and page_view_at shows its writes from that
-- write on, never from before it). Writers of one row are ordered as they committed (the second
-- waits for the first's row lock, so it stamps after the first committed). Component statuses
-- are not versions (0022): they come from status_change.changed_at, stamped by the derivation
-- (0003), outside this change.
--
-- ## Timelines (issue 20, item 4): the history grows linearly
--
-- 0022 copied a status incident's whole timeline (its updates jsonb) into every version: 100
-- updates made 100 versions holding 5,050 entries. Now a status_incident version holds the
-- timeline's length (updates_length) instead of updates, and each entry is a version of its
-- own, table_name 'status_incident_update', row_id [incident id, position], row_data
-- {status_incident_id, position, entry}, written by the same trigger when an entry is new or
-- changed at its position, ended when it is gone (the timeline got shorter, the incident was
-- deleted), stamped at commit like every version. 100 updates now make 101 incident versions
-- and 100 entry versions. page_view_at rebuilds the timeline at T from the entries valid at T
-- below the version's length (row_history_incident_update_idx), the same jsonb as the column
-- (so the same JSON text); versions written before 0025 keep their updates and are read as
-- they are. This migration moves the current versions' timelines into entry versions valid from
-- the same instant; its rollback puts every version's timeline back.
--
-- ## 4. Published postmortems are kept
--
-- 0022 let the app delete a status incident (its revisions cascaded), re-insert it with the same
-- id and timeline and publish another revision 1: the published text was gone without trace.
-- Now deleting revisions, which only happens once their incident is gone (0022 refuses it
-- before), is refused unless the session's login is a member of the table's owner (session_user:
-- no client can change it; SET ROLE cannot reach the owner), whichever path deleted the incident
-- (DELETE of it, of its page, of its team): so an app or reader login can never remove a
-- published text. The owner's deletion leaves an audit record, the revisions' text included, in
-- status_incident_postmortem_deletion (owner only).

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

-- --------------------------------------------------------------------------------------------
-- 1. Indexes for the page view at T

-- Built in yoyo's transaction: row_history is written by page writes only, which wait for the
-- build (seconds on millions of versions); build them CONCURRENTLY by hand first on a larger
-- history (CREATE INDEX IF NOT EXISTS leaves them).
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX IF NOT EXISTS row_history_page_table_status_idx
    ON row_history (status_page_id, table_name, (row_data ->> 'status'), valid_to);
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX IF NOT EXISTS row_history_window_component_idx
    ON row_history ((row_data ->> 'maintenance_window_id'), valid_to)
    WHERE table_name = 'maintenance_window_component';
-- A status incident's timeline entries (issue 20, item 4, below).
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX IF NOT EXISTS row_history_incident_update_idx
    ON row_history ((row_data ->> 'status_incident_id'), valid_to)
    WHERE table_name = 'status_incident_update';
COMMENT ON INDEX row_history_incident_update_idx IS
    'statusdb_page_view_at: the timeline entries of one status incident.';
-- Replaced by row_history_page_table_status_idx (same leading column).
-- squawk-ignore require-concurrent-index-deletion
DROP INDEX row_history_status_page_id_valid_to_idx;

COMMENT ON INDEX row_history_page_table_status_idx IS
    'statusdb_page_view_at: a page''s versions of one table (and status) valid at an instant.';
COMMENT ON INDEX row_history_window_component_idx IS
    'statusdb_page_view_at: the component links of one maintenance window.';

-- The current versions' timelines become entry versions valid from the same instant (see
-- "Timelines" at the top); past versions keep theirs.
INSERT INTO row_history (table_name, row_id, status_page_id, valid_from, written_by_xact,
                         row_data)
SELECT 'status_incident_update', jsonb_build_array(h.row_id, u.p - 1)::text, h.status_page_id,
       h.valid_from, h.written_by_xact,
       jsonb_build_object('status_incident_id', h.row_id, 'position', u.p - 1, 'entry', u.e)
FROM row_history h
CROSS JOIN LATERAL jsonb_array_elements(h.row_data -> 'updates') WITH ORDINALITY AS u (e, p)
WHERE h.table_name = 'status_incident' AND h.valid_to IS NULL;
UPDATE row_history h
SET row_data = (h.row_data - 'updates')
               || jsonb_build_object('updates_length', jsonb_array_length(h.row_data -> 'updates'))
WHERE h.table_name = 'status_incident' AND h.valid_to IS NULL;

-- --------------------------------------------------------------------------------------------
-- 3. Stamps at commit

ALTER TABLE row_history ADD COLUMN pending_xact xid8;
COMMENT ON COLUMN row_history.pending_xact IS
    'The transaction that wrote (valid_from) or ended (valid_to) this version and has not '
    'committed yet: its stamp at commit replaces the provisional instant; NULL once stamped.';
COMMENT ON COLUMN row_history.valid_from IS
    'Start of the version: its writing transaction''s stamp at commit (0025; before 0025, the '
    'writing transaction''s now()).';
COMMENT ON COLUMN row_history.valid_to IS
    'End of the version (exclusive): the ending transaction''s stamp at commit; NULL: current.';
-- The versions a transaction has to stamp (empty outside transactions in progress).
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX row_history_pending_xact_idx ON row_history (pending_xact)
    WHERE pending_xact IS NOT NULL;

-- One row per transaction that wrote versions (kept after its stamp, so that a later write
-- of the same transaction stamps it again; committed rows are deleted by later stamps).
CREATE TABLE row_history_commit (
    xact xid8 NOT NULL,
    -- The stamp given; NULL while one is due (the constraint trigger below is queued).
    stamped_at timestamptz,
    -- The earlier stamp to move, when the transaction wrote again after it.
    previous_stamp timestamptz,
    -- The versions ended at the stamp (their table_name and row_id), to move them too.
    closed_tables text[] NOT NULL DEFAULT '{}',
    closed_rows text[] NOT NULL DEFAULT '{}',
    CONSTRAINT row_history_commit_pkey PRIMARY KEY (xact),
    CONSTRAINT row_history_commit_closed_check
        CHECK (cardinality(closed_tables) = cardinality(closed_rows))
);
ALTER TABLE row_history_commit ENABLE ROW LEVEL SECURITY;
COMMENT ON TABLE row_history_commit IS
    'Transactions that wrote row_history versions and their stamp at commit (0025); owner only, '
    'written by the history triggers.';
COMMENT ON COLUMN row_history_commit.xact IS 'The writing transaction.';
COMMENT ON COLUMN row_history_commit.stamped_at IS 'Its stamp; NULL while one is due.';
COMMENT ON COLUMN row_history_commit.previous_stamp IS
    'An earlier stamp of the same transaction that the next one replaces.';
COMMENT ON COLUMN row_history_commit.closed_tables IS
    'Tables of the versions the transaction ended (with closed_rows).';
COMMENT ON COLUMN row_history_commit.closed_rows IS
    'Row ids of the versions the transaction ended (with closed_tables).';

-- At commit (deferred): stamps the transaction's pending versions. The stamp is
-- clock_timestamp(), or 1 us after the latest start of a version the transaction ends (that
-- version's writer committed before this one took its row lock, so this is a safeguard).
CREATE FUNCTION statusdb_stamp_row_history() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    me xid8 := pg_current_xact_id();
    stamp timestamptz;
BEGIN
    SELECT greatest(clock_timestamp(), max(h.valid_from) + interval '1 microsecond')
    INTO stamp
    FROM row_history h
    WHERE h.pending_xact = me AND h.written_by_xact <> me;
    IF NEW.previous_stamp IS NOT NULL THEN
        -- Written again after an earlier stamp: that one's versions move to the new stamp.
        UPDATE row_history h SET valid_from = stamp
        WHERE h.valid_from = NEW.previous_stamp AND h.written_by_xact = me
          AND h.valid_to IS NULL;
        UPDATE row_history h SET valid_to = stamp
        FROM unnest(NEW.closed_tables, NEW.closed_rows) AS k (table_name, row_id)
        WHERE h.table_name = k.table_name AND h.row_id = k.row_id
          AND h.valid_to = NEW.previous_stamp;
    END IF;
    WITH stamped AS (
        UPDATE row_history h
        SET valid_from = CASE WHEN h.written_by_xact = me THEN stamp ELSE h.valid_from END,
            valid_to = CASE WHEN h.written_by_xact = me THEN h.valid_to ELSE stamp END,
            pending_xact = NULL
        WHERE h.pending_xact = me
        RETURNING h.table_name, h.row_id, h.written_by_xact = me AS mine
    )
    UPDATE row_history_commit c
    SET stamped_at = stamp, previous_stamp = NULL,
        closed_tables = c.closed_tables || e.tables, closed_rows = c.closed_rows || e.row_ids
    FROM (SELECT coalesce(array_agg(s.table_name ORDER BY s.table_name, s.row_id), '{}') AS tables,
                 coalesce(array_agg(s.row_id ORDER BY s.table_name, s.row_id), '{}') AS row_ids
          FROM stamped s WHERE NOT s.mine) AS e
    WHERE c.xact = me;
    -- Committed transactions' rows (a few per call; rows others are deleting are skipped).
    DELETE FROM row_history_commit c
    WHERE c.ctid = ANY (ARRAY(SELECT o.ctid FROM row_history_commit o
                              WHERE o.xact <> me AND o.stamped_at IS NOT NULL
                              LIMIT 10 FOR UPDATE SKIP LOCKED));
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION statusdb_stamp_row_history() IS
    'Constraint trigger (deferred to commit): stamps the transaction''s pending row_history '
    'versions with clock_timestamp(), again if it wrote after an earlier stamp.';
REVOKE EXECUTE ON FUNCTION statusdb_stamp_row_history() FROM PUBLIC;

CREATE CONSTRAINT TRIGGER row_history_commit_stamp
    AFTER INSERT OR UPDATE ON row_history_commit
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.stamped_at IS NULL)
    EXECUTE FUNCTION statusdb_stamp_row_history();

-- The history trigger (0022's), marking what it writes and ends as pending, and registering
-- the transaction for its stamp at commit.
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
-- 0022's fold of a deleted component's status changes, keeping the pending marks (0025).


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
                                  'status_updated_at', s.changed_at) END,
                         -- 0025: a pending stamp stays on the piece it applies to (the first
                         -- piece of a version being written, the last of one being ended).
                         CASE WHEN v.written_by_xact = v.pending_xact
                              THEN CASE WHEN b.b = v.valid_from THEN v.pending_xact END
                              WHEN b.next_b IS NULL OR b.next_b >= v.valid_to
                              THEN v.pending_xact END)::row_history)
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
-- --------------------------------------------------------------------------------------------
-- 1. The page view at T, bounded (0022's, with the versions read as above)

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
           0::bigint, NULL::timestamptz, page_groups.items
    FROM page, page_components, page_incidents, page_maintenance, page_groups;
END;
$$;

COMMENT ON FUNCTION statusdb_page_view_at(text, bytea, timestamptz, interval, integer) IS
    'A status page as statusdb_page_view showed it at at_time (from row_history, horizon to '
    'now()), groups included (last column, as 0020''s page view); access as the page is now: '
    'public then and now, or the digest of its current token. A past view has no version: '
    'version is 0 and fresh_until null. Shows exactly the transactions stamped (at their '
    'commit, 0025) by at_time. Bounded (0025): reads by index the page''s versions valid at '
    'at_time of its components, groups, then active incidents and then scheduled or running '
    'windows (current ones and those ended after at_time), and the component links of at most '
    'maintenance_limit (<= 200) windows; never resolved incidents or ended windows.';

-- --------------------------------------------------------------------------------------------
-- 4. Published postmortems are kept

CREATE TABLE status_incident_postmortem_deletion (
    id bigint GENERATED BY DEFAULT AS IDENTITY,
    status_incident_id text NOT NULL,
    -- The incident's page (from its latest version in row_history; NULL if none was kept).
    status_page_id text,
    -- The deleted revisions, oldest first: [{revision, body, written_at, written_by_id}, ...].
    revisions jsonb NOT NULL,
    deleted_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- session_user (the login) and current_user (its role then) of the deleting session.
    deleted_by text NOT NULL,
    deleted_as text NOT NULL,
    CONSTRAINT status_incident_postmortem_deletion_pkey PRIMARY KEY (id),
    CONSTRAINT status_incident_postmortem_deletion_revisions_check
        CHECK (jsonb_typeof(revisions) = 'array')
);
ALTER TABLE status_incident_postmortem_deletion ENABLE ROW LEVEL SECURITY;
COMMENT ON TABLE status_incident_postmortem_deletion IS
    'Audit: published postmortems deleted (by the owner''s members only, 0025), with their text; '
    'owner only.';
COMMENT ON COLUMN status_incident_postmortem_deletion.id IS 'Order of the deletions.';
COMMENT ON COLUMN status_incident_postmortem_deletion.status_incident_id IS
    'The deleted status incident.';
COMMENT ON COLUMN status_incident_postmortem_deletion.status_page_id IS
    'Its page (from row_history), when known.';
COMMENT ON COLUMN status_incident_postmortem_deletion.revisions IS
    'The deleted revisions (revision, body, written_at, written_by_id), oldest first.';
COMMENT ON COLUMN status_incident_postmortem_deletion.deleted_at IS 'When (clock_timestamp()).';
COMMENT ON COLUMN status_incident_postmortem_deletion.deleted_by IS
    'The deleting session''s login (session_user).';
COMMENT ON COLUMN status_incident_postmortem_deletion.deleted_as IS
    'The role it acted as (current_user).';

-- Revisions are deleted only once their incident is gone (0022's keep trigger refuses it
-- before): through a DELETE of the incident, its page or its team. Refused unless the session's
-- login is a member of the owner (session_user: only a superuser changes it); the owner's
-- deletions are recorded, text included. SECURITY DEFINER: writes the owner-only audit table.
CREATE FUNCTION statusdb_status_incident_postmortem_deleted() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM old_rows) THEN
        RETURN NULL;
    END IF;
    IF NOT pg_has_role(session_user,
                       (SELECT c.relowner FROM pg_class c
                        WHERE c.oid = 'public.status_incident_postmortem'::regclass),
                       'MEMBER') THEN
        RAISE EXCEPTION 'status incident % has a published postmortem: it is kept; only the '
                        'database owner may delete it',
                (SELECT min(o.status_incident_id) FROM old_rows o)
            USING ERRCODE = 'integrity_constraint_violation',
                  CONSTRAINT = 'status_incident_postmortem_published';
    END IF;
    INSERT INTO status_incident_postmortem_deletion (status_incident_id, status_page_id,
                                                     revisions, deleted_by, deleted_as)
    SELECT o.status_incident_id,
           (SELECT h.status_page_id FROM row_history h
            WHERE h.table_name = 'status_incident' AND h.row_id = o.status_incident_id
            ORDER BY h.valid_from DESC LIMIT 1),
           jsonb_agg(jsonb_build_object('revision', o.revision, 'body', o.body,
                                        'written_at', o.written_at,
                                        'written_by_id', o.written_by_id)
                     ORDER BY o.revision),
           session_user, current_user
    FROM old_rows o
    GROUP BY o.status_incident_id;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION statusdb_status_incident_postmortem_deleted() IS
    'Statement trigger: refuses deleting postmortem revisions (with their incident) unless the '
    'login is a member of the owner, and records the owner''s deletions with their text.';
REVOKE EXECUTE ON FUNCTION statusdb_status_incident_postmortem_deleted() FROM PUBLIC;

CREATE TRIGGER status_incident_postmortem_deleted
    AFTER DELETE ON status_incident_postmortem
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION statusdb_status_incident_postmortem_deleted();
