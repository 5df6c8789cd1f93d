-- statusdb 0010: indexes that find a change's recipients without reading the page's other
-- subscribers.
-- depends: 0009_set_based_derivation
--
-- A status change is told to the page's active, verified subscribers that follow every
-- component (component_ids = '{}') or that follow the changed component. Until now the fan-out
-- read every subscriber of the page and filtered them (one array comparison per row): for a page
-- of a million subscribers, a million rows read to find the third that matched. The query
-- (outbox_recipients) now asks for the two groups separately, and each has its index:
--   * the subscribers of a page who follow everything: a partial B-tree on (status_page_id, id),
--     in id order, covering what the fan-out reads (channel, destination, notify_on), so that
--     the usual case, most recipients following everything, is an index-only scan: no visit to
--     the table's pages (about 2x faster on the benchmark's page; bench/README.md). The price is
--     a larger index (those rows' destinations) and its upkeep on subscribe;
--   * the followers of one component: a GIN index on component_ids (component ids are unique
--     across pages, so it finds exactly that component's followers), partial like the other.
-- Inactive and unverified subscribers are in neither: they are never notified.
--
-- Built in yoyo's transaction (CONCURRENTLY cannot run inside one): on a million subscribers
-- the two builds take a few seconds, during which writes to status_subscriber wait. On a
-- larger table, create them by hand with CREATE INDEX CONCURRENTLY under these names first;
-- IF NOT EXISTS then makes this migration a no-op for them.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

-- squawk-ignore require-concurrent-index-creation
CREATE INDEX IF NOT EXISTS status_subscriber_fan_out_all_idx
    ON status_subscriber (status_page_id, id) INCLUDE (channel, destination, notify_on)
    WHERE component_ids = '{}' AND is_active AND is_verified;

-- squawk-ignore require-concurrent-index-creation
CREATE INDEX IF NOT EXISTS status_subscriber_fan_out_component_idx
    ON status_subscriber USING gin (component_ids)
    WHERE component_ids <> '{}' AND is_active AND is_verified;
