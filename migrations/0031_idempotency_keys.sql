-- statusdb 0031: idempotency keys (issue 22 item 2): a write retried after an outage (a lost
-- connection, CommitOutcomeUnknown) is applied once.
-- depends: 0030_page_feed
--
-- status_incidents.create / add_update, maintenance.create and subscribers.subscribe take an
-- optional idempotency_key. The first call claims (status_page_id, scope, key) in this table,
-- in the same transaction as its write, and records the id of what it wrote; a repeat with the
-- same key finds the claim and returns that row as it is now, writing nothing (so no second
-- notification event either). The primary key makes it hold for every client: two concurrent
-- calls with the same key meet on its unique index, the second waits for the first to commit
-- (then finds its claim) or roll back (then claims it itself). request_digest (SHA-256 of the
-- call's validated arguments) tells a repeat from a different request reusing a key, which is
-- refused. Keys are kept at least 24 hours: idempotency.purge deletes older ones, a bounded
-- batch per call, through idempotency_key_created_at_idx.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

CREATE TABLE idempotency_key (
    status_page_id text NOT NULL,
    scope text NOT NULL,
    key text NOT NULL,
    request_digest bytea NOT NULL,
    result_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT idempotency_key_pkey PRIMARY KEY (status_page_id, scope, key),
    CONSTRAINT idempotency_key_status_page_id_fkey FOREIGN KEY (status_page_id)
        REFERENCES status_page (id) ON DELETE CASCADE,
    CONSTRAINT idempotency_key_scope_check CHECK (scope IN (
        'status_incident.create', 'status_incident.add_update', 'maintenance.create',
        'subscriber.subscribe')),
    CONSTRAINT idempotency_key_key_length_check CHECK (char_length(key) BETWEEN 1 AND 200),
    CONSTRAINT idempotency_key_request_digest_check CHECK (octet_length(request_digest) = 32),
    CONSTRAINT idempotency_key_result_id_length_check CHECK (char_length(result_id) <= 200),
    CONSTRAINT idempotency_key_created_at_range_check CHECK (
        created_at >= '0001-01-02 00:00:00+00' AND created_at <= '9999-12-30 00:00:00+00')
);

-- The purge's order (oldest first); the table is new and empty, so no CONCURRENTLY needed.
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX idempotency_key_created_at_idx ON idempotency_key (created_at);

COMMENT ON TABLE idempotency_key IS
    'Idempotency keys of retried writes (0031): one row per (page, operation scope, key), '
    'claimed in the transaction of the write it guards; kept at least 24 hours '
    '(statusdb.idempotency.purge).';
COMMENT ON COLUMN idempotency_key.status_page_id IS
    'The page the key belongs to (a status incident''s page for add_update); deleted with it.';
COMMENT ON COLUMN idempotency_key.scope IS
    'The operation the key guards: status_incident.create, status_incident.add_update, '
    'maintenance.create or subscriber.subscribe.';
COMMENT ON COLUMN idempotency_key.key IS 'The caller''s key (1 to 200 characters).';
COMMENT ON COLUMN idempotency_key.request_digest IS
    'SHA-256 of the first call''s validated arguments: a different request reusing the key is '
    'refused.';
COMMENT ON COLUMN idempotency_key.result_id IS
    'The id of the row the first call wrote (a status incident, a maintenance window or a '
    'subscriber); NULL only inside the claiming transaction.';
COMMENT ON COLUMN idempotency_key.created_at IS 'When the key was claimed (the purge''s clock).';

GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE idempotency_key TO statusdb_app;

ALTER TABLE idempotency_key ENABLE ROW LEVEL SECURITY;
CREATE POLICY idempotency_key_team_isolation ON idempotency_key
    USING ((SELECT statusdb_current_team()) IS NULL
           OR status_page_id IN (SELECT p.id FROM status_page p
                                 WHERE p.team_id = (SELECT statusdb_current_team())));
