-- Case 2 — urgent fix for store 0d4f7a40-651d-44fb-8744-04d9b31ef844 (Young-Wolf):
--   * its owner (`brand_owner`) becomes "Old-Wolf";
--   * its tag "finanzas" becomes "educacion", in whichever slot (tag1/tag2/tag3) holds it.
-- The store's name (Young-Wolf) stays; every other key, credentials included, is kept.
--
-- Run: psql -q -v ON_ERROR_STOP=1 -f sql/02_update_store_owner_and_tags.sql   (or paste the whole
-- file in DBeaver and run it as a script, Alt+X). Works whether `data` is json or jsonb.
--
-- Safety:
--   * one transaction: the store is locked first, so a credentials write arriving at the same
--     moment waits and then applies on top of this change (nothing is lost); every change is
--     made inside the database with jsonb_set on the row's current value;
--   * aborts with "store ... not found: nothing was changed" if the store does not exist, and
--     if more than one row were ever to match;
--   * idempotent: a second run changes nothing and says so ("already up to date");
--   * never duplicates a tag: if "educacion" is already there, "finanzas" is removed instead;
--   * journals the touched fields before and after in `store_changes`, which
--     sql/02_rollback_store_update.sql uses to put them back.
-- The same statements back `allies store update ID --owner ... --replace-tag OLD=NEW`.
--
-- Verify: the "after" row shows brand_owner Old-Wolf and no "finanzas" among its tags.

BEGIN;

-- The journal table (already there in an allies database; created in the original one).
SET LOCAL client_min_messages = warning;  -- no "already exists" notice
CREATE TABLE IF NOT EXISTS store_changes (
    id         BIGSERIAL PRIMARY KEY,
    store_id   TEXT NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor      TEXT NOT NULL DEFAULT current_user,
    reason     TEXT NOT NULL,
    before     JSONB NOT NULL,
    after      JSONB NOT NULL
);
SET LOCAL client_min_messages = notice;

-- Before (and lock the row until COMMIT).
SELECT 'before' AS state, id, data ->> 'name' AS name, data ->> 'brand_owner' AS brand_owner,
       (data::jsonb -> 'tags')::text AS tags,
       COALESCE(jsonb_typeof(data::jsonb -> 'credentials') <> 'null', false) AS credentials_set
  FROM stores
 WHERE id = '0d4f7a40-651d-44fb-8744-04d9b31ef844'
   FOR UPDATE;

DO $$
DECLARE
    store    CONSTANT text := '0d4f7a40-651d-44fb-8744-04d9b31ef844';
    old_data jsonb;
    new_data jsonb;
    rows     integer;
    changes  integer := 0;
BEGIN
    SELECT data::jsonb INTO old_data FROM stores WHERE id = store FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'store % not found: nothing was changed', store;
    END IF;

    -- Owner.
    UPDATE stores
       SET data = jsonb_set(data::jsonb, ARRAY['brand_owner'], to_jsonb('Old-Wolf'::text))
     WHERE id = store
       AND data::jsonb ->> 'brand_owner' IS DISTINCT FROM 'Old-Wolf';
    GET DIAGNOSTICS rows = ROW_COUNT;
    IF rows > 1 THEN  -- only possible on a copy of the table without its primary key
        RAISE EXCEPTION '% rows matched %: nothing was changed', rows, store;
    END IF;
    changes := changes + rows;

    -- Tag finanzas -> educacion (extra finanzas slots are removed rather than duplicated).
    UPDATE stores
       SET data = jsonb_set(data::jsonb, '{tags}', (
           SELECT COALESCE(jsonb_object_agg(
                      slot.key,
                      CASE WHEN slot.value = to_jsonb('finanzas'::text) THEN to_jsonb('educacion'::text)
                           ELSE slot.value END), '{}'::jsonb)
             FROM (SELECT key, value, row_number() OVER (PARTITION BY value ORDER BY key) AS nth
                     FROM jsonb_each(data::jsonb -> 'tags')) AS slot
            WHERE NOT (slot.value = to_jsonb('finanzas'::text)
                       AND (slot.nth > 1
                            OR jsonb_path_exists(data::jsonb, '$.tags.* ? (@ == $tag)',
                                                 jsonb_build_object('tag', 'educacion'::text))))))
     WHERE id = store
       AND jsonb_typeof(data::jsonb -> 'tags') = 'object'
       AND jsonb_path_exists(data::jsonb, '$.tags.* ? (@ == $tag)', jsonb_build_object('tag', 'finanzas'::text));
    GET DIAGNOSTICS rows = ROW_COUNT;
    IF rows > 1 THEN  -- only possible on a copy of the table without its primary key
        RAISE EXCEPTION '% rows matched %: nothing was changed', rows, store;
    END IF;
    changes := changes + rows;

    IF changes = 0 THEN
        RAISE NOTICE 'store %: already up to date, nothing changed', store;
        RETURN;
    END IF;

    SELECT data::jsonb INTO new_data FROM stores WHERE id = store;
    INSERT INTO store_changes (store_id, reason, before, after)
    VALUES (store, 'case 2: owner Old-Wolf, tag finanzas -> educacion',
            jsonb_build_object('brand_owner', old_data -> 'brand_owner', 'tags', old_data -> 'tags'),
            jsonb_build_object('brand_owner', new_data -> 'brand_owner', 'tags', new_data -> 'tags'));
    RAISE NOTICE 'store %: % change(s) applied and journaled in store_changes', store, changes;
END $$;

-- After.
SELECT 'after' AS state, id, data ->> 'name' AS name, data ->> 'brand_owner' AS brand_owner,
       (data::jsonb -> 'tags')::text AS tags,
       COALESCE(jsonb_typeof(data::jsonb -> 'credentials') <> 'null', false) AS credentials_set
  FROM stores
 WHERE id = '0d4f7a40-651d-44fb-8744-04d9b31ef844';

COMMIT;
