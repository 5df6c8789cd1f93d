-- statusdb 0039: the not-modified read of a public page as a plain SELECT (issue 21 item 2).
-- depends: 0038_lock_ahead
--
-- statusdb_page_view_bytes_v2 answers "not modified" from one index lookup, but the call of a
-- PL/pgSQL function itself (function manager, SPI, result tuplestore) costs ~12 us, as much
-- as the lookup: 1.5-1.7x `SELECT 1`. A plain SELECT of the reader's own costs none of it.
--
-- Design decisions:
--
-- * Public pages only. A view cannot see a query's parameters, so it cannot show a private
--   page only to the holder of its token; and any row a reader may select it may also list
--   (keyed by a digest or not, a listed row shows when a private page changes and when its
--   windows start). Private pages keep the function (the token rule unchanged); a read
--   without a token is exactly a read of public pages (the function's rule with a null
--   digest), so statusdb.views sends this lookup only for reads without a token.
-- * statusdb_page_public_version (security_barrier view, owner's rights): slug_key, version,
--   scheduled_starts of the public snapshot rows, nothing else. The key is
--   statusdb_slug_key(slug) = sha256 of the slug's UTF-8, not the slug: the view is no list of
--   the public pages' slugs either (a reader who knows a slug finds its row).
-- * status_page_snapshot_public_slug_key_idx: a partial index on statusdb_slug_key(slug)
--   WHERE is_public. A private page is not in it at all: the reader's EXPLAIN ANALYZE of a
--   private page's key shows the same plan, rows and buffers as an unknown key (with the
--   filter on is_public after the slug index, "Rows Removed by Filter: 1" would tell one from
--   the other). It does not stop HOT updates of the snapshot (version is not indexed).
-- * The version and fresh_until for a horizon and limit are computed in the reader's SELECT
--   (statusdb/db/sql/views.sql, page_version_public) exactly as statusdb_page_view_bytes_v2
--   does: version * 256 + least(k, 255), k = width_bucket(now() + horizon - 1 us,
--   scheduled_starts).
-- * The snapshot as committed: a writer's pages pending at its commit (0036) are not in the
--   view until then. statusdb.views sends the lookup only on a connection outside a
--   transaction (its own statement: nothing pending); inside one it calls the function,
--   which flushes the transaction's pending pages first.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

CREATE FUNCTION statusdb_slug_key(page_slug text) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT sha256(convert_to(page_slug, 'UTF8'))
$$;

COMMENT ON FUNCTION statusdb_slug_key(text) IS
    'sha256 of a slug''s UTF-8 (0039): the key of statusdb_page_public_version. IMMUTABLE: '
    'the database encoding is UTF-8 (statusdb requires it), so the conversion never changes.';

REVOKE EXECUTE ON FUNCTION statusdb_slug_key(text) FROM PUBLIC;
-- A view's function calls are checked against its user: the reader calls it through the view.
GRANT EXECUTE ON FUNCTION statusdb_slug_key(text) TO statusdb_app, statusdb_reader;

-- The snapshot table is small (one row per page): built in yoyo's transaction like 0020's.
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX status_page_snapshot_public_slug_key_idx
    ON status_page_snapshot (statusdb_slug_key(slug)) WHERE is_public;

COMMENT ON INDEX status_page_snapshot_public_slug_key_idx IS
    'Public snapshot rows by statusdb_slug_key(slug) (0039): statusdb_page_public_version''s '
    'one index lookup; private pages are not in it.';

CREATE VIEW statusdb_page_public_version WITH (security_barrier) AS
SELECT statusdb_slug_key(s.slug) AS slug_key, s.version, s.scheduled_starts
FROM status_page_snapshot s
WHERE s.is_public;

COMMENT ON VIEW statusdb_page_public_version IS
    'The public pages'' snapshot versions by slug key (0039): slug_key = statusdb_slug_key(slug), '
    'version and scheduled_starts as status_page_snapshot''s, as committed (a transaction''s '
    'pending pages are not flushed: read it outside a writing transaction). No private page, '
    'no slug. The not-modified read of statusdb.views.page_view_bytes without a token.';

COMMENT ON COLUMN statusdb_page_public_version.slug_key IS
    'statusdb_slug_key(slug): sha256 of the public page''s slug (UTF-8), not the slug.';
COMMENT ON COLUMN statusdb_page_public_version.version IS
    'The snapshot''s version (status_page_snapshot.version; a read''s is version * 256 + k).';
COMMENT ON COLUMN statusdb_page_public_version.scheduled_starts IS
    'The scheduled candidates'' starts (status_page_snapshot.scheduled_starts): k and '
    'fresh_until for a horizon.';

REVOKE ALL ON TABLE statusdb_page_public_version FROM PUBLIC;
GRANT SELECT ON TABLE statusdb_page_public_version TO statusdb_app, statusdb_reader;
