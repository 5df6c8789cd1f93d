-- name: page_view_by_slug
-- A page as its readers see it (components, active incidents, upcoming maintenance) in one trip.
-- The query itself is the function statusdb_page_view (migration 0008), the only thing the
-- statusdb_reader role may run. A private page is returned only with the right token digest,
-- which the function hashes again and compares with the stored value (0014): a wrong or missing
-- token finds nothing, exactly like an unknown slug, and the stored value opens nothing. Nothing
-- internal (team, service, platform incident, creator, token digest) is selected.
SELECT id, name, description, slug, is_public, updated_at, components, incidents, maintenance,
       groups
FROM statusdb_page_view(%(slug)s::text, %(token_hash)s::bytea, %(horizon)s::interval,
                        %(maintenance_limit)s::integer);
