-- Case 2 rollback — put back the fields of the latest journaled change of store
-- 0d4f7a40-651d-44fb-8744-04d9b31ef844 (made by sql/02_update_store_owner_and_tags.sql or
-- `allies store update`), exactly as they were before it. Other keys (credentials set since,
-- for instance) are kept. The rollback is journaled too.
--
-- Run: psql -q -v ON_ERROR_STOP=1 -f sql/02_rollback_store_update.sql   (or DBeaver, Alt+X).
-- Verify: the "after" row shows the brand_owner and tags of the "before" row of the change.

BEGIN;

DO $$
DECLARE
    store    CONSTANT text := '0d4f7a40-651d-44fb-8744-04d9b31ef844';
    old_data jsonb;
    new_data jsonb;
    last     record;
BEGIN
    SELECT data::jsonb INTO old_data FROM stores WHERE id = store FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'store % not found: nothing was changed', store;
    END IF;
    SELECT id, before INTO last FROM store_changes WHERE store_id = store ORDER BY id DESC LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'store % has no journaled change to roll back: nothing was changed', store;
    END IF;

    UPDATE stores SET data = data::jsonb || last.before WHERE id = store;
    SELECT data::jsonb INTO new_data FROM stores WHERE id = store;
    INSERT INTO store_changes (store_id, reason, before, after)
    SELECT store, 'undo of change ' || last.id,
           jsonb_object_agg(key, old_data -> key), jsonb_object_agg(key, new_data -> key)
      FROM jsonb_object_keys(last.before) AS key;
    RAISE NOTICE 'store %: change % rolled back', store, last.id;
END $$;

SELECT 'after' AS state, id, data ->> 'name' AS name, data ->> 'brand_owner' AS brand_owner,
       (data::jsonb -> 'tags')::text AS tags,
       COALESCE(jsonb_typeof(data::jsonb -> 'credentials') <> 'null', false) AS credentials_set
  FROM stores
 WHERE id = '0d4f7a40-651d-44fb-8744-04d9b31ef844';

COMMIT;
