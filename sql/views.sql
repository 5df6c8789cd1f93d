-- name: page_view_by_slug
-- A page as its readers see it (components, active incidents, upcoming maintenance) in one trip.
-- The query itself is the function statusdb_page_view (migration 0008), the only thing the
-- statusdb_reader role may run (0014). A private page is returned only with its access token,
-- which the function hashes and compares with the stored digest: a wrong or missing token finds
-- nothing, exactly like an unknown slug. Nothing internal (team, service, platform incident,
-- creator, token digest) is selected.
SELECT id, name, description, slug, is_public, updated_at, components, incidents, maintenance
FROM statusdb_page_view(%(slug)s::text, %(token)s::text, %(horizon)s::interval,
                        %(maintenance_limit)s::integer);
