-- name: page_feed_by_slug
-- What a page's Atom, RSS and iCalendar feeds show: the page, its recent status incidents with their timelines, its maintenance windows with their series and status changes (statusdb_page_feed, 0030); a private page only with its token digest, else no row, like an unknown slug.
SELECT id, name, description, slug, is_public, time_zone, updated_at, incidents, maintenance
FROM statusdb_page_feed(%(slug)s::text, %(token_hash)s::bytea, %(limit)s::integer);
