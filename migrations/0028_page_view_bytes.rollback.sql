-- statusdb 0028 rollback: drop the bytes-through page view and the stored scheduled starts.

-- squawk-ignore-file ban-drop-function, ban-drop-column

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

DROP FUNCTION statusdb_page_view_bytes(text, bytea, interval, integer, bigint);
ALTER TABLE status_page_snapshot DROP COLUMN scheduled_starts;
DROP FUNCTION statusdb_scheduled_starts(timestamptz[], boolean[]);
