-- Case 1 — tag distribution: every tag in use and how many stores use it.
--
-- Data: the `stores` table, `data->'tags'` = {"tag1": "...", "tag2": "...", "tag3": "..."}.
-- Works as-is whether `data` is json (the original database) or jsonb (this project), in psql
-- (`psql -f sql/01_tags_distribution.sql`), DBeaver (paste, Ctrl+Enter) or `allies tags`.
--
-- Rules:
--   * a store carrying the same tag in two slots counts once for that tag;
--   * rows whose `tags` is missing, null or not an object, and tag values that are not strings,
--     are skipped (list them with sql/01_tags_skipped_rows.sql);
--   * ordered by store count, highest first, then by tag name.
--
-- Verify: the counts add up to the number of distinct (store, tag) pairs, e.g. 3 x 300 = 900 on
-- the generated data, where every store has three different tags.
SELECT slot.tag,
       count(*) AS stores
  FROM stores AS s
 CROSS JOIN LATERAL (
       SELECT DISTINCT t.value #>> '{}' AS tag
         FROM jsonb_each(
                CASE WHEN jsonb_typeof(s.data::jsonb -> 'tags') = 'object'
                     THEN s.data::jsonb -> 'tags'
                     ELSE '{}'::jsonb
                END) AS t
        WHERE jsonb_typeof(t.value) = 'string'
       ) AS slot
 GROUP BY slot.tag
 ORDER BY stores DESC, slot.tag;

