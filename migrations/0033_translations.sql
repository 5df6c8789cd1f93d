-- statusdb 0033: translations of the texts a page shows (issue 24, item 3).
-- depends: 0032_scheduler_doctor
--
-- * status_page.default_locale: the language the page's own texts are written in (a BCP 47
--   tag, 'en' unless told); status_subscriber.locale: the language a subscriber reads (null:
--   the page's default).
-- * translation: one row per translated field of one entity in one locale, plain text a DBA
--   reads with SELECT: (status_page_id, locale, entity_kind, entity_id, update_number, field,
--   text). entity_kind is page, component, group, incident, incident_update or maintenance;
--   incident_update rows translate the message of timeline entry number update_number (1 =
--   the first entry; the timeline only grows). Integrity: a generated column per entity kind
--   (component_id, group_id, status_incident_id, maintenance_window_id) carries a foreign key
--   ON DELETE CASCADE, so deleting an entity deletes its translations; status_page_id is set by
--   a trigger from the entity (the app cannot choose it) and cascades with the page.
--   Bounds as the source fields: names 200, titles 500, descriptions and messages 10000;
--   names and titles not blank; at most 20 locales per page (a statement trigger, serialised
--   on the page rows).
-- * Why one table and not one per entity: one grant, one policy, one trigger, one place to
--   look ("what is translated on page X": WHERE status_page_id = X), while the FKs keep the
--   integrity a table per entity would have.
-- * The snapshot stays ONE ROW PER PAGE (not per (page, locale)): a write re-renders one row
--   whatever the number of locales; a translated read overlays the translations on the stored
--   rendering (index lookups by entity id on translation_pkey, per shown entity; the default
--   locale reads exactly as before). Every statement that writes translation, and every
--   change of a page's default_locale, moves the page's snapshot version (and announces it as
--   statusdb_page_snapshot_refresh does), so a conditional read never serves a stale
--   translation. Measured in bench/bench_translations.py (docs/translations.md).
-- * Locale negotiation (statusdb_locale_chain): the tag asked for, then its language subtag,
--   each if the page has any translation in it; then the page's own texts. Per field: the first
--   locale of that chain with a translation of the field, else the source text. The answer
--   says which locale it used (the first of the chain, else default_locale).
-- * Reads: statusdb_page_view_v3 / statusdb_page_view_bytes_v3 / statusdb_page_feed_v2 are the
--   0029/0029/0030 functions (statusdb_page_view_v2, statusdb_page_view_bytes_v2: with the
--   page's time zone; statusdb_page_feed) with a last argument page_locale and a result column
--   locale
--   (SECURITY DEFINER, same bounds and token rule: a private page's translations are read only
--   through them, with its token). The overlay helpers (statusdb_locale_chain,
--   statusdb_translation_text, statusdb_translate_rows) are owner-only: any other renderer
--   running as the owner (a Statuspage JSON) applies them to what it shows.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

-- A BCP 47 tag as statusdb stores it: language (2-3 letters, lower case), optional script (4
-- letters, title case), optional region (2 letters upper case, or 3 digits). The canonical case
-- makes equal tags equal strings (statusdb.domain.validate.locale writes it).
ALTER TABLE status_page
    ADD COLUMN default_locale text NOT NULL DEFAULT 'en'
        CONSTRAINT status_page_default_locale_check
        CHECK (length(default_locale) <= 35 AND default_locale ~ '^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$');
COMMENT ON COLUMN status_page.default_locale IS
    'The BCP 47 tag (canonical case) of the language the page''s own texts are written in '
    '(0033); translations in other locales are in table translation.';
GRANT INSERT (default_locale), UPDATE (default_locale) ON TABLE status_page TO statusdb_app;

ALTER TABLE status_subscriber
    ADD COLUMN locale text
        CONSTRAINT status_subscriber_locale_check
        CHECK (length(locale) <= 35 AND locale ~ '^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$');
COMMENT ON COLUMN status_subscriber.locale IS
    'The BCP 47 tag of the language the subscriber reads (0033); null: the page''s '
    'default_locale. Notifications are translated by the same chain as the page view.';
GRANT INSERT (locale), UPDATE (locale) ON TABLE status_subscriber TO statusdb_app;

CREATE TABLE translation (
    status_page_id text NOT NULL
        CONSTRAINT translation_status_page_id_fkey
        REFERENCES status_page (id) ON DELETE CASCADE,
    locale text NOT NULL
        CONSTRAINT translation_locale_check
        CHECK (length(locale) <= 35 AND locale ~ '^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$'),
    entity_kind text NOT NULL
        CONSTRAINT translation_entity_kind_check
        CHECK (entity_kind IN ('page', 'component', 'group', 'incident', 'incident_update',
                               'maintenance')),
    entity_id text NOT NULL
        CONSTRAINT translation_entity_id_length_check CHECK (length(entity_id) <= 200),
    -- A timeline holds at most 500 entries (translation_update_number_check).
    -- squawk-ignore prefer-bigint-over-int
    update_number integer NOT NULL DEFAULT 0,
    field text NOT NULL,
    text text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    component_id text GENERATED ALWAYS AS
        (CASE WHEN entity_kind = 'component' THEN entity_id END) STORED
        CONSTRAINT translation_component_id_fkey
        REFERENCES status_page_component (id) ON DELETE CASCADE,
    group_id text GENERATED ALWAYS AS
        (CASE WHEN entity_kind = 'group' THEN entity_id END) STORED
        CONSTRAINT translation_group_id_fkey
        REFERENCES component_group (id) ON DELETE CASCADE,
    status_incident_id text GENERATED ALWAYS AS
        (CASE WHEN entity_kind IN ('incident', 'incident_update') THEN entity_id END) STORED
        CONSTRAINT translation_status_incident_id_fkey
        REFERENCES status_incident (id) ON DELETE CASCADE,
    maintenance_window_id text GENERATED ALWAYS AS
        (CASE WHEN entity_kind = 'maintenance' THEN entity_id END) STORED
        CONSTRAINT translation_maintenance_window_id_fkey
        REFERENCES maintenance_window (id) ON DELETE CASCADE,
    CONSTRAINT translation_pkey
        PRIMARY KEY (entity_id, entity_kind, update_number, field, locale),
    CONSTRAINT translation_field_check
        CHECK (length(field) <= 20 AND (entity_kind, field) IN (('page', 'name'), ('page', 'description'),
                                        ('component', 'name'), ('component', 'description'),
                                        ('group', 'name'), ('group', 'description'),
                                        ('incident', 'title'), ('incident', 'message'),
                                        ('incident_update', 'message'),
                                        ('maintenance', 'title'),
                                        ('maintenance', 'description'))),
    CONSTRAINT translation_page_check
        CHECK (entity_kind <> 'page' OR entity_id = status_page_id),
    CONSTRAINT translation_update_number_check
        CHECK ((entity_kind = 'incident_update') = (update_number > 0)
               AND update_number BETWEEN 0 AND 500),
    -- The bounds of the source fields (status_page_name_check, status_incident_title_check,
    -- ..._description_length_check, status_incident_message_length_check).
    CONSTRAINT translation_text_length_check
        CHECK (length(text) <= 10000
               AND length(text) <= CASE field WHEN 'name' THEN 200 WHEN 'title' THEN 500
                                              ELSE 10000 END),
    CONSTRAINT translation_text_check
        CHECK (field NOT IN ('name', 'title') OR btrim(text) <> ''),
    CONSTRAINT translation_created_at_range_check
        CHECK (created_at >= '0001-01-02 00:00:00+00' AND created_at < '9999-12-31 00:00:00+00'),
    CONSTRAINT translation_updated_at_range_check
        CHECK (updated_at >= '0001-01-02 00:00:00+00' AND updated_at < '9999-12-31 00:00:00+00')
);

COMMENT ON TABLE translation IS
    'Translations of the texts a page shows (0033): one row per (entity, field, locale); '
    'entity_kind page/component/group/incident/incident_update/maintenance, entity_id the '
    'row''s id (incident_update: the status incident''s, with update_number = the timeline '
    'entry, 1 first). Deleting an entity deletes its rows (the generated FK columns). Read by '
    'statusdb_page_view_v3 and friends: the tag asked for, then its language, then the '
    'page''s own text.';
COMMENT ON COLUMN translation.status_page_id IS
    'The page of the translated entity; set by translation_set_page from the entity.';
COMMENT ON COLUMN translation.update_number IS
    'incident_update: the number of the timeline entry (1 = the first); 0 otherwise.';
COMMENT ON COLUMN translation.locale IS
    'The BCP 47 tag (canonical case: de, de-CH, zh-Hant-TW, es-419) of the translation.';
COMMENT ON COLUMN translation.entity_kind IS
    'What is translated: page, component, group, incident, incident_update or maintenance.';
COMMENT ON COLUMN translation.entity_id IS
    'The translated row''s id (the page''s for page; the status incident''s for '
    'incident_update).';
COMMENT ON COLUMN translation.field IS
    'The translated column: name, description (page, component, group), title, message '
    '(incident), message (incident_update), title, description (maintenance).';
COMMENT ON COLUMN translation.created_at IS 'When the translation was first written.';
COMMENT ON COLUMN translation.updated_at IS 'When its text last changed.';
COMMENT ON COLUMN translation.component_id IS
    'Generated: entity_id for a component (its FK deletes the translation with it).';
COMMENT ON COLUMN translation.group_id IS
    'Generated: entity_id for a group (its FK deletes the translation with it).';
COMMENT ON COLUMN translation.status_incident_id IS
    'Generated: entity_id for an incident or incident_update (FK ON DELETE CASCADE).';
COMMENT ON COLUMN translation.maintenance_window_id IS
    'Generated: entity_id for a maintenance window (FK ON DELETE CASCADE).';
COMMENT ON COLUMN translation.text IS
    'The translated text; bounded as the source field (names 200, titles 500, else 10000).';

-- The page's locales (the chain's EXISTS, the per-page bound) and "what is translated on
-- page X".
CREATE INDEX translation_status_page_id_locale_idx ON translation (status_page_id, locale);
-- The FK columns' cascades (deleting a component finds its translations by index).
CREATE INDEX translation_component_id_idx ON translation (component_id)
    WHERE component_id IS NOT NULL;
CREATE INDEX translation_group_id_idx ON translation (group_id) WHERE group_id IS NOT NULL;
CREATE INDEX translation_status_incident_id_idx ON translation (status_incident_id)
    WHERE status_incident_id IS NOT NULL;
CREATE INDEX translation_maintenance_window_id_idx ON translation (maintenance_window_id)
    WHERE maintenance_window_id IS NOT NULL;

ALTER TABLE translation ENABLE ROW LEVEL SECURITY;
CREATE POLICY translation_team_isolation ON translation FOR ALL TO PUBLIC
    USING ((SELECT statusdb_current_team()) IS NULL
           OR status_page_id IN (SELECT p.id FROM status_page p
                                 WHERE p.team_id = (SELECT statusdb_current_team())));

GRANT SELECT, DELETE ON TABLE translation TO statusdb_app;
GRANT INSERT (locale, entity_kind, entity_id, update_number, field, text, created_at,
              updated_at),
      UPDATE (text, updated_at)
    ON TABLE translation TO statusdb_app;

-- The page of the entity, whatever the client wrote (rule 6: on INSERT and on UPDATE of the
-- key). An entity that does not exist is refused like a foreign key. SECURITY INVOKER: the
-- entity is looked up with the writer's privileges and team scope, so another team's entity
-- is refused exactly like an id that names nothing (no oracle of other teams' ids).
CREATE FUNCTION statusdb_translation_set_page() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    page text;
BEGIN
    page := CASE NEW.entity_kind
        WHEN 'page' THEN (SELECT p.id FROM public.status_page p WHERE p.id = NEW.entity_id)
        WHEN 'component' THEN (SELECT c.status_page_id FROM public.status_page_component c
                               WHERE c.id = NEW.entity_id)
        WHEN 'group' THEN (SELECT g.status_page_id FROM public.component_group g
                           WHERE g.id = NEW.entity_id)
        WHEN 'maintenance' THEN (SELECT w.status_page_id FROM public.maintenance_window w
                                 WHERE w.id = NEW.entity_id)
        ELSE (SELECT i.status_page_id FROM public.status_incident i WHERE i.id = NEW.entity_id)
    END;
    IF page IS NULL THEN
        RAISE EXCEPTION 'no % with id % to translate', NEW.entity_kind, NEW.entity_id
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'translation_entity_fkey',
                  TABLE = 'translation';
    END IF;
    NEW.status_page_id := page;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION statusdb_translation_set_page() IS
    'Trigger (0033): sets translation.status_page_id from the translated entity; refuses an '
    'entity that does not exist (translation_entity_fkey).';
REVOKE EXECUTE ON FUNCTION statusdb_translation_set_page() FROM PUBLIC;

CREATE TRIGGER translation_set_page
    BEFORE INSERT OR UPDATE OF status_page_id, entity_kind, entity_id ON translation
    FOR EACH ROW EXECUTE FUNCTION statusdb_translation_set_page();
CREATE TRIGGER translation_touch_updated_at
    BEFORE UPDATE ON translation
    FOR EACH ROW EXECUTE FUNCTION statusdb_touch_updated_at();

-- Moves the versions of the given pages' snapshots (a translation is part of what a page
-- shows) and announces them as statusdb_page_snapshot_refresh does. Rows locked in page order
-- (lock order step 5).
CREATE FUNCTION statusdb_page_snapshot_bump(page_ids text[]) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    announced bigint;
BEGIN
    IF coalesce(cardinality(page_ids), 0) = 0 THEN
        RETURN;
    END IF;
    PERFORM 1 FROM status_page_snapshot s
    WHERE s.page_id = ANY (page_ids)
    ORDER BY s.page_id
    FOR UPDATE;
    WITH changed AS (
        UPDATE status_page_snapshot s
        SET version = nextval('status_page_snapshot_version_seq')
        WHERE s.page_id = ANY (page_ids)
        RETURNING s.version
    )
    SELECT count(pg_notify('statusdb_page_version', (changed.version * 256)::text))
    INTO STRICT announced
    FROM changed;
END;
$$;
COMMENT ON FUNCTION statusdb_page_snapshot_bump(text[]) IS
    'Gives the pages'' snapshots new versions without re-rendering (0033: their translations or '
    'default locale changed) and announces them on statusdb_page_version. Owner only.';
REVOKE EXECUTE ON FUNCTION statusdb_page_snapshot_bump(text[]) FROM PUBLIC;

-- After each statement on translation: the per-page bound on locales (the page rows locked
-- first, so two writers of one page count one after the other), then the version bump.
CREATE FUNCTION statusdb_translation_snapshot() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    pages text[];
    crowded text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        pages := ARRAY(SELECT DISTINCT n.status_page_id FROM new_rows n ORDER BY 1);
    ELSIF TG_OP = 'UPDATE' THEN
        pages := ARRAY(SELECT n.status_page_id FROM new_rows n
                       UNION SELECT o.status_page_id FROM old_rows o ORDER BY 1);
    ELSE
        pages := ARRAY(SELECT DISTINCT o.status_page_id FROM old_rows o ORDER BY 1);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM 1 FROM status_page p WHERE p.id = ANY (pages) ORDER BY p.id FOR NO KEY UPDATE;
        SELECT t.status_page_id INTO crowded
        FROM translation t
        WHERE t.status_page_id = ANY (pages)
        GROUP BY t.status_page_id
        HAVING count(DISTINCT t.locale) > 20
        LIMIT 1;
        IF crowded IS NOT NULL THEN
            RAISE EXCEPTION 'status page % would have translations in more than 20 locales',
                            crowded
                USING ERRCODE = 'check_violation',
                      CONSTRAINT = 'translation_locales_per_page_check',
                      TABLE = 'translation';
        END IF;
    END IF;
    PERFORM statusdb_page_snapshot_bump(pages);
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION statusdb_translation_snapshot() IS
    'Trigger (0033): at most 20 locales per page (translation_locales_per_page_check), then '
    'new snapshot versions for the pages whose translations the statement changed.';
REVOKE EXECUTE ON FUNCTION statusdb_translation_snapshot() FROM PUBLIC;

CREATE TRIGGER translation_snapshot_insert AFTER INSERT ON translation
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION statusdb_translation_snapshot();
CREATE TRIGGER translation_snapshot_update AFTER UPDATE ON translation
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION statusdb_translation_snapshot();
CREATE TRIGGER translation_snapshot_delete AFTER DELETE ON translation
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION statusdb_translation_snapshot();

-- A page's default_locale decides which texts a locale read shows: its change moves the
-- version too (transition tables cannot be combined with a column list: compared here).
CREATE FUNCTION statusdb_status_page_locale_snapshot() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM statusdb_page_snapshot_bump(ARRAY(
        SELECT n.id FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.default_locale IS DISTINCT FROM o.default_locale
        ORDER BY n.id));
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION statusdb_status_page_locale_snapshot() IS
    'Trigger (0033): new snapshot versions for the pages whose default_locale changed.';
REVOKE EXECUTE ON FUNCTION statusdb_status_page_locale_snapshot() FROM PUBLIC;

CREATE TRIGGER status_page_locale_snapshot AFTER UPDATE ON status_page
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION statusdb_status_page_locale_snapshot();

-- The chain of locales a read in `requested` uses on the page: the tag, then its language
-- subtag, each only if the page has a translation in it (index translation_status_page_id_
-- locale_idx). Empty: the page's own texts.
CREATE FUNCTION statusdb_locale_chain(page_id text, requested text) RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path = public, pg_temp
AS $$
BEGIN
    RETURN (
    SELECT coalesce(array_agg(c.tag ORDER BY c.n), '{}')
    FROM (SELECT DISTINCT ON (u.tag) u.tag, u.n
          FROM unnest(ARRAY[requested, split_part(requested, '-', 1)]) WITH ORDINALITY
               AS u (tag, n)
          WHERE u.tag IS NOT NULL AND u.tag <> ''
          ORDER BY u.tag, u.n) AS c
    WHERE EXISTS (SELECT 1 FROM translation t
                  WHERE t.status_page_id = page_id AND t.locale = c.tag)
    );
END;
$$;
COMMENT ON FUNCTION statusdb_locale_chain(text, text) IS
    'The locales a read of the page in `requested` tries, in order (0033): the tag, then its '
    'language subtag, each if the page has translations in it; empty: its own texts. Owner only '
    '(renderers running as the owner use it).';
REVOKE EXECUTE ON FUNCTION statusdb_locale_chain(text, text) FROM PUBLIC;

-- One field of one entity in the first locale of `chain` that translates it; null: none.
CREATE FUNCTION statusdb_translation_text(chain text[], kind text, id text, field_name text,
                                          number integer DEFAULT 0) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = public, pg_temp
AS $$
BEGIN
    RETURN (
    SELECT t.text
    FROM translation t
    WHERE cardinality(chain) > 0
      AND t.entity_id = id AND t.entity_kind = kind AND t.update_number = number
      AND t.field = field_name AND t.locale = ANY (chain)
    ORDER BY array_position(chain, t.locale)
    LIMIT 1
    );
END;
$$;
COMMENT ON FUNCTION statusdb_translation_text(text[], text, text, text, integer) IS
    'The translation of one field (0033): entity kind, id, field name and for incident_update '
    'the entry number, in the first locale of chain (statusdb_locale_chain) that has it; null: '
    'none (show the source text). One translation_pkey lookup. Owner only.';
REVOKE EXECUTE ON FUNCTION statusdb_translation_text(text[], text, text, text, integer)
    FROM PUBLIC;

-- The page view's arrays of arrays ([id, text1, text2, ...]: components, groups, windows,
-- incidents), elements 1 and 2 translated; for incidents also the timeline's messages
-- (element 8, entry n = update n). Untranslated elements are kept as they are. Set-based: one
-- translation_pkey scan for the array's ids (entity_id = ANY), joined by hash (measured: a
-- lookup per element cost ~50 times more, bench/translations.py).
CREATE FUNCTION statusdb_translate_rows(items json, chain text[], kind text, first_field text,
                                        second_field text) RETURNS json
LANGUAGE plpgsql STABLE
SET search_path = public, pg_temp
AS $$
BEGIN
    RETURN (
    WITH e AS (
        SELECT x.item, x.n, x.item ->> 0 AS id
        FROM json_array_elements(items) WITH ORDINALITY AS x (item, n)
    ),
    found AS (
        SELECT DISTINCT ON (t.entity_id, t.entity_kind, t.update_number, t.field)
               t.entity_id, t.entity_kind, t.update_number, t.field, t.text
        FROM translation t
        WHERE t.entity_id = ANY (ARRAY(SELECT e.id FROM e))
          AND (t.entity_kind = kind
               OR kind = 'incident' AND t.entity_kind = 'incident_update')
          AND t.locale = ANY (chain)
        ORDER BY t.entity_id, t.entity_kind, t.update_number, t.field,
                 array_position(chain, t.locale)
    ),
    per_entity AS (
        SELECT f.entity_id,
               max(f.text) FILTER (WHERE f.entity_kind = kind AND f.field = first_field)
                   AS first,
               max(f.text) FILTER (WHERE f.entity_kind = kind AND f.field = second_field)
                   AS second,
               jsonb_object_agg(f.update_number::text, f.text)
                   FILTER (WHERE f.entity_kind = 'incident_update') AS messages
        FROM found f
        GROUP BY f.entity_id
    )
    SELECT CASE WHEN coalesce(cardinality(chain), 0) = 0 THEN items ELSE (
        SELECT coalesce(json_agg(
                   CASE WHEN p.entity_id IS NULL THEN e.item
                        ELSE (SELECT CASE WHEN p.messages IS NULL THEN x.texts
                                          ELSE jsonb_set(x.texts, '{8}', (
                                              SELECT coalesce(jsonb_agg(
                                                         CASE WHEN p.messages ? u.k::text
                                                              THEN jsonb_set(
                                                                  u.entry, '{message}',
                                                                  p.messages -> u.k::text)
                                                              ELSE u.entry END
                                                         ORDER BY u.k), '[]')
                                              FROM jsonb_array_elements(x.texts -> 8)
                                                   WITH ORDINALITY AS u (entry, k)))
                                     END
                              FROM (SELECT jsonb_set(jsonb_set(
                                               e.item::jsonb,
                                               '{1}', coalesce(to_jsonb(p.first),
                                                               e.item::jsonb -> 1)),
                                               '{2}', coalesce(to_jsonb(p.second),
                                                               e.item::jsonb -> 2)) AS texts)
                                   AS x)::json
                   END ORDER BY e.n), '[]')
        FROM e
        LEFT JOIN per_entity p ON p.entity_id = e.id)
    END
    );
END;
$$;
COMMENT ON FUNCTION statusdb_translate_rows(json, text[], text, text, text) IS
    'The snapshot''s arrays [[id, text, text, ...], ...] with elements 1 and 2 translated '
    '(0033; the fields named) in chain; for kind incident also element 8''s timeline '
    'messages. One translation_pkey scan for the array''s ids. Owner only.';
REVOKE EXECUTE ON FUNCTION statusdb_translate_rows(json, text[], text, text, text) FROM PUBLIC;

-- The page view in a locale: statusdb_page_view_v2 (0029, with the page's time zone) and a
-- last argument page_locale and result column locale.
CREATE FUNCTION statusdb_page_view_v3(page_slug text, page_token_hash bytea,
                                      maintenance_horizon interval, maintenance_limit integer,
                                      if_version bigint DEFAULT NULL, page_locale text DEFAULT NULL)
RETURNS TABLE (
    id text, name text, description text, slug text, is_public boolean, updated_at timestamptz,
    components json, incidents json, maintenance json, version bigint, fresh_until timestamptz,
    not_modified boolean, groups json, time_zone text, locale text
)
LANGUAGE plpgsql STABLE SECURITY DEFINER ROWS 1
SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v record;
    chain text[];
BEGIN
    IF length(page_locale) > 35
       OR page_locale !~ '^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$' THEN
        RAISE EXCEPTION 'page_locale must be a BCP 47 tag (language[-Script][-REGION]), not %',
                        quote_literal(left(page_locale, 40))
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO v
    FROM statusdb_page_view_v2(page_slug, page_token_hash, maintenance_horizon,
                               maintenance_limit, if_version) AS r;
    IF NOT FOUND THEN
        RETURN;  -- unknown slug or wrong token: nothing, translations included
    END IF;
    chain := CASE WHEN page_locale IS NULL THEN '{}'::text[]
                  ELSE statusdb_locale_chain(v.id, page_locale) END;
    locale := coalesce(chain[1], (SELECT p.default_locale FROM status_page p WHERE p.id = v.id));
    id := v.id; slug := v.slug; is_public := v.is_public; updated_at := v.updated_at;
    version := v.version; fresh_until := v.fresh_until; not_modified := v.not_modified;
    time_zone := v.time_zone;
    IF v.not_modified OR cardinality(chain) = 0 THEN
        name := v.name; description := v.description; components := v.components;
        incidents := v.incidents; maintenance := v.maintenance; groups := v.groups;
    ELSE
        name := coalesce(statusdb_translation_text(chain, 'page', v.id, 'name'), v.name);
        description := coalesce(statusdb_translation_text(chain, 'page', v.id, 'description'),
                                v.description);
        components := statusdb_translate_rows(v.components, chain, 'component', 'name',
                                              'description');
        incidents := statusdb_translate_rows(v.incidents, chain, 'incident', 'title', 'message');
        maintenance := statusdb_translate_rows(v.maintenance, chain, 'maintenance', 'title',
                                               'description');
        groups := statusdb_translate_rows(v.groups, chain, 'group', 'name', 'description');
    END IF;
    RETURN NEXT;
END;
$$;
COMMENT ON FUNCTION statusdb_page_view_v3(text, bytea, interval, integer, bigint, text) IS
    'statusdb_page_view_v2 (0029: with the page''s time_zone) in a locale (0033): page_locale '
    'a BCP 47 tag in canonical case (null: the page''s own texts), else SQLSTATE 22023; texts translated by the chain tag, '
    'language, own text (statusdb_locale_chain); result column locale = the locale used (the '
    'first of the chain, else the page''s default_locale). Same bounds, token rule, version '
    'and not-modified answer (a translation write moves the version).';
REVOKE EXECUTE ON FUNCTION statusdb_page_view_v3(text, bytea, interval, integer, bigint, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION statusdb_page_view_v3(text, bytea, interval, integer, bigint, text)
    TO statusdb_app, statusdb_reader;

-- The bytes-through read in a locale: statusdb_page_view_bytes_v2 (0029, "time_zone" the
-- body's last key) and a last argument page_locale and result column locale.
CREATE FUNCTION statusdb_page_view_bytes_v3(page_slug text, page_token_hash bytea,
                                            maintenance_horizon interval,
                                            maintenance_limit integer,
                                            if_version bigint DEFAULT NULL,
                                            page_locale text DEFAULT NULL)
RETURNS TABLE (version bigint, fresh_until timestamptz, body text, locale text)
LANGUAGE plpgsql STABLE SECURITY DEFINER ROWS 1
SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    stored_hash bytea;
    found_page text;
    page_default text;
    chain text[];
BEGIN
    IF length(page_locale) > 35
       OR page_locale !~ '^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$' THEN
        RAISE EXCEPTION 'page_locale must be a BCP 47 tag (language[-Script][-REGION]), not %',
                        quote_literal(left(page_locale, 40))
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF page_locale IS NOT NULL AND octet_length(page_slug) <= 100 THEN
        IF octet_length(page_token_hash) = 32 THEN
            stored_hash := sha256(page_token_hash);
        END IF;
        SELECT s.page_id, p.default_locale INTO found_page, page_default
        FROM status_page_snapshot s
        JOIN status_page p ON p.id = s.page_id
        WHERE s.slug = page_slug
          AND (s.is_public OR s.access_token_hash = stored_hash);
        IF found_page IS NOT NULL THEN
            chain := statusdb_locale_chain(found_page, page_locale);
        END IF;
    END IF;
    IF coalesce(cardinality(chain), 0) = 0 THEN
        -- The page's own texts: the 0029 bytes-through read, as it is.
        RETURN QUERY
        SELECT b.version, b.fresh_until, b.body,
               coalesce(page_default,
                        (SELECT p.default_locale FROM status_page p
                         JOIN status_page_snapshot s ON s.page_id = p.id
                         WHERE s.slug = page_slug))
        FROM statusdb_page_view_bytes_v2(page_slug, page_token_hash, maintenance_horizon,
                                         maintenance_limit, if_version) AS b;
        RETURN;
    END IF;
    RETURN QUERY
    SELECT v.version, v.fresh_until,
           CASE WHEN NOT v.not_modified THEN
               '{"id": ' || to_json(v.id)::text
               || ', "name": ' || to_json(v.name)::text
               || ', "description": ' || coalesce(to_json(v.description)::text, 'null')
               || ', "slug": ' || to_json(v.slug)::text
               || ', "is_public": ' || CASE WHEN v.is_public THEN 'true' ELSE 'false' END
               || ', "updated_at": "'
               || replace(to_json(v.updated_at AT TIME ZONE 'UTC')::text, '"', '') || '+00:00"'
               || ', "components": ' || v.components::text
               || ', "incidents": ' || v.incidents::text
               || ', "maintenance": ' || v.maintenance::text
               || ', "groups": ' || v.groups::text
               || ', "time_zone": ' || to_json(v.time_zone)::text
               || '}'
           END,
           v.locale
    FROM statusdb_page_view_v3(page_slug, page_token_hash, maintenance_horizon,
                               maintenance_limit, if_version, page_locale) AS v;
END;
$$;
COMMENT ON FUNCTION statusdb_page_view_bytes_v3(text, bytea, interval, integer, bigint, text) IS
    'statusdb_page_view_bytes_v2 (0029: "time_zone" the last key) in a locale (0033): same '
    'document shape; result column locale = the locale used. The page''s own texts (no '
    'page_locale, or no translation in its chain) are the 0029 read as it is; a translated one '
    'is composed from statusdb_page_view_v3. Same bounds, token rule and not-modified answer.';
REVOKE EXECUTE ON FUNCTION statusdb_page_view_bytes_v3(text, bytea, interval, integer, bigint,
                                                       text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION statusdb_page_view_bytes_v3(text, bytea, interval, integer, bigint,
                                                      text)
    TO statusdb_app, statusdb_reader;

-- The feeds in a locale: statusdb_page_feed's objects with their texts translated; component
-- names (the feed lists names) found by (page, name), component names being unique per page
-- (status_page_component_status_page_id_name_key); timeline entries by their number (the
-- feed shows the last 50 of the timeline's length).
CREATE FUNCTION statusdb_page_feed_v2(page_slug text, page_token_hash bytea, feed_limit integer,
                                      page_locale text)
RETURNS TABLE (
    id text, name text, description text, slug text, is_public boolean, time_zone text,
    updated_at timestamptz, incidents json, maintenance json, locale text
)
LANGUAGE plpgsql STABLE SECURITY DEFINER ROWS 1
SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    f record;
    chain text[];
BEGIN
    IF length(page_locale) > 35
       OR page_locale !~ '^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$' THEN
        RAISE EXCEPTION 'page_locale must be a BCP 47 tag (language[-Script][-REGION]), not %',
                        quote_literal(left(page_locale, 40))
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO f FROM statusdb_page_feed(page_slug, page_token_hash, feed_limit) AS r;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    chain := CASE WHEN page_locale IS NULL THEN '{}'::text[]
                  ELSE statusdb_locale_chain(f.id, page_locale) END;
    locale := coalesce(chain[1], (SELECT p.default_locale FROM status_page p WHERE p.id = f.id));
    id := f.id; slug := f.slug; is_public := f.is_public; time_zone := f.time_zone;
    updated_at := f.updated_at;
    IF cardinality(chain) = 0 THEN
        name := f.name; description := f.description; incidents := f.incidents;
        maintenance := f.maintenance;
        RETURN NEXT;
        RETURN;
    END IF;
    name := coalesce(statusdb_translation_text(chain, 'page', f.id, 'name'), f.name);
    description := coalesce(statusdb_translation_text(chain, 'page', f.id, 'description'),
                            f.description);
    SELECT coalesce(json_agg((e.item::jsonb || jsonb_build_object(
               'title', coalesce(statusdb_translation_text(chain, 'incident', e.item ->> 'id',
                                                           'title'), e.item ->> 'title'),
               'message', coalesce(to_jsonb(statusdb_translation_text(
                                       chain, 'incident', e.item ->> 'id', 'message')),
                                   e.item::jsonb -> 'message'),
               'updates', (SELECT coalesce(jsonb_agg(
                                      CASE WHEN m.message IS NULL THEN u.entry
                                           ELSE jsonb_set(u.entry, '{message}',
                                                          to_jsonb(m.message)) END
                                      ORDER BY u.k), '[]')
                           FROM jsonb_array_elements(e.item::jsonb -> 'updates')
                                WITH ORDINALITY AS u (entry, k)
                           CROSS JOIN LATERAL (
                               SELECT statusdb_translation_text(
                                   chain, 'incident_update', e.item ->> 'id', 'message',
                                   (u.k + (SELECT jsonb_array_length(i.updates)
                                           FROM status_incident i
                                           WHERE i.id = e.item ->> 'id')
                                    - jsonb_array_length(e.item::jsonb -> 'updates'))::integer)
                                   AS message) AS m),
               'components', (SELECT coalesce(jsonb_agg(
                                         coalesce(statusdb_translation_text(
                                                      chain, 'component', c.id, 'name'),
                                                  n.component_name) ORDER BY n.k), '[]')
                              FROM jsonb_array_elements_text(e.item::jsonb -> 'components')
                                   WITH ORDINALITY AS n (component_name, k)
                              LEFT JOIN status_page_component c
                                     ON c.status_page_id = f.id AND c.name = n.component_name)
           ))::json ORDER BY e.n), '[]')
    INTO incidents
    FROM json_array_elements(f.incidents) WITH ORDINALITY AS e (item, n);
    SELECT coalesce(json_agg((e.item::jsonb || jsonb_build_object(
               'title', coalesce(statusdb_translation_text(chain, 'maintenance', e.item ->> 'id',
                                                           'title'), e.item ->> 'title'),
               'description', coalesce(to_jsonb(statusdb_translation_text(
                                           chain, 'maintenance', e.item ->> 'id',
                                           'description')),
                                       e.item::jsonb -> 'description'),
               'components', (SELECT coalesce(jsonb_agg(
                                         coalesce(statusdb_translation_text(
                                                      chain, 'component', c.id, 'name'),
                                                  n.component_name) ORDER BY n.k), '[]')
                              FROM jsonb_array_elements_text(e.item::jsonb -> 'components')
                                   WITH ORDINALITY AS n (component_name, k)
                              LEFT JOIN status_page_component c
                                     ON c.status_page_id = f.id AND c.name = n.component_name)
           ))::json ORDER BY e.n), '[]')
    INTO maintenance
    FROM json_array_elements(f.maintenance) WITH ORDINALITY AS e (item, n);
    RETURN NEXT;
END;
$$;
COMMENT ON FUNCTION statusdb_page_feed_v2(text, bytea, integer, text) IS
    'statusdb_page_feed (0030) in a locale (0033): page, incident (title, message, timeline '
    'messages), window (title, description) and component names translated by the chain of '
    'statusdb_page_view_v3; result column locale = the locale used. Same bounds and token rule; '
    'page_locale a BCP 47 tag in canonical case or null, else SQLSTATE 22023.';
REVOKE EXECUTE ON FUNCTION statusdb_page_feed_v2(text, bytea, integer, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION statusdb_page_feed_v2(text, bytea, integer, text)
    TO statusdb_app, statusdb_reader;

-- Notifications: the texts of one event's payload in a locale. The worker asks once per
-- (event, locale) of its recipients; app only (the reader role reads no events).
CREATE FUNCTION statusdb_event_texts(event_id text, event_locale text)
RETURNS TABLE (locale text, page_name text, title text, message text, description text,
               components jsonb)
LANGUAGE plpgsql STABLE SECURITY DEFINER ROWS 1
SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    e record;
    chain text[];
    entries integer;
BEGIN
    IF length(event_locale) > 35
       OR event_locale !~ '^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$' THEN
        RAISE EXCEPTION 'event_locale must be a BCP 47 tag (language[-Script][-REGION]), not %',
                        quote_literal(left(event_locale, 40))
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(event_id) > 200 THEN
        RETURN;
    END IF;
    -- Row-level security does not apply to the owner: keep to the caller's team (rule 15).
    SELECT n.status_page_id, n.kind, n.payload, p.default_locale INTO e
    FROM notification_event n
    JOIN status_page p ON p.id = n.status_page_id
    WHERE n.id = event_id
      AND (statusdb_current_team() IS NULL OR p.team_id = statusdb_current_team());
    IF NOT FOUND THEN
        RETURN;
    END IF;
    chain := CASE WHEN event_locale IS NULL THEN '{}'::text[]
                  ELSE statusdb_locale_chain(e.status_page_id, event_locale) END;
    locale := coalesce(chain[1], e.default_locale);
    page_name := coalesce(statusdb_translation_text(chain, 'page', e.status_page_id, 'name'),
                          e.payload #>> '{page,name}');
    components := (SELECT coalesce(jsonb_agg(
                       c.item || jsonb_build_object('name', coalesce(
                           statusdb_translation_text(chain, 'component', pc.id, 'name'),
                           c.item ->> 'name')) ORDER BY c.k), '[]')
                   FROM jsonb_array_elements(e.payload -> 'components') WITH ORDINALITY
                        AS c (item, k)
                   LEFT JOIN status_page_component pc
                          ON pc.status_page_id = e.status_page_id
                         AND pc.name = c.item ->> 'name');
    IF e.payload ? 'incident' THEN
        title := coalesce(statusdb_translation_text(chain, 'incident',
                                                    e.payload #>> '{incident,id}', 'title'),
                          e.payload #>> '{incident,title}');
        -- The entry the event is about: the one of its timestamp (the first such, the
        -- timeline's order).
        SELECT u.k::integer INTO entries
        FROM status_incident i
        CROSS JOIN LATERAL jsonb_array_elements(i.updates) WITH ORDINALITY AS u (entry, k)
        WHERE i.id = e.payload #>> '{incident,id}'
          AND u.entry = e.payload -> 'update'
        ORDER BY u.k
        LIMIT 1;
        message := coalesce(CASE WHEN entries IS NOT NULL THEN
                                statusdb_translation_text(chain, 'incident_update',
                                                          e.payload #>> '{incident,id}',
                                                          'message', entries) END,
                            CASE WHEN entries IS NULL THEN
                                statusdb_translation_text(chain, 'incident',
                                                          e.payload #>> '{incident,id}',
                                                          'message') END,
                            e.payload #>> '{update,message}');
    ELSE
        title := coalesce(statusdb_translation_text(chain, 'maintenance',
                                                    e.payload #>> '{window,id}', 'title'),
                          e.payload #>> '{window,title}');
        description := coalesce(statusdb_translation_text(chain, 'maintenance',
                                                          e.payload #>> '{window,id}',
                                                          'description'),
                                e.payload #>> '{window,description}');
    END IF;
    RETURN NEXT;
END;
$$;
COMMENT ON FUNCTION statusdb_event_texts(text, text) IS
    'The texts of a notification event (0033) in a locale, by the page view''s chain: locale '
    'used, page name, title (incident or window), message (the incident timeline entry the '
    'event is about), description (window), components (the payload''s [{name, status}] '
    'with names translated). No row for an unknown event or another team''s.';
REVOKE EXECUTE ON FUNCTION statusdb_event_texts(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION statusdb_event_texts(text, text) TO statusdb_app;

-- Notifications in the subscriber's locale: statusdb_notification_recipients (0020) with each
-- subscriber's locale as a fourth column (the worker groups a fan-out's batch by it and
-- translates the event once per locale). The same body otherwise: one SQL statement the
-- planner inlines into the recipients queries, one row per subscriber.
CREATE FUNCTION statusdb_notification_recipients_v2(
    page_id text, event_component_ids text[], kinds text[], folded_kinds text[]
) RETURNS TABLE (subscriber_id text, channel text, destination text, locale text)
LANGUAGE sql
STABLE
AS $$
    SELECT s.id, s.channel, s.destination, s.locale
    FROM public.status_subscriber s
    WHERE s.status_page_id = page_id
      AND s.component_ids = '{}'
      AND s.group_ids = '{}'
      AND s.is_active
      AND s.is_verified
      AND s.notify_on && kinds
      AND NOT (s.notify_on && folded_kinds)
    UNION ALL
    SELECT s.id, s.channel, s.destination, s.locale
    -- Gated like the third branch: a page-wide event skips it whole (under row-level security
    -- the GIN index cannot serve && and the planner would read the page's followers for none).
    FROM (SELECT WHERE cardinality(event_component_ids) > 0) AS some_components
    CROSS JOIN public.status_subscriber s
    WHERE s.component_ids && event_component_ids
      AND s.component_ids <> '{}'
      AND s.is_active
      AND s.is_verified
      AND s.status_page_id = page_id
      AND s.notify_on && kinds
      AND NOT (s.notify_on && folded_kinds)
    UNION ALL
    SELECT s.id, s.channel, s.destination, s.locale
    -- The gate as a relation of its own: for an event with components the planner drops the
    -- branch whole (a constant-false qual beside row-level security's would not be).
    FROM (SELECT WHERE cardinality(event_component_ids) = 0) AS page_wide
    CROSS JOIN public.status_subscriber s
    WHERE s.status_page_id = page_id
      AND s.component_ids <> '{}'
      AND s.is_active
      AND s.is_verified
      AND s.notify_on && kinds
      AND NOT (s.notify_on && folded_kinds)
    UNION ALL
    -- A page-wide event also reaches those following groups only (few: no index of their own).
    SELECT s.id, s.channel, s.destination, s.locale
    FROM (SELECT WHERE cardinality(event_component_ids) = 0) AS page_wide
    CROSS JOIN public.status_subscriber s
    WHERE s.status_page_id = page_id
      AND s.component_ids = '{}'
      AND s.group_ids <> '{}'
      AND s.is_active
      AND s.is_verified
      AND s.notify_on && kinds
      AND NOT (s.notify_on && folded_kinds)
    UNION ALL
    -- Followers of a group containing an affected component, unless they follow one of the
    -- components directly (the second branch has them). The paths: at most 3 groups per
    -- component, through the GIN index status_subscriber_fan_out_group_idx.
    SELECT s.id, s.channel, s.destination, s.locale
    FROM (SELECT ARRAY(SELECT DISTINCT g.id
                       FROM unnest(event_component_ids) AS c (id)
                       CROSS JOIN LATERAL unnest(statusdb_component_group_path(c.id)) AS g (id))
                 AS ids
          WHERE cardinality(event_component_ids) > 0) AS paths
    CROSS JOIN public.status_subscriber s
    WHERE s.group_ids && paths.ids
      AND s.group_ids <> '{}'
      AND NOT (s.component_ids && event_component_ids)
      AND s.is_active
      AND s.is_verified
      AND s.status_page_id = page_id
      AND s.notify_on && kinds
      AND NOT (s.notify_on && folded_kinds)
$$;
COMMENT ON FUNCTION statusdb_notification_recipients_v2(text, text[], text[], text[]) IS
    'statusdb_notification_recipients (0020) with the subscriber''s locale (0033) as a last '
    'column: who is told, active and verified, wanting one of kinds and none of folded_kinds, '
    'following one of the components directly or through a group, or all. One row per '
    'subscriber.';
REVOKE EXECUTE ON FUNCTION statusdb_notification_recipients_v2(text, text[], text[], text[])
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION statusdb_notification_recipients_v2(text, text[], text[], text[])
    TO statusdb_app;
