-- name: page_create
-- Insert a page and its initial components in one statement, components in status-key slot order.
-- Each component row's derivation trigger takes its status key as it is inserted: the rows go
-- in ascending slot order (as statusdb_take_slots takes slots), ids made first (MATERIALIZED:
-- one id per row) so that a component without a team, keyed by its own id, sorts too. Two
-- creates with teams in opposite orders then cannot deadlock (CONTRIBUTING.md, "Lock order").
WITH page AS (
    INSERT INTO status_page (name, description, slug, is_public, access_token_hash, team_id,
                             created_by_id, time_zone)
    VALUES (%(name)s, %(description)s, %(slug)s, %(is_public)s, %(access_token_hash)s,
            %(team_id)s, %(created_by_id)s, %(time_zone)s)
    RETURNING id, name, description, slug, is_public, team_id, created_by_id, created_at,
              updated_at, time_zone
), given AS MATERIALIZED (
    SELECT statusdb_new_id() AS id, c.name, c.description, c.display_order, c.team_id,
           c.service_identifier
    FROM jsonb_to_recordset(%(components)s::jsonb)
        AS c (name text, description text, display_order integer, team_id text,
              service_identifier text)
), components AS (
    INSERT INTO status_page_component (id, status_page_id, name, description, display_order,
                                       team_id, service_identifier)
    SELECT g.id, page.id, g.name, g.description, g.display_order, g.team_id, g.service_identifier
    FROM page
    CROSS JOIN given AS g
    ORDER BY 1 + (statusdb_status_lock_key(g.team_id, g.id) & 4095), g.id
    RETURNING id
)
SELECT id, name, description, slug, is_public, team_id, created_by_id, created_at, updated_at,
       time_zone
FROM page;

-- name: page_get
-- Fetch one page by id.
SELECT id, name, description, slug, is_public, team_id, created_by_id, created_at, updated_at,
       time_zone
FROM status_page
WHERE id = %(id)s;

-- name: page_get_by_slug
-- Fetch one page by slug.
SELECT id, name, description, slug, is_public, team_id, created_by_id, created_at, updated_at,
       time_zone
FROM status_page
WHERE slug = %(slug)s;

-- name: page_list_for_team
-- A team's pages, by name.
SELECT id, name, description, slug, is_public, team_id, created_by_id, created_at, updated_at,
       time_zone
FROM status_page
WHERE team_id = %(team_id)s
ORDER BY name, id;

-- name: page_update
-- Change any of name, description, slug, time_zone (a flag per field says which).
UPDATE status_page
SET name = CASE WHEN %(set_name)s THEN %(name)s ELSE name END,
    description = CASE WHEN %(set_description)s THEN %(description)s ELSE description END,
    slug = CASE WHEN %(set_slug)s THEN %(slug)s ELSE slug END,
    time_zone = CASE WHEN %(set_time_zone)s THEN %(time_zone)s ELSE time_zone END
WHERE id = %(id)s
RETURNING id, name, description, slug, is_public, team_id, created_by_id, created_at, updated_at,
       time_zone;

-- name: page_set_visibility
-- Make a page public (forgetting its token) or private (with a new token digest).
UPDATE status_page
SET is_public = %(is_public)s,
    access_token_hash = %(access_token_hash)s
WHERE id = %(id)s
RETURNING id, name, description, slug, is_public, team_id, created_by_id, created_at, updated_at,
       time_zone;

-- name: page_rotate_access_token
-- Replace a private page's token digest; the old token stops working at commit.
UPDATE status_page
SET access_token_hash = %(access_token_hash)s
WHERE id = %(id)s AND NOT is_public
RETURNING id;

-- name: page_access_token_hash
-- The token digest and visibility of a page, for a constant-time check in Python.
SELECT is_public, access_token_hash
FROM status_page
WHERE slug = %(slug)s;

-- name: page_delete
-- Delete a page and, by cascade, everything on it.
DELETE FROM status_page
WHERE id = %(id)s;
