-- name: page_view_by_slug
-- A page as its readers see it (components, active incidents, upcoming maintenance) in one trip.
-- The query itself is the function statusdb_page_view (migration 0008), the only thing the
-- statusdb_reader role may run. A private page is returned only with the right token digest,
-- which the function hashes again and compares with the stored value (0014): a wrong or missing
-- token finds nothing, exactly like an unknown slug, and the stored value opens nothing. Nothing
-- internal (team, service, platform incident, creator, token digest) is selected.
SELECT id, name, description, slug, is_public, updated_at, components, incidents, maintenance
FROM statusdb_page_view(%(slug)s::text, %(token_hash)s::bytea, %(horizon)s::interval,
                        %(maintenance_limit)s::integer);

-- name: page_view_at
-- A page as page_view_by_slug showed it at an instant, from the row history (function statusdb_page_view_at, migration 0022): same shape, same token rule, access judged on the page as it is now.
SELECT id, name, description, slug, is_public, updated_at, components, incidents, maintenance
FROM statusdb_page_view_at(%(slug)s::text, %(token_hash)s::bytea, %(at)s::timestamptz,
                           %(horizon)s::interval, %(maintenance_limit)s::integer);
