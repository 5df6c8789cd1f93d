-- name: page_view_by_slug
-- A page as its readers see it (components, active incidents, upcoming maintenance) in one trip.
-- The query itself is the function statusdb_page_view_v2 (migrations 0008, 0014, 0017, 0029: with
-- the page's time zone), the only
-- thing the statusdb_reader role may run; it reads the page's snapshot, rendered by the writers
-- (0017), with one index lookup. A private page is returned only with the right token digest,
-- which the function hashes again and compares with the stored value (0014): a wrong or missing
-- token finds nothing, exactly like an unknown slug, and the stored value opens nothing. The
-- version names the body for this horizon and limit (snapshot version * 256 + the scheduled
-- windows already in the horizon: a window entering it moves the version, without a write).
-- With if_version equal to it, the body columns are null and not_modified is true: the body is
-- not even sent. Nothing internal
-- (team, service, platform incident, creator, token digest) is selected.
SELECT id, name, description, slug, is_public, updated_at, components, incidents, maintenance,
       version, fresh_until, not_modified, groups, time_zone
FROM statusdb_page_view_v2(%(slug)s::text, %(token_hash)s::bytea, %(horizon)s::interval,
                           %(maintenance_limit)s::integer, %(if_version)s::bigint);

-- name: page_snapshot_repair
-- Pages whose snapshot is missing (stored_version null) or differs from a rendering from
-- scratch; re-rendered when repair is true (statusdb_page_snapshot_repair, 0017).
SELECT page_id, stored_version
FROM statusdb_page_snapshot_repair(%(repair)s::boolean);

-- name: page_view_at
-- A page as page_view_by_slug showed it at an instant, from the row history (function statusdb_page_view_at_v2, migrations 0022, 0029): same shape, same token rule, access judged on the page as it is now.
SELECT id, name, description, slug, is_public, updated_at, components, incidents, maintenance,
       version, fresh_until, groups, time_zone
FROM statusdb_page_view_at_v2(%(slug)s::text, %(token_hash)s::bytea, %(at)s::timestamptz,
                           %(horizon)s::interval, %(maintenance_limit)s::integer);

-- name: page_view_bytes
-- The page view as one JSON document, the snapshot's texts as stored (statusdb_page_view_bytes_v2, 0028, 0029: with the page's time zone): version, fresh_until, body (null when if_version is the version), sent on one reused cursor per connection.
SELECT version, fresh_until, body
FROM statusdb_page_view_bytes_v2(%(slug)s::text, %(token_hash)s::bytea, %(horizon)s::interval,
                              %(maintenance_limit)s::integer, %(if_version)s::bigint);

-- name: page_view_by_slug_v3
-- page_view_by_slug in a locale (statusdb_page_view_v3, 0033: statusdb_page_view_v2's row with the time zone): texts translated by the chain tag, language, own text; locale = the locale used.
SELECT id, name, description, slug, is_public, updated_at, components, incidents, maintenance,
       version, fresh_until, not_modified, groups, time_zone, locale
FROM statusdb_page_view_v3(%(slug)s::text, %(token_hash)s::bytea, %(horizon)s::interval,
                           %(maintenance_limit)s::integer, %(if_version)s::bigint,
                           %(locale)s::text);

-- name: page_view_bytes_v3
-- page_view_bytes in a locale (statusdb_page_view_bytes_v3, 0033: statusdb_page_view_bytes_v2's body with "time_zone"): version, fresh_until, body, locale used.
SELECT version, fresh_until, body, locale
FROM statusdb_page_view_bytes_v3(%(slug)s::text, %(token_hash)s::bytea, %(horizon)s::interval,
                                 %(maintenance_limit)s::integer, %(if_version)s::bigint,
                                 %(locale)s::text);

-- name: page_version_public
-- The version and fresh_until of a public page for a horizon and limit, as statusdb_page_view_bytes_v2 computes them, by a plain SELECT of the view statusdb_page_public_version (0039: one index lookup, no function call); no row: no public page has that slug.
SELECT v.version * 256 + least(w.k, 255),
       CASE WHEN %(maintenance_limit)s::integer > 0
            THEN v.scheduled_starts[w.k + 1] - %(horizon)s::interval END
FROM statusdb_page_public_version v
CROSS JOIN LATERAL (
    SELECT CASE WHEN %(maintenance_limit)s::integer > 0
                THEN width_bucket(now() + %(horizon)s::interval - interval '1 microsecond',
                                  v.scheduled_starts)
                ELSE 0 END AS k
) AS w
WHERE v.slug_key = %(slug_key)s::bytea
LIMIT 1;
