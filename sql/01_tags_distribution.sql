-- Case 1 — tag distribution: every tag in use and how many stores use it.
--
-- Data: the `stores` table; each store's tags are the values of the slots tag1, tag2 and tag3 of
-- `data->'tags'` ({"tag1": "...", "tag2": "...", "tag3": "..."}). Works as-is whether `data` is
-- json (the original database) or jsonb (this project), in psql
-- (`psql -f sql/01_tags_distribution.sql`), DBeaver (paste, Ctrl+Enter) or `allies tags`.
--
-- Rules:
--   * a store carrying the same tag in two slots counts once for that tag;
--   * rows whose `tags` is missing, null or not an object, slot values that are not strings,
--     and keys other than tag1..tag3 are skipped — sql/01_tags_skipped_rows.sql lists them;
--   * ordered by store count, highest first, then by tag name.
--
-- How: jsonb_to_record reads the three slots of a row in one call (no set of rows per store to
-- sort), so PostgreSQL scans in parallel and aggregates in its workers: about 0.9 s for a
-- million stores here (docs/benchmarks.md).
--
-- Verify: the counts add up to the number of distinct (store, tag) pairs, e.g. 3 x 300 = 900 on
-- the generated data, where every store has three different tags.
SELECT slot.tag,
       count(*) AS stores
  FROM stores AS s
 CROSS JOIN LATERAL jsonb_to_record(
         CASE WHEN jsonb_typeof(s.data::jsonb -> 'tags') = 'object' THEN s.data::jsonb -> 'tags' ELSE '{}' END
       ) AS t(tag1 jsonb, tag2 jsonb, tag3 jsonb)
 CROSS JOIN LATERAL unnest(ARRAY[
         CASE WHEN jsonb_typeof(t.tag1) = 'string' THEN t.tag1 #>> '{}' END,
         CASE WHEN jsonb_typeof(t.tag2) = 'string' AND t.tag2 IS DISTINCT FROM t.tag1 THEN t.tag2 #>> '{}' END,
         CASE WHEN jsonb_typeof(t.tag3) = 'string' AND t.tag3 IS DISTINCT FROM t.tag1
               AND t.tag3 IS DISTINCT FROM t.tag2 THEN t.tag3 #>> '{}' END
       ]) AS slot(tag)
 WHERE slot.tag IS NOT NULL
 GROUP BY slot.tag
 ORDER BY stores DESC, slot.tag;
