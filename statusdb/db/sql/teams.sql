-- name: team_create
-- Insert a team and return it.
INSERT INTO team (name)
VALUES (%(name)s)
RETURNING id, name, created_at, updated_at;

-- name: team_get
-- Fetch one team by id.
SELECT id, name, created_at, updated_at
FROM team
WHERE id = %(id)s;

-- name: team_list
-- All teams, by name.
SELECT id, name, created_at, updated_at
FROM team
ORDER BY name, id;

-- name: team_rename
-- Rename a team and return it.
UPDATE team
SET name = %(name)s
WHERE id = %(id)s
RETURNING id, name, created_at, updated_at;

-- name: team_delete
-- Delete a team (refused while it has pages or incidents).
DELETE FROM team
WHERE id = %(id)s;
