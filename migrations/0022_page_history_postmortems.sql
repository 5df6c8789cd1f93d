-- statusdb 0022: the page as it was (a row-version history kept by triggers, and the function
-- statusdb_page_view_at), and postmortems of resolved status incidents with their revisions.
-- depends: 0021_page_time_zone_daily_uptime
--
-- ## Row history
--
-- row_history keeps every version of the rows a page view is made of: status_page,
-- status_page_component (names, descriptions, order, its group_id; its derived status is read from
-- status_change instead, see "Component statuses" below), status_incident (title, status, message, the timeline as
-- it was), maintenance_window, maintenance_window_component and component_group (0020's tree:
-- names, parents, order, derived statuses). One generic table keyed by (table_name,
-- row_id) rather than a history table per audited table: one trigger function fills it, one
-- reader (statusdb_page_view_at) reads it, and auditing another table is one trigger line:
--
--   PERFORM statusdb_keep_history_of('<table>', '<key columns>', '<page column>', NULL);
--   (in a DO block, as below; or SELECT it)
--
-- (key columns comma-separated; the page column names the row's status page id, or, with a
-- parent table instead of NULL, the column holding the id of a parent row that gives the page,
-- as maintenance_window_component does below). It creates the table's three statement triggers
-- <table>_keep_history_insert/_update/_delete; a rollback drops them (DROP TRIGGER).
--
-- Time. A version is valid over [valid_from, valid_to) (valid_to null: still current), where
-- valid_from is the writing transaction's now(), like every created_at/updated_at of the schema,
-- so all the rows one transaction writes change at the same instant and page_view_at never shows
-- half a transaction. A page view running in a transaction that started at T saw the versions of
-- the transactions committed before it; in a history of transactions that do not overlap in time,
-- these are exactly the versions valid at T. What cannot be reconstructed:
--   * anything before this migration ran: the rows existing then are recorded as valid from the
--     migration's now(), and page_view_at refuses earlier instants (the earliest version). The
--     status_change log (0003) keeps component statuses from before, but not names, order,
--     incidents or maintenance as they were, so no earlier page is made up from it;
--   * states inside one transaction: a row written several times by one transaction keeps its
--     last version only (no other transaction could see the others), and a row inserted and
--     deleted by the same transaction leaves nothing;
--   * the exact order of overlapping transactions: PostgreSQL does not give commit times (without
--     track_commit_timestamp, a server setting). When a transaction writes a row whose current
--     version was written by a transaction that started later (it waited for its row lock),
--     the new version starts 1 microsecond after that one, so versions never overlap and none is
--     lost, but such a transaction's rows then change at two instants;
--   * writes that bypass triggers: TRUNCATE (statusdb_app may not truncate), and the owner's
--     ALTER TABLE ... DISABLE TRIGGER or session_replication_role = replica (superuser only);
--   * access token digests: status_page's access_token_hash is left out of its versions (an old
--     digest must not be kept where it can outlive a rotation). page_view_at opens a page with
--     the digest of its *current* token (below).
-- Deleted rows are kept (their last version is closed at the delete): a component removed later
-- still shows at earlier instants under the name it had then.
--
-- Growth. One version per written row, per transaction. status_incident versions copy the
-- timeline, so an incident with n updates costs O(n^2) bytes over its life (TOAST compresses it);
-- a component's status changes cost no version (status_change keeps them). Retention is the
-- operator's: statusdb_prune_row_history(before, max_rows) deletes up to max_rows versions that
-- ended before `before` and moves the horizon there (call it until it returns 0, e.g. daily from
-- cron with before = now() - interval '400 days').
--
-- Who reads and writes it. It is audit data: only the owner may read or write the table (RLS on,
-- no policy, no grants). The trigger function is SECURITY DEFINER so that every writer's rows are
-- recorded (psql included) while no client can write, alter or forge a version: valid_from is the
-- writer's now(), which no client sets. Readers and the app reach it only through
-- statusdb_page_view_at, which shows what statusdb_page_view showed, to those who may open the
-- page now.
--
-- ## Postmortems
--
-- status_incident_postmortem: the revisions of a resolved status incident's postmortem, one row
-- each, append-only. Revision 1 is the publication (its written_at is published_at); each edit
-- adds the next revision, so the text published earlier stays queryable. A trigger numbers the
-- revisions and stamps them (under a row lock of the incident, so concurrent edits take turns),
-- refuses a postmortem of an incident that is not RESOLVED, refuses every UPDATE, and refuses
-- DELETE while the incident exists, for every role, the owner included (the owner could still
-- drop the trigger: DDL is trusted). Deleting the incident (or its page) deletes its postmortem.
-- statusdb_app may SELECT and INSERT; statusdb_reader nothing.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

-- --------------------------------------------------------------------------------------------
-- Row history

CREATE TABLE row_history (
    table_name text NOT NULL,
    -- The row's primary key: its value, or a JSON array of the values of a composite key.
    row_id text NOT NULL,
    -- The status page the row belongs to (for reading a page's rows at an instant).
    status_page_id text NOT NULL,
    valid_from timestamptz NOT NULL,
    valid_to timestamptz,
    -- The transaction that wrote the version (to tell its own version from another's).
    written_by_xact xid8 NOT NULL,
    row_data jsonb NOT NULL,
    CONSTRAINT row_history_pkey PRIMARY KEY (table_name, row_id, valid_from),
    CONSTRAINT row_history_valid_check CHECK (valid_to IS NULL OR valid_to > valid_from),
    CONSTRAINT row_history_row_data_check CHECK (jsonb_typeof(row_data) = 'object')
);
-- One current version per row.
CREATE UNIQUE INDEX row_history_current_key
    ON row_history (table_name, row_id) WHERE valid_to IS NULL;
-- A page's rows at an instant T (the page view at T): its current versions (valid_to null) and
-- those that ended after T, so the cost is the page's rows plus the page's versions that ended
-- after T (for a recent T, few; for an old one, bounded by what retention keeps).
CREATE INDEX row_history_status_page_id_valid_to_idx ON row_history (status_page_id, valid_to);
-- A page by the slug it had (pages are few; the slug is read out of the version).
CREATE INDEX row_history_page_slug_idx
    ON row_history ((row_data ->> 'slug'), valid_from) WHERE table_name = 'status_page';
-- Retention: versions that ended before an instant.
CREATE INDEX row_history_valid_to_idx ON row_history (valid_to) WHERE valid_to IS NOT NULL;

ALTER TABLE row_history ENABLE ROW LEVEL SECURITY;

-- Since when the history is complete: from its earliest version (the backfill below is valid
-- from this migration's now(); in a database empty then, from the first version written), and
-- from the latest cut of retention, recorded here (one row per cut, the latest counts). No row
-- is written by this migration, so that a data-only restore into a freshly migrated database
-- loads the dumped rows as they are.
CREATE TABLE row_history_horizon (
    kept_from timestamptz NOT NULL,
    CONSTRAINT row_history_horizon_pkey PRIMARY KEY (kept_from)
);
ALTER TABLE row_history_horizon ENABLE ROW LEVEL SECURITY;
-- The earliest version (the horizon, with the latest cut).
CREATE INDEX row_history_valid_from_idx ON row_history (valid_from);

COMMENT ON TABLE row_history IS
    'Every version of the rows page views are made of (0022), written by the trigger function '
    'statusdb_keep_row_history; owner only, read through statusdb_page_view_at.';
COMMENT ON COLUMN row_history.table_name IS 'The audited table.';
COMMENT ON COLUMN row_history.row_id IS
    'The row''s primary key value (a JSON array of the values for a composite key).';
COMMENT ON COLUMN row_history.status_page_id IS 'The status page the row belongs to.';
COMMENT ON COLUMN row_history.valid_from IS
    'Start of the version: the writing transaction''s now() (1 us after the previous version '
    'when that one was written by a transaction that started later).';
COMMENT ON COLUMN row_history.valid_to IS 'End of the version (exclusive); NULL: current.';
COMMENT ON COLUMN row_history.written_by_xact IS 'The transaction that wrote the version.';
COMMENT ON COLUMN row_history.row_data IS
    'The row as to_jsonb gives it (status_page without access_token_hash).';
COMMENT ON TABLE row_history_horizon IS
    'Retention cuts of row_history (statusdb_prune_row_history); the history is complete from '
    'the latest one and from its earliest version.';
COMMENT ON COLUMN row_history_horizon.kept_from IS
    'A retention cut: statusdb_page_view_at refuses earlier instants.';

-- The trigger function, statement-level with transition tables (new_rows, old_rows): the
-- derivation updates many components in one statement, and this records them in three
-- set-based statements rather than several per row. Arguments (from the trigger definition,
-- set by the owner, never by a client): 0 = key columns (comma-separated), 1 = the column
-- holding the page id, or, with argument 2 (a parent table with columns id and status_page_id),
-- the column holding the parent row's id (the parent row, or, when it is gone, its latest
-- version, gives the page). Per written row: a few index lookups. For each row written:
--   * no change a reader could see (an UPDATE leaving the row as it was): nothing;
--   * its current version was written by this transaction: overwritten (no one else saw it);
--   * otherwise the current version ends at this transaction's now(), or 1 us after it began
--     when a transaction that started later wrote it, and the new version begins there;
--   * deleted: its current version ends likewise (or is removed, if this transaction wrote it).
CREATE FUNCTION statusdb_keep_row_history() RETURNS trigger
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

COMMENT ON FUNCTION statusdb_keep_row_history() IS
    'Statement trigger: records the written rows'' new versions in row_history (arguments: key '
    'columns, page column, optional parent table).';
REVOKE EXECUTE ON FUNCTION statusdb_keep_row_history() FROM PUBLIC;

-- Audits a table: its three statement triggers (PostgreSQL allows transition tables only on
-- triggers of one event). The owner's, run by migrations: one line per audited table.
CREATE FUNCTION statusdb_keep_history_of(
    audited regclass, key_columns text, page_column text, parent_table text
) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    table_name text := (SELECT c.relname FROM pg_class c WHERE c.oid = audited);
    arguments text := concat_ws(', ', quote_literal(key_columns), quote_literal(page_column),
                                quote_literal(parent_table));
BEGIN
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION statusdb_keep_row_history(%s)',
                   table_name || '_keep_history_insert', audited, arguments);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s'
                   ' REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION statusdb_keep_row_history(%s)',
                   table_name || '_keep_history_update', audited, arguments);
    EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION statusdb_keep_row_history(%s)',
                   table_name || '_keep_history_delete', audited, arguments);
END;
$$;

COMMENT ON FUNCTION statusdb_keep_history_of(regclass, text, text, text) IS
    'Creates the three row_history triggers of a table (<table>_keep_history_insert/_update/'
    '_delete); parent_table null unless the page is found through a parent row.';
REVOKE EXECUTE ON FUNCTION statusdb_keep_history_of(regclass, text, text, text) FROM PUBLIC;

-- The history starts now, with the rows that exist (see "What cannot be reconstructed").
-- Parents first: maintenance_window_component finds its page through its window's version.
INSERT INTO row_history (table_name, row_id, status_page_id, valid_from, written_by_xact,
                         row_data)
SELECT 'status_page', p.id, p.id, now(), pg_current_xact_id(), to_jsonb(p) - 'access_token_hash'
FROM status_page p
UNION ALL
SELECT 'status_page_component', c.id, c.status_page_id, now(), pg_current_xact_id(), to_jsonb(c)
FROM status_page_component c
UNION ALL
SELECT 'status_incident', i.id, i.status_page_id, now(), pg_current_xact_id(), to_jsonb(i)
FROM status_incident i
UNION ALL
SELECT 'maintenance_window', w.id, w.status_page_id, now(), pg_current_xact_id(), to_jsonb(w)
FROM maintenance_window w
UNION ALL
SELECT 'maintenance_window_component',
       jsonb_build_array(mc.maintenance_window_id, mc.component_id)::text,
       w.status_page_id, now(), pg_current_xact_id(), to_jsonb(mc)
FROM maintenance_window_component mc
JOIN maintenance_window w ON w.id = mc.maintenance_window_id
UNION ALL
SELECT 'component_group', g.id, g.status_page_id, now(), pg_current_xact_id(), to_jsonb(g)
FROM component_group g;

-- The audited tables: one line each. AFTER triggers, so the version is the row as stored (the
-- BEFORE triggers' derived status and timestamps included).
DO $$
BEGIN
    PERFORM statusdb_keep_history_of('status_page', 'id', 'id', NULL);
    PERFORM statusdb_keep_history_of('status_page_component', 'id', 'status_page_id', NULL);
    PERFORM statusdb_keep_history_of('status_incident', 'id', 'status_page_id', NULL);
    PERFORM statusdb_keep_history_of('maintenance_window', 'id', 'status_page_id', NULL);
    PERFORM statusdb_keep_history_of('maintenance_window_component',
                                     'maintenance_window_id,component_id',
                                     'maintenance_window_id', 'maintenance_window');
    PERFORM statusdb_keep_history_of('component_group', 'id', 'status_page_id', NULL);
END;
$$;

-- Component statuses. A component's status changes are not versions of its row: status_change
-- (0003) logs each one (changed_at = the status_updated_at written, seq order), from every path
-- that writes a status (the derivation for incidents and maintenance, manual_status through the
-- derive trigger, the operator's repair, the initial status of a new component), and the derive
-- trigger refuses any other write of current_status or status_updated_at. So the history
-- trigger records no version for an UPDATE that changes only a component's current_status,
-- status_updated_at, updated_at or manual_status (none of them shown but the first two), which
-- keeps an incident that moves 50 components from writing 50 versions, and
-- statusdb_page_view_at takes each component's status at T from the latest status_change with
-- changed_at <= T (by seq), or, before its first change, from its version at T (its status at
-- creation). status_change rows go when their component (or page) is deleted: the trigger below
-- then folds the component's deleted changes into its versions first (one version per change,
-- as before this optimisation), so a deleted component still shows its past statuses.
CREATE FUNCTION statusdb_keep_component_statuses() RETURNS trigger
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

COMMENT ON FUNCTION statusdb_keep_component_statuses() IS
    'Statement trigger on DELETE of status_change: folds the deleted status changes of a component '
    'into its row_history versions (one version per change), so page_view_at still shows them.';
REVOKE EXECUTE ON FUNCTION statusdb_keep_component_statuses() FROM PUBLIC;

CREATE TRIGGER status_change_keep_history_delete AFTER DELETE ON status_change
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION statusdb_keep_component_statuses();

-- Retention (the operator's; owner only): deletes up to max_rows (1 to 100000) versions that
-- ended before `before`, after moving the horizon there, and returns how many it deleted. Only
-- versions no instant from the horizon on can show are deleted.
CREATE FUNCTION statusdb_prune_row_history(before timestamptz, max_rows integer)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
    deleted bigint;
BEGIN
    IF before IS NULL OR before > now() THEN
        RAISE EXCEPTION 'before must be an instant not after now(), not %', before
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF max_rows IS NULL OR max_rows < 1 OR max_rows > 100000 THEN
        RAISE EXCEPTION 'max_rows must be from 1 to 100000, not %', max_rows
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO row_history_horizon (kept_from) VALUES (before) ON CONFLICT DO NOTHING;
    DELETE FROM row_history h
    WHERE h.ctid = ANY (ARRAY(SELECT o.ctid FROM row_history o
                              WHERE o.valid_to IS NOT NULL AND o.valid_to <= before
                              LIMIT max_rows));
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN deleted;
END;
$$;

COMMENT ON FUNCTION statusdb_prune_row_history(timestamptz, integer) IS
    'Retention: moves the history horizon to before and deletes up to max_rows versions that '
    'ended by then; call until it returns 0. Owner only.';
REVOKE EXECUTE ON FUNCTION statusdb_prune_row_history(timestamptz, integer) FROM PUBLIC;

-- The page as it was at at_time: the body statusdb_page_view (0017's snapshot, with 0020's
-- groups) returned to a transaction that started at at_time, from row_history, with the same
-- arguments, bounds and shape, and the same JSON: components [id, name, description,
-- display_order, current_status, status_updated_at, group_id], groups [id, name, description,
-- parent_id, display_order, current_status] by (display_order, name, id), updated_at the latest
-- of the page's, its components' status, its active incidents' and its groups' changes, and
-- timestamps rendered in UTC (+00:00) as 0017's renderer does (spelled out below: a SECURITY
-- DEFINER function's only SET is its search_path). A past view has no version: version is 0
-- (never a version page_view hands out, which start at the clock: no ETag or if_version of a
-- current view matches it) and fresh_until null; there is no conditional form.
-- Access is judged on the page as it is now, so that rotating a token or making a page private
-- closes its past too: a page is shown if it is public now and was public at at_time, or with
-- the digest of its current access token. A deleted page shows nothing (its history stays in
-- row_history for the owner). at_time must lie from the horizon (the earliest version kept, and
-- the latest retention cut in row_history_horizon) to now().
CREATE FUNCTION statusdb_page_view_at(
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
REVOKE EXECUTE ON FUNCTION statusdb_page_view_at(text, bytea, timestamptz, interval, integer)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION statusdb_page_view_at(text, bytea, timestamptz, interval, integer)
    TO statusdb_app, statusdb_reader;

-- --------------------------------------------------------------------------------------------
-- Postmortems

CREATE TABLE status_incident_postmortem (
    status_incident_id text NOT NULL,
    -- 1: the publication; each edit the next one. Set by the trigger below.
    -- squawk-ignore prefer-bigint-over-int
    revision integer NOT NULL,
    body text NOT NULL,
    -- Set by the trigger (clock_timestamp() once the incident's row lock is held): increasing
    -- with the revision.
    written_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    written_by_id text NOT NULL,
    CONSTRAINT status_incident_postmortem_pkey PRIMARY KEY (status_incident_id, revision),
    CONSTRAINT status_incident_postmortem_status_incident_id_fkey
        FOREIGN KEY (status_incident_id) REFERENCES status_incident (id) ON DELETE CASCADE,
    CONSTRAINT status_incident_postmortem_revision_check CHECK (revision >= 1),
    -- Prose for readers: 100,000 characters is a long document, and keeps a revision small.
    CONSTRAINT status_incident_postmortem_body_check
        CHECK (btrim(body) <> '' AND length(body) <= 100000),
    CONSTRAINT status_incident_postmortem_written_by_id_check
        CHECK (btrim(written_by_id) <> '' AND length(written_by_id) <= 200)
);

COMMENT ON TABLE status_incident_postmortem IS
    'Revisions of a resolved status incident''s postmortem (append-only; revision 1 is the '
    'publication).';
COMMENT ON COLUMN status_incident_postmortem.status_incident_id IS 'The resolved status incident.';
COMMENT ON COLUMN status_incident_postmortem.revision IS
    '1: the publication; then one per edit (numbered by the trigger).';
COMMENT ON COLUMN status_incident_postmortem.body IS 'The postmortem text of this revision.';
COMMENT ON COLUMN status_incident_postmortem.written_at IS
    'When this revision was written (revision 1: published_at); set by the trigger.';
COMMENT ON COLUMN status_incident_postmortem.written_by_id IS 'Who wrote this revision.';

-- Numbers and stamps a new revision, refusing one for an incident that is not RESOLVED. The
-- incident's row lock (FOR NO KEY UPDATE, as an UPDATE of it would take) makes concurrent writers
-- take turns, so each one numbers after the last committed revision. SECURITY INVOKER: it runs
-- as the writer, who needs UPDATE on status_incident to lock its row (statusdb_app has it).
CREATE FUNCTION statusdb_status_incident_postmortem_number() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    incident_status text;
    next_revision integer;
BEGIN
    SELECT i.status INTO incident_status
    FROM public.status_incident i
    WHERE i.id = NEW.status_incident_id
    FOR NO KEY UPDATE;
    IF incident_status IS NULL THEN
        NEW.revision := coalesce(NEW.revision, 1);
        RETURN NEW;  -- the foreign key (or row-level security) refuses it
    END IF;
    IF incident_status <> 'RESOLVED' THEN
        RAISE EXCEPTION 'status incident % is % , not RESOLVED', NEW.status_incident_id,
                incident_status
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'status_incident_postmortem_resolved_check';
    END IF;
    SELECT coalesce(max(p.revision), 0) + 1 INTO next_revision
    FROM public.status_incident_postmortem p
    WHERE p.status_incident_id = NEW.status_incident_id;
    IF NEW.revision IS NOT NULL AND NEW.revision <> next_revision THEN
        -- The writer expected another revision (publishing one already published, or an edit
        -- based on a revision since superseded).
        RAISE EXCEPTION 'status incident % has postmortem revision % next, not %',
                NEW.status_incident_id, next_revision, NEW.revision
            USING ERRCODE = 'unique_violation',
                  CONSTRAINT = 'status_incident_postmortem_pkey';
    END IF;
    NEW.revision := next_revision;
    NEW.written_at := clock_timestamp();
    RETURN NEW;
END;
$$;

COMMENT ON FUNCTION statusdb_status_incident_postmortem_number() IS
    'Trigger: numbers and stamps a postmortem revision under the incident''s row lock; refuses '
    'one for an incident that is not RESOLVED.';
REVOKE EXECUTE ON FUNCTION statusdb_status_incident_postmortem_number() FROM PUBLIC;

CREATE TRIGGER status_incident_postmortem_number
    BEFORE INSERT ON status_incident_postmortem
    FOR EACH ROW EXECUTE FUNCTION statusdb_status_incident_postmortem_number();

-- Revisions are never rewritten: UPDATE is refused, and DELETE while the incident exists (the
-- cascade from a deleted incident runs after the incident's row is gone, and passes).
CREATE FUNCTION statusdb_status_incident_postmortem_keep() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'UPDATE' OR EXISTS (SELECT 1 FROM public.status_incident i
                                   WHERE i.id = OLD.status_incident_id) THEN
        RAISE EXCEPTION 'postmortem revisions are never rewritten (status incident %, revision %)',
                OLD.status_incident_id, OLD.revision
            USING ERRCODE = 'integrity_constraint_violation',
                  CONSTRAINT = 'status_incident_postmortem_append_only';
    END IF;
    RETURN OLD;
END;
$$;

COMMENT ON FUNCTION statusdb_status_incident_postmortem_keep() IS
    'Trigger: refuses updating postmortem revisions, and deleting them while their incident '
    'exists.';
REVOKE EXECUTE ON FUNCTION statusdb_status_incident_postmortem_keep() FROM PUBLIC;

CREATE TRIGGER status_incident_postmortem_keep
    BEFORE UPDATE OR DELETE ON status_incident_postmortem
    FOR EACH ROW EXECUTE FUNCTION statusdb_status_incident_postmortem_keep();

-- The app publishes and reads; it never updates or deletes (the trigger would refuse anyway).
GRANT SELECT, INSERT ON TABLE status_incident_postmortem TO statusdb_app;

ALTER TABLE status_incident_postmortem ENABLE ROW LEVEL SECURITY;
CREATE POLICY status_incident_postmortem_team_isolation
    ON status_incident_postmortem
    USING ((SELECT statusdb_current_team()) IS NULL
           OR status_incident_id IN (
               SELECT i.id FROM status_incident i
               WHERE i.status_page_id IN (SELECT p.id FROM status_page p
                                          WHERE p.team_id = (SELECT statusdb_current_team()))));
