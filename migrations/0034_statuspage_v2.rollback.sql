-- statusdb 0034 rollback: drop the Statuspage v2 document function and the completed windows'
-- index (nothing stored is lost: both only read).

-- squawk-ignore-file ban-drop-function, require-concurrent-index-deletion

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

DROP FUNCTION statusdb_page_statuspage(text, bytea, interval, integer, text, text);

DROP INDEX maintenance_window_completed_history_idx;
