-- The allies schema. Idempotent: run at every start.
-- `stores` is compatible with the original challenge (there `data` is JSON; here JSONB, which
-- every query of the project also accepts as JSON through explicit casts).
-- An id is what the API and the CLI accept (allies.validation.parse_ally_id): 1-128 characters, no
-- whitespace, control characters or '/', a UUID in lowercase. A table made elsewhere (the original's)
-- is not altered.
CREATE TABLE IF NOT EXISTS stores (
    id   VARCHAR PRIMARY KEY CONSTRAINT stores_id_is_an_ally_id CHECK (
        char_length(id) BETWEEN 1 AND 128
        AND id !~ '[[:space:][:cntrl:]/]'
        AND (id !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' OR id = lower(id))
    ),
    data JSONB
);

-- One row per credentials write attempt, successful or not. Never holds a secret.
CREATE TABLE IF NOT EXISTS credential_audit (
    id          BIGSERIAL PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor       TEXT NOT NULL,
    ally_id     TEXT NOT NULL,
    action      TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    http_status INTEGER,
    client_addr TEXT,
    request_id  TEXT,
    detail      TEXT
);
CREATE INDEX IF NOT EXISTS credential_audit_ally_at ON credential_audit (ally_id, at);

-- Journal of store updates (case 2 and `allies store update`): the touched fields before and
-- after, so a change can be rolled back exactly (sql/02_rollback_store_update.sql).
CREATE TABLE IF NOT EXISTS store_changes (
    id         BIGSERIAL PRIMARY KEY,
    store_id   TEXT NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor      TEXT NOT NULL DEFAULT current_user,
    reason     TEXT NOT NULL,
    before     JSONB NOT NULL,
    after      JSONB NOT NULL
);
CREATE INDEX IF NOT EXISTS store_changes_store_at ON store_changes (store_id, changed_at);

-- The key ring of this database: each key id with a check value (an HMAC made with the key, never
-- the key), so that every instance serving the database can tell whether it holds the same keys.
CREATE TABLE IF NOT EXISTS key_ring (
    kid         TEXT PRIMARY KEY,
    check_value TEXT NOT NULL,
    added_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The write rate limit of the whole service (allies.ratelimit): per client address, when its
-- bucket is full again. Unlogged: after a crash the counts start afresh, which only forgives.
CREATE UNLOGGED TABLE IF NOT EXISTS write_rate (
    client   TEXT PRIMARY KEY,
    tat      DOUBLE PRECISION NOT NULL,
    admitted BOOLEAN NOT NULL
);
