-- statusdb 0050: the bytes-through read's version and body from one snapshot (issue 21).
-- depends: 0049_open_incident_log_key
--
-- statusdb_page_view_bytes_v2 (0028, 0029, 0036) looks the page up (its version, fresh_until
-- and access) in one statement and composes the body in a second. The function is VOLATILE:
-- under READ COMMITTED each statement takes its own snapshot, so a writer committing between
-- the two gave a reader the old version with the new body: one version, two bodies (an ETag
-- naming two documents; tests/test_page_reads_libpq.py's concurrent-writers test found it,
-- through the cursor's path as through libpq's). What changed in the function, nothing else:
-- the body's statement computes the version, fresh_until and the windows' bucket (k) from the
-- row it reads itself, as the lookup does, and applies the access rule again (a page made
-- private between the two statements is None, as an unknown slug). Same signature, bounds,
-- token rule and not-modified path (the lookup alone): replaced in place; its COMMENT and
-- grants are kept. statusdb_page_view_bytes_v3 calls it for a page's own texts.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

CREATE OR REPLACE FUNCTION statusdb_page_view_bytes_v2(page_slug text, page_token_hash bytea, maintenance_horizon interval, maintenance_limit integer, if_version bigint DEFAULT NULL::bigint)
 RETURNS TABLE(version bigint, fresh_until timestamp with time zone, body text)
 LANGUAGE plpgsql
 SECURITY DEFINER ROWS 1
 SET search_path TO 'public', 'pg_temp'
AS $function$
#variable_conflict use_column
DECLARE
    horizon interval := coalesce(maintenance_horizon, interval '7 days');
    window_limit integer := coalesce(maintenance_limit, 20);
    stored_hash bytea;
    found_page text;
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
    -- 0036: a page pending in the reader's own transaction (it wrote the page and has not
    -- committed) is rendered now, so that it reads its own writes with a real, new version.
    PERFORM statusdb_page_snapshot_flush_slug(page_slug);
    -- The lookup: the slug index, the access rule, k from the stored starts (0 with limit 0:
    -- nothing is shown, whatever the clock). No subplan, nothing detoasted.
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
                   WHEN b.k = cardinality(s.scheduled_starts)
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
           -- 0050: the version and fresh_until of the snapshot this statement reads (it may
           -- be newer than the lookup's under READ COMMITTED), so body and version agree.
           , s.version * 256 + least(b.k, 255),
           CASE WHEN window_limit > 0 THEN s.scheduled_starts[b.k + 1] - horizon END
    INTO body, version, fresh_until
    FROM status_page_snapshot s
    CROSS JOIN LATERAL (
        SELECT CASE WHEN window_limit > 0
                    THEN width_bucket(now() + horizon - interval '1 microsecond',
                                      s.scheduled_starts)
                    ELSE 0 END AS k
    ) AS b
    -- 0029: the page's time zone, from its row (primary key), only when a body is composed.
    JOIN status_page p ON p.id = s.page_id
    WHERE s.page_id = found_page
      -- 0050: the access rule again, on the row this statement reads.
      AND (s.is_public OR s.access_token_hash = stored_hash);
    IF NOT FOUND THEN
        RETURN;  -- made private (or deleted) since the lookup: as an unknown slug
    END IF;
    RETURN NEXT;
END;
$function$;
