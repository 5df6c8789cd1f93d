-- statusdb 0028: reads at the wire's floor (issue 21): the page view as the bytes the snapshot
-- holds, and a conditional read that answers "not modified" from one index lookup.
-- depends: 0027_maintenance_events_after_derivation
--
-- * status_page_snapshot.scheduled_starts: the start instants of the SCHEDULED candidates
--   (window_starts where window_scheduled), in order, stored (a generated column: whoever
--   writes the snapshot, it cannot disagree with the two arrays). The reader's k (the scheduled
--   windows already in the horizon) is then width_bucket(now() + horizon - 1 us, starts): a
--   binary search in C instead of unnest + count on every read; the next window to enter the
--   horizon is starts[k + 1] (fresh_until = its start - horizon).
-- * statusdb_page_view_bytes(slug, token digest, horizon, limit, if_version): version,
--   fresh_until and the page as one JSON document (text), composed from the snapshot's stored
--   JSON texts without parsing them. Its first statement is the lookup alone (the slug index,
--   the access rule, the version from scheduled_starts: no subplan); when if_version is the
--   version it returns at once, with a null body. Only otherwise does a second statement
--   (by primary key, same snapshot: the function is STABLE) compose the body. The maintenance
--   list is the stored windows text as is when every candidate is shown (the usual case);
--   otherwise it is filtered as statusdb_page_view does (same text either way).
-- * Same access rule as statusdb_page_view (0014): a private page only with the SHA-256 digest
--   of its token, hashed once more here and compared with the stored value; a wrong or missing
--   token returns no row, like an unknown slug, by the same statement. It lists nothing.
--
-- Why PL/pgSQL, SECURITY DEFINER: the reader role may not read status_page_snapshot (that is
-- what keeps private pages private), so the read runs with the owner's rights; a SECURITY
-- DEFINER function is never inlined, and a non-inlined SQL function is planned again on every
-- call on PostgreSQL 15, whereas PL/pgSQL keeps each statement's plan for the session.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

CREATE FUNCTION statusdb_scheduled_starts(starts timestamptz[], scheduled boolean[])
RETURNS timestamptz[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN ARRAY(SELECT u.start_time
             FROM unnest(starts, scheduled) WITH ORDINALITY AS u (start_time, is_scheduled, n)
             WHERE u.is_scheduled
             ORDER BY u.n);

COMMENT ON FUNCTION statusdb_scheduled_starts(timestamptz[], boolean[]) IS
    'The elements of starts whose scheduled flag is true, in order (0028: '
    'status_page_snapshot.scheduled_starts).';

REVOKE EXECUTE ON FUNCTION statusdb_scheduled_starts(timestamptz[], boolean[]) FROM PUBLIC;

-- A stored generated column rewrites the table: one row per page, rewritten in well under the
-- lock timeout (and the snapshot is rewritten whole by 0020's migration already).
ALTER TABLE status_page_snapshot
    ADD COLUMN scheduled_starts timestamptz[]
        -- squawk-ignore adding-field-with-default
        GENERATED ALWAYS AS (statusdb_scheduled_starts(window_starts, window_scheduled)) STORED;

COMMENT ON COLUMN status_page_snapshot.scheduled_starts IS
    'start_time of the SCHEDULED entries of windows, in order (generated, 0028): the reader''s '
    'k is width_bucket(now() + horizon - 1 microsecond, scheduled_starts).';

CREATE FUNCTION statusdb_page_view_bytes(
    page_slug text, page_token_hash bytea, maintenance_horizon interval, maintenance_limit integer,
    if_version bigint DEFAULT NULL
)
RETURNS TABLE (version bigint, fresh_until timestamptz, body text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = public, pg_temp
ROWS 1
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

COMMENT ON FUNCTION statusdb_page_view_bytes(text, bytea, interval, integer, bigint) IS
    'statusdb_page_view as one JSON document (0028): version and fresh_until as '
    'statusdb_page_view''s, body = {"id", "name", "description", "slug", "is_public", '
    '"updated_at" (UTC), "components", "incidents", "maintenance", "groups"}, the snapshot''s '
    'stored JSON texts as they are. Same arguments, bounds and token rule; with if_version '
    'equal to version, answered from the index lookup alone, body null.';

REVOKE EXECUTE ON FUNCTION statusdb_page_view_bytes(text, bytea, interval, integer, bigint)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION statusdb_page_view_bytes(text, bytea, interval, integer, bigint)
    TO statusdb_app, statusdb_reader;
