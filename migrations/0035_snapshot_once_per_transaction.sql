-- statusdb 0035: pages touched in a transaction are rendered once, at its commit (issue 20 item 1).
-- depends: 0034_statuspage_v2
--
-- Until now every statement that touched a page re-rendered its snapshot (0017's statement
-- triggers calling statusdb_page_snapshot_refresh): maintenance.advance, one statement per
-- window, rendered a page ~92 times per step, and the snapshot row lock taken by a first
-- statement was held while later statements took locks that come earlier in the lock order
-- (CONTRIBUTING.md, "Lock order"): multi-statement transactions deadlocked.
--
-- Design decisions:
--
-- * The pending set. The snapshot triggers now only mark their pages
--   (statusdb_page_snapshot_mark): one row per (transaction, page) in the owner-only
--   status_page_snapshot_pending, ON CONFLICT DO NOTHING, so a page is marked once per
--   transaction. The key starts with the top-level transaction id (pg_current_xact_id()):
--   two transactions marking the same page never conflict on the key, so marking takes no
--   lock another writer waits for. A row's insert queues a DEFERRABLE INITIALLY DEFERRED
--   constraint trigger (status_page_snapshot_pending_flush); at commit the first one to fire
--   deletes the transaction's pending rows and renders those pages with 0017's
--   statusdb_page_snapshot_refresh (unchanged: snapshot rows locked in page order, rendered in
--   a later statement; a rendering equal to the stored one keeps its version); the others find
--   nothing left. Savepoints: a rolled-back subtransaction loses its pending rows and their
--   trigger events together. A client may SET CONSTRAINTS ... IMMEDIATE: its pages are then
--   rendered at the end of each statement, as before (timing only, never a missed render).
--   The table holds rows only inside open transactions. Not UNLOGGED: the page views read it
--   and run on streaming replicas, where unlogged tables cannot be read.
--
-- * Reads in the writing transaction. Every read of a page's snapshot (statusdb_page_view,
--   _v2, statusdb_page_view_bytes, _v2, statusdb_page_feed) first renders the pages with its
--   slug that are pending in the reader's own transaction (statusdb_page_snapshot_flush_slug:
--   nothing to do, and no table read, for a transaction that wrote nothing, as every reader
--   on a replica or in a read-only transaction). The writer then reads its own writes from the
--   stored snapshot, with a real version drawn from the sequence: versions stay monotonic,
--   and "not modified" stays honest (a rolled-back version number is never reused). The reads
--   become VOLATILE for it (a STABLE function would not see the rendering it caused); they
--   write only the reader's own pending pages, which its own commit would render anyway, so
--   no role gains a power. Rendering on the fly instead (the unmerged first attempt) would
--   have given the writer an unversioned body (version 0, below the versions it had seen) and
--   needed a second rendering of the bytes document. The cost of the flush: a writer that
--   reads its own page takes that page's snapshot row (lock order step 5) at the read, not at
--   commit, and renders it again at commit if it writes the page again. The history
--   (statusdb_page_view_at, _v2) reads row_history, which the writer's own versions are in at
--   once (0025): unchanged. The repair (statusdb_page_snapshot_repair) flushes all the
--   caller's pending pages first, so that a check inside a writing transaction compares
--   committed-to-be renderings.
--
-- * Lock order: the snapshot rows are now taken at commit, after every statement's locks
--   (step 5 of the order is last for the whole transaction, not per statement), or at a read
--   of the writer's own page. Under REPEATABLE READ / SERIALIZABLE a snapshot row another
--   transaction rendered after our snapshot fails the lock at COMMIT with a serialization
--   failure (retryable), as it failed the statement before.
--
-- * New pages are still rendered at their INSERT (statusdb_page_snapshot_create): the page
--   views find pages through their snapshot row, and nobody else can lock a new row.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

CREATE TABLE status_page_snapshot_pending (
    xact_id xid8 NOT NULL,
    page_id text NOT NULL,
    CONSTRAINT status_page_snapshot_pending_pkey PRIMARY KEY (xact_id, page_id)
);

COMMENT ON TABLE status_page_snapshot_pending IS
    'Pages whose snapshot a transaction must render at its commit (0035): one row per '
    '(top-level transaction id, page), inserted by the snapshot triggers and deleted by the '
    'deferred flush; empty outside open transactions. Owner only.';
COMMENT ON COLUMN status_page_snapshot_pending.xact_id IS
    'The marking transaction (pg_current_xact_id()): concurrent markers never conflict.';
COMMENT ON COLUMN status_page_snapshot_pending.page_id IS
    'The page to render (no foreign key: a page deleted meanwhile has no snapshot to render).';

-- Owner only, like status_lock: no grants, row-level security with no policy.
ALTER TABLE status_page_snapshot_pending ENABLE ROW LEVEL SECURITY;

CREATE FUNCTION statusdb_page_snapshot_mark(page_ids text[]) RETURNS void
LANGUAGE sql
AS $$
    INSERT INTO status_page_snapshot_pending (xact_id, page_id)
    SELECT pg_current_xact_id(), p.page_id
    FROM unnest(page_ids) AS p (page_id)
    WHERE p.page_id IS NOT NULL
    ORDER BY p.page_id
    ON CONFLICT ON CONSTRAINT status_page_snapshot_pending_pkey DO NOTHING;
$$;

COMMENT ON FUNCTION statusdb_page_snapshot_mark(text[]) IS
    'Marks pages for rendering at the commit of the current transaction (0035), once per '
    'page and transaction. Owner only (called by the snapshot triggers).';

CREATE FUNCTION statusdb_page_snapshot_flush() RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    page_ids text[];
BEGIN
    WITH flushed AS (
        DELETE FROM status_page_snapshot_pending p
        WHERE p.xact_id = pg_current_xact_id_if_assigned()
        RETURNING p.page_id
    )
    SELECT array_agg(f.page_id ORDER BY f.page_id) INTO page_ids FROM flushed f;
    PERFORM statusdb_page_snapshot_refresh(page_ids);
END;
$$;

COMMENT ON FUNCTION statusdb_page_snapshot_flush() IS
    'Renders the pages the current transaction marked (0035) with statusdb_page_snapshot_refresh '
    'and forgets them. Owner only (the deferred trigger and the repair).';

CREATE FUNCTION statusdb_page_snapshot_pending_flush() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM statusdb_page_snapshot_flush();
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION statusdb_page_snapshot_pending_flush() IS
    'The deferred trigger of status_page_snapshot_pending (0035): at commit, the first event '
    'renders every page the transaction marked; the others find none left.';

CREATE CONSTRAINT TRIGGER status_page_snapshot_pending_flush
    AFTER INSERT ON status_page_snapshot_pending
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION statusdb_page_snapshot_pending_flush();

REVOKE EXECUTE ON FUNCTION
    statusdb_page_snapshot_mark(text[]),
    statusdb_page_snapshot_flush(),
    statusdb_page_snapshot_pending_flush()
FROM PUBLIC;

-- The snapshot triggers (bodies as of 0020/0023): mark instead of render.
CREATE OR REPLACE FUNCTION statusdb_status_page_snapshot() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM statusdb_page_snapshot_create(ARRAY(SELECT n.id FROM new_rows n));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM statusdb_page_snapshot_mark(ARRAY(SELECT n.id FROM new_rows n));
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
        PERFORM statusdb_page_snapshot_mark(
            ARRAY(SELECT DISTINCT n.status_page_id FROM new_rows n));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM statusdb_page_snapshot_mark(
            ARRAY(SELECT DISTINCT o.status_page_id FROM old_rows o));
    ELSE
        -- Only rows whose shown columns changed (manual_status, team_id, ... are not shown;
        -- a rendering that comes out the same would keep its version anyway).
        PERFORM statusdb_page_snapshot_mark(ARRAY(
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
        PERFORM statusdb_page_snapshot_mark(
            ARRAY(SELECT DISTINCT n.status_page_id FROM new_rows n));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM statusdb_page_snapshot_mark(
            ARRAY(SELECT DISTINCT o.status_page_id FROM old_rows o));
    ELSE
        PERFORM statusdb_page_snapshot_mark(
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
        PERFORM statusdb_page_snapshot_mark(
            ARRAY(SELECT DISTINCT n.status_page_id FROM new_rows n));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM statusdb_page_snapshot_mark(
            ARRAY(SELECT DISTINCT o.status_page_id FROM old_rows o));
    ELSE
        PERFORM statusdb_page_snapshot_mark(ARRAY(
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
        PERFORM statusdb_page_snapshot_mark(ARRAY(
            SELECT DISTINCT w.status_page_id
            FROM maintenance_window w
            WHERE w.id IN (SELECT n.maintenance_window_id FROM new_rows n)));
    ELSIF TG_OP = 'DELETE' THEN
        -- Nor a component deleted with its links (0023): its own statement trigger refreshes
        -- the page after its group roll-up, keeping snapshot rows last in the lock order.
        PERFORM statusdb_page_snapshot_mark(ARRAY(
            SELECT DISTINCT w.status_page_id
            FROM maintenance_window w
            WHERE w.id IN (SELECT o.maintenance_window_id FROM old_rows o
                           WHERE EXISTS (SELECT 1 FROM status_page_component c
                                         WHERE c.id = o.component_id))));
    ELSE
        PERFORM statusdb_page_snapshot_mark(ARRAY(
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
        PERFORM statusdb_page_snapshot_mark(
            ARRAY(SELECT DISTINCT n.status_page_id FROM new_rows n));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM statusdb_page_snapshot_mark(
            ARRAY(SELECT DISTINCT o.status_page_id FROM old_rows o));
    ELSE
        -- Only groups whose shown columns changed (a group cannot change page: its guard).
        PERFORM statusdb_page_snapshot_mark(ARRAY(
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

-- The repair (0020's body): flushes the caller's pending pages first.
CREATE OR REPLACE FUNCTION statusdb_page_snapshot_repair(repair boolean) RETURNS TABLE(page_id text, stored_version bigint)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
#variable_conflict use_column
DECLARE
    missing text[];
    drifted text[];
BEGIN
    -- 0035: this transaction's pending pages are rendered first (their snapshots would
    -- otherwise look drifted until commit).
    PERFORM statusdb_page_snapshot_flush();
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

CREATE FUNCTION statusdb_page_snapshot_flush_slug(page_slug text) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    page_ids text[];
BEGIN
    IF pg_current_xact_id_if_assigned() IS NULL THEN
        RETURN;  -- a transaction that wrote nothing has nothing pending
    END IF;
    -- The page by its slug now (renamed in this transaction) or by its stored one.
    WITH flushed AS (
        DELETE FROM status_page_snapshot_pending p
        WHERE p.xact_id = pg_current_xact_id_if_assigned()
          AND p.page_id IN (SELECT sp.id FROM status_page sp WHERE sp.slug = page_slug
                            UNION ALL
                            SELECT s.page_id FROM status_page_snapshot s WHERE s.slug = page_slug)
        RETURNING p.page_id
    )
    SELECT array_agg(f.page_id ORDER BY f.page_id) INTO page_ids FROM flushed f;
    PERFORM statusdb_page_snapshot_refresh(page_ids);
END;
$$;

COMMENT ON FUNCTION statusdb_page_snapshot_flush_slug(text) IS
    'Renders now the pages with this slug (current or stored) that the current transaction '
    'marked (0035), so that its own page reads see its writes; nothing for a transaction '
    'without a transaction id. Owner only (the page reads).';

REVOKE EXECUTE ON FUNCTION statusdb_page_snapshot_flush_slug(text) FROM PUBLIC;

-- The page reads (bodies as of 0020/0028/0029/0030): render the reader's own pending pages
-- first, VOLATILE for it.

CREATE OR REPLACE FUNCTION statusdb_page_view(page_slug text, page_token_hash bytea, maintenance_horizon interval, maintenance_limit integer, if_version bigint DEFAULT NULL::bigint)
 RETURNS TABLE(id text, name text, description text, slug text, is_public boolean, updated_at timestamp with time zone, components json, incidents json, maintenance json, version bigint, fresh_until timestamp with time zone, not_modified boolean, groups json)
 LANGUAGE plpgsql
 VOLATILE SECURITY DEFINER ROWS 1
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
    -- 0035: a page pending in the reader's own transaction (it wrote the page and has not
    -- committed) is rendered now, so that it reads its own writes with a real, new version.
    PERFORM statusdb_page_snapshot_flush_slug(page_slug);
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
 VOLATILE SECURITY DEFINER ROWS 1
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
    -- 0035: a page pending in the reader's own transaction (it wrote the page and has not
    -- committed) is rendered now, so that it reads its own writes with a real, new version.
    PERFORM statusdb_page_snapshot_flush_slug(page_slug);
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
 VOLATILE SECURITY DEFINER ROWS 1
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
    -- 0035: a page pending in the reader's own transaction (it wrote the page and has not
    -- committed) is rendered now, so that it reads its own writes with a real, new version.
    PERFORM statusdb_page_snapshot_flush_slug(page_slug);
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
 VOLATILE SECURITY DEFINER ROWS 1
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
    -- 0035: a page pending in the reader's own transaction (it wrote the page and has not
    -- committed) is rendered now, so that it reads its own writes with a real, new version.
    PERFORM statusdb_page_snapshot_flush_slug(page_slug);
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
 VOLATILE SECURITY DEFINER ROWS 1
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
    -- 0035: a page pending in the reader's own transaction (it wrote the page and has not
    -- committed) is rendered now, so that it reads its own writes with a real, new version.
    PERFORM statusdb_page_snapshot_flush_slug(page_slug);
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

