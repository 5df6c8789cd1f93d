-- name: statuspage_document
-- A Statuspage v2 document of a page (statusdb_page_statuspage, 0034): version, version_text (the ETag), fresh_until, body (null when if_version is version_text), sent on one reused cursor per connection.
SELECT version, version_text, fresh_until, body
FROM statusdb_page_statuspage(%(slug)s::text, %(token_hash)s::bytea, %(horizon)s::interval,
                              %(maintenance_limit)s::integer, %(if_version)s::text,
                              %(document)s::text);

-- name: statuspage_document_locale
-- A Statuspage v2 document of a page in a locale (statusdb_page_statuspage_v2, 0035): as statuspage_document plus the locale used (version_text qualified by it).
SELECT version, version_text, fresh_until, body, locale
FROM statusdb_page_statuspage_v2(%(slug)s::text, %(token_hash)s::bytea, %(horizon)s::interval,
                                 %(maintenance_limit)s::integer, %(if_version)s::text,
                                 %(document)s::text, %(locale)s::text);
