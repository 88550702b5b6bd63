-- Case 1, companion check: the stores whose tags sql/01_tags_distribution.sql skips, in part or
-- in whole.
--
-- A row is listed when its `tags` is missing, null or not an object, holds a value that is not a
-- string, or has a key other than tag1, tag2, tag3. Works whether `data` is json or jsonb. No
-- rows means the report counted every tag.
SELECT s.id,
       s.data -> 'tags' AS tags
  FROM stores AS s
 WHERE jsonb_typeof(s.data::jsonb -> 'tags') IS DISTINCT FROM 'object'
    OR jsonb_path_exists(s.data::jsonb, '$.tags.* ? (@.type() != "string")')
    OR (s.data::jsonb -> 'tags') - ARRAY['tag1', 'tag2', 'tag3'] <> '{}'::jsonb
 ORDER BY s.id;
