-- name: migrations_table_exists
-- Whether yoyo's table of applied migrations exists (`statusdb status` only reads, never creates it).
SELECT to_regclass('_yoyo_migration') IS NOT NULL AS present;

-- name: migrations_applied_hashes
-- The hashes of the applied migrations, as yoyo records them (sha256 of the migration id).
SELECT migration_hash FROM _yoyo_migration;
