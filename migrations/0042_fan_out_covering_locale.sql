-- statusdb 0042: the fan-out's covering indexes cover the locale again (issue 20, fan-out).
-- depends: 0041_set_based_imports
--
-- 0010 and 0018 built status_subscriber_fan_out_everything_idx and
-- status_subscriber_fan_out_page_idx as covering indexes of what a fan-out reads (id, channel,
-- destination, notify_on), so that a page's followers come by an index-only scan. 0033 added
-- the subscriber's locale to statusdb_notification_recipients_v2's output, and no index
-- covered it any more: the followers of everything of a page-wide event (27,725 of the bench
-- page's 92,080 recipients) came by an Index Scan visiting 9,616 heap buffers at random
-- (EXPLAIN ANALYZE as the app login, bench/README.md "Issue 20: the fan-out ..."). With
-- `locale` in INCLUDE it is an Index Only Scan again (0 heap fetches, 1,787 buffers):
-- the server's part of that fan-out took 0.83x the time (8 alternated pairs, bench cluster).
--
-- Both indexes get the column, the page's as 0018 designed it (it serves the owner's and
-- non-RLS plans; under row-level security the planner scans the page's other followers
-- through the table, see tests/test_index_use.py). `locale` is NULL for most subscribers
-- (its index entry then costs a null bit) and at most 35 bytes; it is changed as rarely as
-- `destination`, which both indexes cover already, so no update that was HOT stops being so
-- except one that changes only the locale.
--
-- Built in yoyo's transaction as 0010's and 0018's were (on a large table, build them by
-- hand CONCURRENTLY first under temporary names and swap; see 0020).

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '30min';

-- squawk-ignore require-concurrent-index-deletion
DROP INDEX status_subscriber_fan_out_everything_idx;
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX status_subscriber_fan_out_everything_idx
    ON status_subscriber (status_page_id, id) INCLUDE (channel, destination, notify_on, locale)
    WHERE component_ids = '{}' AND group_ids = '{}' AND is_active AND is_verified;
COMMENT ON INDEX status_subscriber_fan_out_everything_idx IS
    'A page''s active, verified followers of everything, covering what a fan-out reads '
    '(statusdb_notification_recipients_v2, locale since 0042): an index-only scan.';

-- squawk-ignore require-concurrent-index-deletion
DROP INDEX status_subscriber_fan_out_page_idx;
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX status_subscriber_fan_out_page_idx
    ON status_subscriber (status_page_id, id) INCLUDE (channel, destination, notify_on, locale)
    WHERE component_ids <> '{}' AND is_active AND is_verified;
COMMENT ON INDEX status_subscriber_fan_out_page_idx IS
    'A page''s active, verified followers of some components, covering what a page-wide '
    'fan-out reads (statusdb_notification_recipients_v2, locale since 0042).';
