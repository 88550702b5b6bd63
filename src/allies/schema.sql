-- The allies schema. Idempotent: run at every start.
-- `stores` is compatible with the original challenge (there `data` is JSON; here JSONB, which
-- every query of the project also accepts as JSON through explicit casts).
-- An id is what the API and the CLI accept (allies.validation.parse_ally_id): 1-128 characters, no
-- whitespace, control or format characters or '/', a UUID in lowercase. A table made elsewhere (the original's)
-- is not altered.
CREATE TABLE IF NOT EXISTS stores (
    id   VARCHAR PRIMARY KEY CONSTRAINT stores_id_is_an_ally_id CHECK (
        char_length(id) BETWEEN 1 AND 128
        AND id !~ '[[:space:][:cntrl:]/]'
        AND id !~ '[\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]'  -- format characters (allies.text.FORMAT_CHARACTERS)
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

-- Every successful write of an ally's credentials is a version: 1, 2, 3... per ally, numbered
-- where the write locks the store's row (the count is kept in the current envelope,
-- `stores.data->'credentials'->'credentials_version'`), so no two writes share a number and none
-- is skipped, whatever the replicas. The last ALLIES_CREDENTIAL_VERSIONS envelopes are kept; past
-- that an envelope is destroyed (set to NULL) and its metadata stays. Never holds a secret in clear.
CREATE TABLE IF NOT EXISTS credential_versions (
    ally_id       TEXT NOT NULL,
    version       INTEGER NOT NULL CHECK (version > 0),
    envelope      JSONB,
    kid           TEXT,
    set_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor         TEXT NOT NULL,
    request_id    TEXT,
    restored_from INTEGER,
    destroyed_at  TIMESTAMPTZ,
    PRIMARY KEY (ally_id, version)
);
-- No index beside the primary key: a write adds one row here and (past the retention) empties
-- one envelope, and an index on the envelope or its key would cost every write (measured, see
-- docs/performance.md); `allies keys status` reads the whole table instead.

-- Credentials written before versions existed become version 1, dated when this ran (once:
-- idempotent; their own `set_at` stays in the envelope).
WITH unversioned AS (
    SELECT id, data::jsonb -> 'credentials' AS envelope FROM stores
     WHERE jsonb_typeof(data::jsonb -> 'credentials') = 'object'
       AND data::jsonb -> 'credentials' ? 'kid'
       AND NOT data::jsonb -> 'credentials' ? 'credentials_version'
       FOR UPDATE
), recorded AS (
    INSERT INTO credential_versions (ally_id, version, envelope, kid, set_at, actor, request_id)
    SELECT id, 1, envelope, envelope ->> 'kid', now(), 'migration', 'migration-to-versions'
      FROM unversioned
    ON CONFLICT DO NOTHING
)
UPDATE stores SET data = jsonb_set(data::jsonb, '{credentials,credentials_version}', '1')
  FROM unversioned WHERE stores.id = unversioned.id;

-- Idempotent retries (Idempotency-Key): a successful write's answer, per actor and key, for 24 hours.
-- `fingerprint` is a keyed hash (HMAC from the key ring) of what was asked, never the secret.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    actor       TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    ally_id     TEXT NOT NULL,
    version     INTEGER NOT NULL,
    response    JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (actor, key)
);
CREATE INDEX IF NOT EXISTS idempotency_keys_created_at ON idempotency_keys (created_at);

-- Console sign-ins (allies.sessions): a session is valid while it names its person's generation;
-- signing out moves the generation on, ending every session of that person.
CREATE TABLE IF NOT EXISTS console_sessions (
    actor      TEXT PRIMARY KEY,
    generation BIGINT NOT NULL DEFAULT 0
);
