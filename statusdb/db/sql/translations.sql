-- name: translation_set
-- Writes (or replaces) one field's translation in one locale; no row when the entity is not on the page (or, for an incident_update, the timeline has no such entry). translation_set_page sets status_page_id from the entity.
INSERT INTO translation (locale, entity_kind, entity_id, update_number, field, text)
SELECT %(locale)s, %(entity_kind)s, %(entity_id)s, %(update_number)s, %(field)s, %(text)s
WHERE %(status_page_id)s::text = CASE %(entity_kind)s::text
    WHEN 'page' THEN (SELECT p.id FROM status_page p WHERE p.id = %(entity_id)s)
    WHEN 'component' THEN (SELECT c.status_page_id FROM status_page_component c
                           WHERE c.id = %(entity_id)s)
    WHEN 'group' THEN (SELECT g.status_page_id FROM component_group g WHERE g.id = %(entity_id)s)
    WHEN 'maintenance' THEN (SELECT w.status_page_id FROM maintenance_window w
                             WHERE w.id = %(entity_id)s)
    WHEN 'incident' THEN (SELECT i.status_page_id FROM status_incident i
                          WHERE i.id = %(entity_id)s)
    WHEN 'incident_update' THEN (SELECT i.status_page_id FROM status_incident i
                                 WHERE i.id = %(entity_id)s
                                   AND jsonb_array_length(i.updates) >= %(update_number)s)
END
ON CONFLICT ON CONSTRAINT translation_pkey DO UPDATE SET text = EXCLUDED.text
RETURNING status_page_id, locale, entity_kind, entity_id, update_number, field, text, created_at,
          updated_at;

-- name: translation_list
-- A page's translations, all locales or one, by (locale, entity_kind, entity_id, update_number, field) (index translation_status_page_id_locale_idx).
SELECT status_page_id, locale, entity_kind, entity_id, update_number, field, text, created_at,
       updated_at
FROM translation
WHERE status_page_id = %(status_page_id)s
  AND (%(locale)s::text IS NULL OR locale = %(locale)s)
ORDER BY locale, entity_kind, entity_id, update_number, field
LIMIT %(limit)s;

-- name: translation_locales
-- The locales a page has translations in, in order.
SELECT DISTINCT locale FROM translation WHERE status_page_id = %(status_page_id)s ORDER BY locale;

-- name: translation_delete
-- Deletes one field's translation in one locale of the page; the rows deleted.
DELETE FROM translation
WHERE status_page_id = %(status_page_id)s AND locale = %(locale)s
  AND entity_kind = %(entity_kind)s AND entity_id = %(entity_id)s
  AND update_number = %(update_number)s AND field = %(field)s
RETURNING 1;

-- name: translation_delete_locale
-- Deletes every translation of the page in one locale; how many.
WITH gone AS (
    DELETE FROM translation
    WHERE status_page_id = %(status_page_id)s AND locale = %(locale)s
    RETURNING 1
)
SELECT count(*) FROM gone;

-- name: page_set_default_locale
-- Sets the locale a page's own texts are written in (0033); the page's id, none if no such page.
UPDATE status_page SET default_locale = %(locale)s WHERE id = %(status_page_id)s RETURNING id;

-- name: subscriber_set_locale
-- Sets the locale a subscriber reads (null: the page's default); the subscriber's id.
UPDATE status_subscriber SET locale = %(locale)s WHERE id = %(subscriber_id)s RETURNING id;

-- name: event_texts
-- A notification event's texts in a locale (statusdb_event_texts, 0033).
SELECT locale, page_name, title, message, description, components
FROM statusdb_event_texts(%(event_id)s::text, %(locale)s::text);
