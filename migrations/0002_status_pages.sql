-- statusdb 0002: status pages, their components, subscribers, maintenance windows and
-- user-facing status incidents.
-- depends: 0001_platform_core

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

CREATE TABLE status_page (
    id text NOT NULL DEFAULT statusdb_new_id(),
    name text NOT NULL,
    description text,
    slug text NOT NULL,
    is_public boolean NOT NULL DEFAULT false,
    -- SHA-256 digest of the access token; the token itself is never stored, so a leaked dump
    -- opens no page.
    access_token_hash bytea,
    -- Deleting a team that still owns pages is refused: a public page must not vanish as a
    -- side effect. Delete (or move) the pages first.
    team_id text NOT NULL,
    created_by_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT status_page_pkey PRIMARY KEY (id),
    CONSTRAINT status_page_slug_key UNIQUE (slug),
    CONSTRAINT status_page_access_token_hash_key UNIQUE (access_token_hash),
    CONSTRAINT status_page_team_id_fkey FOREIGN KEY (team_id)
        REFERENCES team (id) ON DELETE RESTRICT,
    CONSTRAINT status_page_name_check CHECK (btrim(name) <> '' AND length(name) <= 200),
    CONSTRAINT status_page_slug_check
        CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND length(slug) <= 100),
    CONSTRAINT status_page_access_token_hash_check
        CHECK (access_token_hash IS NULL OR octet_length(access_token_hash) = 32),
    CONSTRAINT status_page_private_needs_token
        CHECK (is_public OR access_token_hash IS NOT NULL),
    CONSTRAINT status_page_created_by_id_check CHECK (btrim(created_by_id) <> '')
);
-- No separate index on slug: status_page_slug_key already is one.
CREATE INDEX status_page_team_id_idx ON status_page (team_id);

CREATE TRIGGER status_page_touch_updated_at
    BEFORE UPDATE ON status_page
    FOR EACH ROW EXECUTE FUNCTION statusdb_touch_updated_at();

CREATE TABLE status_page_component (
    id text NOT NULL DEFAULT statusdb_new_id(),
    status_page_id text NOT NULL,
    name text NOT NULL,
    description text,
    -- A sort key set by people, not a counter: 32 bits are plenty.
    -- squawk-ignore prefer-bigint-over-int
    display_order integer NOT NULL DEFAULT 0,
    -- Incidents of this team drive the component's status; null: set by hand. A deleted team
    -- leaves its components on their pages, set by hand from then on (ON DELETE SET NULL).
    team_id text,
    -- When set, only incidents of the team with this same service identifier count.
    service_identifier text,
    current_status text NOT NULL DEFAULT 'OPERATIONAL',
    status_updated_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT status_page_component_pkey PRIMARY KEY (id),
    CONSTRAINT status_page_component_status_page_id_name_key UNIQUE (status_page_id, name),
    CONSTRAINT status_page_component_status_page_id_fkey FOREIGN KEY (status_page_id)
        REFERENCES status_page (id) ON DELETE CASCADE,
    CONSTRAINT status_page_component_team_id_fkey FOREIGN KEY (team_id)
        REFERENCES team (id) ON DELETE SET NULL,
    CONSTRAINT status_page_component_name_check CHECK (btrim(name) <> '' AND length(name) <= 200),
    CONSTRAINT status_page_component_service_identifier_check
        CHECK (service_identifier IS NULL OR (btrim(service_identifier) <> '' AND length(service_identifier) <= 200)),
    CONSTRAINT status_page_component_current_status_check
        CHECK (current_status IN ('MAJOR_OUTAGE', 'PARTIAL_OUTAGE', 'DEGRADED_PERFORMANCE',
                                  'UNDER_MAINTENANCE', 'OPERATIONAL'))
);
-- The unique (status_page_id, name) index serves the foreign key; this one serves "components
-- of a page in display order" without a sort.
CREATE INDEX status_page_component_status_page_id_display_order_idx
    ON status_page_component (status_page_id, display_order);
-- Status derivation: "the components driven by team T" when T's incidents change. Partial:
-- components set by hand are never looked up this way. Also serves ON DELETE SET NULL.
CREATE INDEX status_page_component_team_id_idx
    ON status_page_component (team_id, service_identifier) WHERE team_id IS NOT NULL;

CREATE TRIGGER status_page_component_touch_updated_at
    BEFORE UPDATE ON status_page_component
    FOR EACH ROW EXECUTE FUNCTION statusdb_touch_updated_at();

CREATE TABLE status_subscriber (
    id text NOT NULL DEFAULT statusdb_new_id(),
    status_page_id text NOT NULL,
    channel text NOT NULL,
    -- An email address, a Slack webhook URL or channel, or a webhook URL.
    destination text NOT NULL,
    -- Components of the same page this subscriber follows; empty: all of them. Kept free of
    -- dangling ids by triggers (below).
    component_ids text[] NOT NULL DEFAULT '{}',
    notify_on text[] NOT NULL DEFAULT '{degraded,outage,maintenance,resolved}',
    is_verified boolean NOT NULL DEFAULT false,
    -- SHA-256 digest of the verification token (never the token).
    verify_token_hash bytea,
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT status_subscriber_pkey PRIMARY KEY (id),
    CONSTRAINT status_subscriber_status_page_id_channel_destination_key
        UNIQUE (status_page_id, channel, destination),
    CONSTRAINT status_subscriber_verify_token_hash_key UNIQUE (verify_token_hash),
    CONSTRAINT status_subscriber_status_page_id_fkey FOREIGN KEY (status_page_id)
        REFERENCES status_page (id) ON DELETE CASCADE,
    CONSTRAINT status_subscriber_channel_check CHECK (channel IN ('EMAIL', 'SLACK', 'WEBHOOK')),
    CONSTRAINT status_subscriber_destination_check
        CHECK (btrim(destination) <> '' AND length(destination) <= 2000),
    CONSTRAINT status_subscriber_component_ids_check
        CHECK (array_position(component_ids, NULL) IS NULL),
    CONSTRAINT status_subscriber_notify_on_check
        CHECK (cardinality(notify_on) > 0
               AND array_position(notify_on, NULL) IS NULL
               AND notify_on <@ ARRAY['degraded', 'outage', 'maintenance', 'resolved']::text[]),
    CONSTRAINT status_subscriber_verify_token_hash_check
        CHECK (verify_token_hash IS NULL OR octet_length(verify_token_hash) = 32)
);
CREATE INDEX status_subscriber_status_page_id_is_active_idx
    ON status_subscriber (status_page_id, is_active);

CREATE TABLE maintenance_window (
    id text NOT NULL DEFAULT statusdb_new_id(),
    status_page_id text NOT NULL,
    title text NOT NULL,
    description text,
    start_time timestamptz NOT NULL,
    end_time timestamptz NOT NULL,
    -- An RFC 5545 RRULE (validated by the repository with python-dateutil); null: one-off.
    recurrence_rule text,
    auto_update_status boolean NOT NULL DEFAULT true,
    notify_subscribers boolean NOT NULL DEFAULT true,
    status text NOT NULL DEFAULT 'SCHEDULED',
    created_by_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT maintenance_window_pkey PRIMARY KEY (id),
    CONSTRAINT maintenance_window_status_page_id_fkey FOREIGN KEY (status_page_id)
        REFERENCES status_page (id) ON DELETE CASCADE,
    CONSTRAINT maintenance_window_title_check CHECK (btrim(title) <> '' AND length(title) <= 500),
    CONSTRAINT maintenance_window_time_range_check CHECK (end_time > start_time),
    CONSTRAINT maintenance_window_recurrence_rule_check
        CHECK (recurrence_rule IS NULL
               OR (recurrence_rule ~ 'FREQ=' AND length(recurrence_rule) <= 1000)),
    CONSTRAINT maintenance_window_status_check
        CHECK (status IN ('SCHEDULED', 'IN_PROGRESS', 'COMPLETED', 'CANCELLED')),
    CONSTRAINT maintenance_window_created_by_id_check CHECK (btrim(created_by_id) <> '')
);
-- (status_page_id, start_time) serves the foreign key and "upcoming maintenance of a page";
-- (status, start_time) serves the scheduler's "what is due" scan.
CREATE INDEX maintenance_window_status_page_id_start_time_idx
    ON maintenance_window (status_page_id, start_time);
CREATE INDEX maintenance_window_status_start_time_idx
    ON maintenance_window (status, start_time);

CREATE TRIGGER maintenance_window_touch_updated_at
    BEFORE UPDATE ON maintenance_window
    FOR EACH ROW EXECUTE FUNCTION statusdb_touch_updated_at();

CREATE TABLE maintenance_window_component (
    maintenance_window_id text NOT NULL,
    component_id text NOT NULL,
    CONSTRAINT maintenance_window_component_pkey PRIMARY KEY (maintenance_window_id, component_id),
    CONSTRAINT maintenance_window_component_maintenance_window_id_fkey
        FOREIGN KEY (maintenance_window_id) REFERENCES maintenance_window (id) ON DELETE CASCADE,
    CONSTRAINT maintenance_window_component_component_id_fkey
        FOREIGN KEY (component_id) REFERENCES status_page_component (id) ON DELETE CASCADE
);
-- The primary key serves lookups by window; this serves the cascade from a deleted component
-- and "which windows cover this component" in the status derivation.
CREATE INDEX maintenance_window_component_component_id_idx
    ON maintenance_window_component (component_id);

-- A window may only cover components of its own page.
CREATE FUNCTION statusdb_maintenance_window_component_same_page() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1
        FROM maintenance_window w
        JOIN status_page_component c ON c.status_page_id = w.status_page_id
        WHERE w.id = NEW.maintenance_window_id AND c.id = NEW.component_id
    ) THEN
        RAISE EXCEPTION 'component % is not on the page of maintenance window %',
                NEW.component_id, NEW.maintenance_window_id
            USING ERRCODE = 'foreign_key_violation',
                  CONSTRAINT = 'maintenance_window_component_same_page';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER maintenance_window_component_same_page
    BEFORE INSERT OR UPDATE ON maintenance_window_component
    FOR EACH ROW EXECUTE FUNCTION statusdb_maintenance_window_component_same_page();

-- Each element of status_incident.updates is {timestamp, status, message}: a JSON object with
-- exactly those keys, timestamp an ISO 8601 string, status a status incident status, message
-- a string.
CREATE FUNCTION statusdb_is_status_update_list(updates jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT jsonb_typeof(updates) = 'array'
       AND NOT EXISTS (
           SELECT 1
           FROM jsonb_array_elements(updates) AS u (item)
           WHERE jsonb_typeof(u.item) IS DISTINCT FROM 'object'
              OR (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(u.item) AS k)
                 IS DISTINCT FROM ARRAY['message', 'status', 'timestamp']
              OR jsonb_typeof(u.item -> 'timestamp') IS DISTINCT FROM 'string'
              OR jsonb_typeof(u.item -> 'message') IS DISTINCT FROM 'string'
              OR (u.item ->> 'status') NOT IN ('INVESTIGATING', 'IDENTIFIED', 'MONITORING', 'RESOLVED')
              OR (u.item ->> 'status') IS NULL
       )
$$;

CREATE TABLE status_incident (
    id text NOT NULL DEFAULT statusdb_new_id(),
    status_page_id text NOT NULL,
    -- The platform incident this was published for, if any. Deleting the platform incident
    -- keeps the published history and only forgets the link (ON DELETE SET NULL).
    incident_id text,
    title text NOT NULL,
    message text,
    severity text NOT NULL,
    status text NOT NULL DEFAULT 'INVESTIGATING',
    -- Components of the same page; kept free of dangling ids by triggers (below).
    affected_component_ids text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    updates jsonb NOT NULL DEFAULT '[]',
    CONSTRAINT status_incident_pkey PRIMARY KEY (id),
    CONSTRAINT status_incident_status_page_id_fkey FOREIGN KEY (status_page_id)
        REFERENCES status_page (id) ON DELETE CASCADE,
    CONSTRAINT status_incident_incident_id_fkey FOREIGN KEY (incident_id)
        REFERENCES incident (id) ON DELETE SET NULL,
    CONSTRAINT status_incident_title_check CHECK (btrim(title) <> '' AND length(title) <= 500),
    CONSTRAINT status_incident_severity_check CHECK (severity IN ('MINOR', 'MAJOR', 'CRITICAL')),
    CONSTRAINT status_incident_status_check
        CHECK (status IN ('INVESTIGATING', 'IDENTIFIED', 'MONITORING', 'RESOLVED')),
    CONSTRAINT status_incident_affected_component_ids_check
        CHECK (array_position(affected_component_ids, NULL) IS NULL),
    CONSTRAINT status_incident_updates_check CHECK (statusdb_is_status_update_list(updates)),
    CONSTRAINT status_incident_resolved_at_check
        CHECK ((status = 'RESOLVED') = (resolved_at IS NOT NULL))
);
-- (status_page_id, status) serves the foreign key and "active incidents of a page";
-- the partial index serves "resolved history of a page, newest first" with keyset pagination.
CREATE INDEX status_incident_status_page_id_status_idx ON status_incident (status_page_id, status);
CREATE INDEX status_incident_incident_id_idx ON status_incident (incident_id);
CREATE INDEX status_incident_resolved_history_idx
    ON status_incident (status_page_id, resolved_at DESC, id DESC) WHERE status = 'RESOLVED';

CREATE FUNCTION statusdb_status_incident_set_resolved_at() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF NEW.status = 'RESOLVED' THEN
        IF NEW.resolved_at IS NULL THEN
            NEW.resolved_at := now();
        END IF;
    ELSE
        NEW.resolved_at := NULL;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER status_incident_set_resolved_at
    BEFORE INSERT OR UPDATE OF status, resolved_at ON status_incident
    FOR EACH ROW EXECUTE FUNCTION statusdb_status_incident_set_resolved_at();

CREATE TRIGGER status_incident_touch_updated_at
    BEFORE UPDATE ON status_incident
    FOR EACH ROW EXECUTE FUNCTION statusdb_touch_updated_at();

-- Component id arrays (status_subscriber.component_ids, status_incident.affected_component_ids)
-- cannot carry a foreign key, so triggers give them the same guarantees:
-- 1. On write, every id must name a component of the row's own page. The referenced components
--    are locked FOR KEY SHARE, exactly as a foreign key check does, so a concurrent delete of
--    one of them waits for this transaction and then sees (and cleans) the new row.
-- 2. On component delete, the id is removed from the arrays of its page. A subscriber that
--    followed only deleted components is deactivated rather than left with an empty list, which
--    would silently mean "all components".
CREATE FUNCTION statusdb_check_component_ids(page_id text, ids text[], constraint_name text)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    missing text;
BEGIN
    IF cardinality(ids) = 0 THEN
        RETURN;
    END IF;
    PERFORM 1
    FROM status_page_component c
    WHERE c.id = ANY (ids)
    ORDER BY c.id
    FOR KEY SHARE;
    SELECT i INTO missing
    FROM unnest(ids) AS i
    WHERE NOT EXISTS (
        SELECT 1 FROM status_page_component c WHERE c.id = i AND c.status_page_id = page_id
    )
    LIMIT 1;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'component % is not a component of status page %', missing, page_id
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = constraint_name;
    END IF;
END;
$$;

CREATE FUNCTION statusdb_status_subscriber_check_component_ids() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM statusdb_check_component_ids(NEW.status_page_id, NEW.component_ids,
                                         'status_subscriber_component_ids_fkey');
    RETURN NEW;
END;
$$;

CREATE TRIGGER status_subscriber_check_component_ids
    BEFORE INSERT OR UPDATE OF status_page_id, component_ids ON status_subscriber
    FOR EACH ROW EXECUTE FUNCTION statusdb_status_subscriber_check_component_ids();

CREATE FUNCTION statusdb_status_incident_check_component_ids() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM statusdb_check_component_ids(NEW.status_page_id, NEW.affected_component_ids,
                                         'status_incident_affected_component_ids_fkey');
    RETURN NEW;
END;
$$;

CREATE TRIGGER status_incident_check_component_ids
    BEFORE INSERT OR UPDATE OF status_page_id, affected_component_ids ON status_incident
    FOR EACH ROW EXECUTE FUNCTION statusdb_status_incident_check_component_ids();

CREATE FUNCTION statusdb_status_page_component_forget_ids() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE status_subscriber s
    SET component_ids = array_remove(s.component_ids, OLD.id),
        is_active = s.is_active AND cardinality(array_remove(s.component_ids, OLD.id)) > 0
    WHERE s.status_page_id = OLD.status_page_id AND s.component_ids @> ARRAY[OLD.id];

    UPDATE status_incident i
    SET affected_component_ids = array_remove(i.affected_component_ids, OLD.id)
    WHERE i.status_page_id = OLD.status_page_id AND i.affected_component_ids @> ARRAY[OLD.id];
    RETURN OLD;
END;
$$;

CREATE TRIGGER status_page_component_forget_ids
    AFTER DELETE ON status_page_component
    FOR EACH ROW EXECUTE FUNCTION statusdb_status_page_component_forget_ids();
