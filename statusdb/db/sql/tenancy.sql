-- name: tenancy_set_team
-- Scope the session (or, when is_local, the current transaction) to one team; '' clears it.
SELECT set_config('statusdb.team_id', %(team_id)s::text, %(is_local)s::boolean);

-- name: tenancy_current_team
-- The team this session is scoped to, or null when it is not scoped.
SELECT statusdb_current_team();
