-- statusdb 0039 rollback: drop the public page version view, its index and key function.

-- squawk-ignore-file ban-drop-function, ban-drop-view

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

DROP VIEW statusdb_page_public_version;
-- squawk-ignore require-concurrent-index-deletion
DROP INDEX status_page_snapshot_public_slug_key_idx;
DROP FUNCTION statusdb_slug_key(text);
