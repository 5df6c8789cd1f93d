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
