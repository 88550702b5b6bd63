"""Stores: read one without its secrets, and change its owner, name or tags safely.

Every change is made inside the database with `jsonb_set` on the row's current value (never a
client-side rewrite of the whole document), in one transaction that first locks the row, so a
concurrent credentials write is never lost. Each applied change is journaled in `store_changes`
with the touched fields before and after, which makes an exact rollback possible.
sql/02_update_store_owner_and_tags.sql runs the very same statements for case 2, with the values
of the case written in (tests/test_sql_cases.py checks that they stay the same text).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from .failures import AlliesError
from .text import printable
from .validation import AllyNotFound, Rejected, canonical_ally_id, code_point, parse_store_text

# The tags stores are drawn from (the original challenge's list, its spelling kept: "desportes").
TAG_NAMES = (
    "finanzas",
    "tecnologia",
    "ropa",
    "apparel",
    "movilidad",
    "belleza",
    "hogar",
    "desportes",
    "educacion",
)

SELECT = "SELECT data::jsonb FROM stores WHERE id = %s"
# Locks the row first: a concurrent credentials write waits, then applies on top of this change.
SELECT_FOR_UPDATE = SELECT + " FOR UPDATE"

SET_TEXT_FIELD = """
UPDATE stores
   SET data = jsonb_set(data::jsonb, ARRAY[%(field)s], to_jsonb(%(value)s::text))
 WHERE id = %(id)s
   AND data::jsonb ->> %(field)s IS DISTINCT FROM %(value)s
"""

# Replace tag OLD by NEW in whichever slot holds it. When NEW is already there (or OLD sits in two
# slots), the extra OLD slots are removed instead, so no tag is ever duplicated.
REPLACE_TAG = """
UPDATE stores
   SET data = jsonb_set(data::jsonb, '{tags}', (
       SELECT COALESCE(jsonb_object_agg(
                  slot.key,
                  CASE WHEN slot.value = to_jsonb(%(old)s::text) THEN to_jsonb(%(new)s::text)
                       ELSE slot.value END), '{}'::jsonb)
         FROM (SELECT key, value, row_number() OVER (PARTITION BY value ORDER BY key) AS nth
                 FROM jsonb_each(data::jsonb -> 'tags')) AS slot
        WHERE NOT (slot.value = to_jsonb(%(old)s::text)
                   AND (slot.nth > 1
                        OR jsonb_path_exists(data::jsonb, '$.tags.* ? (@ == $tag)',
                                             jsonb_build_object('tag', %(new)s::text))))))
 WHERE id = %(id)s
   AND jsonb_typeof(data::jsonb -> 'tags') = 'object'
   AND jsonb_path_exists(data::jsonb, '$.tags.* ? (@ == $tag)', jsonb_build_object('tag', %(old)s::text))
"""

MAX_REASON_CHARS = 200
# The actor: who made the change through the console (a token's name), else the database role.
JOURNAL = """
INSERT INTO store_changes (store_id, actor, reason, before, after)
VALUES (%(id)s, COALESCE(%(actor)s, current_user), %(reason)s, %(before)s, %(after)s)
RETURNING id
"""
MAX_FOUND = 20
MAX_TAG_CHARS = 64
# Names matched by prefix, case-insensitive; LIKE's wildcards in the text are taken literally.
SEARCH = """
SELECT id, data::jsonb ->> 'name' AS name, data::jsonb ->> 'brand_owner' AS owner
  FROM stores
 WHERE id = %(id)s
    OR lower(data::jsonb ->> 'name') LIKE lower(%(prefix)s) || '%%' ESCAPE '\\'
 ORDER BY id <> %(id)s, lower(data::jsonb ->> 'name'), id
 LIMIT %(limit)s
"""


class StoreChanged(AlliesError):
    """The store is not as the caller saw it (a preview, a result page): nothing was written."""


@dataclass(frozen=True)
class Change:
    """What to change in a store; fields left None are kept."""

    owner: str | None = None
    name: str | None = None
    replace_tags: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        """The same rules whichever face asks (the CLI, the console): Rejected otherwise."""
        for value, label in ((self.owner, "owner"), (self.name, "name")):
            if value is not None:
                parse_store_text(value, label)
        for old, new in self.replace_tags:
            parse_store_text(old, "tag to replace", MAX_TAG_CHARS)
            parse_store_text(new, "new tag", MAX_TAG_CHARS)

    def fields(self) -> dict[str, str]:
        wanted = {"brand_owner": self.owner, "name": self.name}
        return {key: value for key, value in wanted.items() if value is not None}

    def touched_keys(self) -> list[str]:
        return [*self.fields(), *(["tags"] if self.replace_tags else [])]

    def describe(self) -> str:
        """The change in words, as the journal records it: owner Old-Wolf, tag finanzas -> educacion."""
        words = {"brand_owner": "owner", "name": "name"}
        parts = [f"{words[key]} {value}" for key, value in self.fields().items()]
        parts += [f"tag {old} -> {new}" for old, new in self.replace_tags]
        return ", ".join(parts)


@dataclass(frozen=True)
class Outcome:
    """A store before and after a change (without secrets), and how many statements changed it."""

    before: dict
    after: dict
    changes: int
    journal_id: int | None = None
    applied: bool = True

    def changed_fields(self) -> list[tuple[str, object, object]]:
        """(field, before, after) of each field the change made different."""
        return [
            (key, self.before.get(key), value)
            for key, value in self.after.items()
            if self.before.get(key) != value
        ]


def public_view(data: dict) -> dict:
    """The store's data with credentials reduced to non-secret metadata."""
    view = dict(data)
    envelope = view.get("credentials")
    metadata = envelope if isinstance(envelope, dict) else {}
    view["credentials"] = {
        "set": envelope is not None,
        "set_at": metadata.get("set_at"),
        "key_id": metadata.get("kid"),
        "version": metadata.get("credentials_version"),
    }
    return view


def search(conn: psycopg.Connection, text: str, limit: int = MAX_FOUND) -> list[dict]:
    """Stores whose id is `text` (first) or whose name starts with it: [{id, name, owner}]."""
    text = text.strip()
    if not text:
        return []
    if "\x00" in text:  # PostgreSQL's text cannot hold it: no store's id or name has one
        raise Rejected(f"the search text contains {code_point(chr(0))}")
    prefix = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    params = {"id": canonical_ally_id(text), "prefix": prefix, "limit": limit}
    return conn.cursor(row_factory=dict_row).execute(SEARCH, params).fetchall()


def changes(conn: psycopg.Connection, store_id: str | None = None, limit: int = 20) -> list[dict]:
    """The latest journaled changes (newest first), of one store or of all."""
    rows = conn.cursor(row_factory=dict_row).execute(
        """
        SELECT id, store_id, changed_at, actor, reason, before, after FROM store_changes
         WHERE %(id)s::text IS NULL OR store_id = %(id)s
         ORDER BY id DESC LIMIT %(limit)s
        """,
        {"id": store_id, "limit": limit},
    )
    return rows.fetchall()


def get_store(conn: psycopg.Connection, store_id: str, *, lock: bool = False) -> dict | None:
    """The store's data (jsonb, whatever the column type), or None."""
    query = SELECT_FOR_UPDATE if lock else SELECT
    row = conn.execute(query, (store_id,)).fetchone()
    return None if row is None else row[0]


def apply_change(
    conn: psycopg.Connection,
    store_id: str,
    change: Change,
    *,
    reason: str,
    dry_run: bool = False,
    actor: str | None = None,
    expect: dict | None = None,
) -> Outcome:
    """Apply `change` atomically; with `dry_run` the same statements run and are rolled back.
    `actor` is journaled as who made it (default: the database role). `expect`: the touched fields
    as a preview saw them; when the store no longer holds them, StoreChanged and nothing is written."""
    with conn.transaction() as tx:
        before = get_store(conn, store_id, lock=True)
        if before is None:
            raise AllyNotFound.of(store_id, then="; nothing was changed")
        changed = [key for key, value in (expect or {}).items() if before.get(key) != value]
        if changed:
            raise StoreChanged(
                f"the store changed since the preview ({', '.join(sorted(changed))}): nothing was written; "
                "preview the change again"
            )
        _check_replaced_tags_exist(store_id, before, change.replace_tags)
        changes = 0
        for key, value in change.fields().items():
            changes += _one_row(conn, SET_TEXT_FIELD, {"id": store_id, "field": key, "value": value})
        for old, new in change.replace_tags:
            changes += _one_row(conn, REPLACE_TAG, {"id": store_id, "old": old, "new": new})
        after = get_store(conn, store_id)
        outcome = Outcome(public_view(before), public_view(after), changes, applied=not dry_run)
        if dry_run:
            raise psycopg.Rollback(tx)
        if changes:
            journal_id = _journal(conn, store_id, reason, change.touched_keys(), before, after, actor)
            outcome = replace(outcome, journal_id=journal_id)
    return outcome


def _check_replaced_tags_exist(store_id: str, data: dict, replacements) -> None:
    """A replacement of a tag the store lacks is a mistake (a typo: "finanza"), not "already up to
    date"; unless the store already has the new tag: the same change applied before."""
    tags = data.get("tags")
    held = {value for value in tags.values() if isinstance(value, str)} if isinstance(tags, dict) else set()
    for old, new in replacements:
        if old not in held and new not in held:
            listed = ", ".join(sorted(held)) or "none"
            raise Rejected(f"store {store_id} has no tag {old!r} (its tags: {listed}); nothing was changed")
        held = (held - {old}) | {new}


def undo_last_change(
    conn: psycopg.Connection, store_id: str, *, actor: str | None = None, change_id: int | None = None
) -> Outcome:
    """Put back the fields of the store's latest journaled change (journaled as a change too).
    `change_id`: the change the caller means to undo; when a later change came since, StoreChanged
    and nothing is written (an undo never takes back someone else's change unseen)."""
    with conn.transaction():
        before = get_store(conn, store_id, lock=True)
        if before is None:
            raise AllyNotFound.of(store_id, then="; nothing was changed")
        last = conn.execute(
            "SELECT id, before FROM store_changes WHERE store_id = %s ORDER BY id DESC LIMIT 1",
            (store_id,),
        ).fetchone()
        if change_id is not None and (last is None or last[0] != change_id):
            latest = f"change {last[0]} came after it" if last else "the journal has no change"
            raise StoreChanged(
                f"change {change_id} is not the store's latest change ({latest}): nothing was undone; "
                "see the store's journal"
            )
        if last is None:
            return Outcome(public_view(before), public_view(before), 0)
        journal_id, restored = last
        conn.execute("UPDATE stores SET data = data::jsonb || %s WHERE id = %s", (Jsonb(restored), store_id))
        after = get_store(conn, store_id)
        reason = f"undo of change {journal_id}"
        new_id = _journal(conn, store_id, reason, list(restored), before, after, actor)
    return Outcome(public_view(before), public_view(after), 1, new_id)


def _one_row(conn: psycopg.Connection, statement: str, params: dict) -> int:
    count = conn.execute(statement, params).rowcount
    if count > 1:  # only possible on a copy of the table without its primary key
        raise RuntimeError(f"{count} rows matched id {params['id']}; aborted, nothing was changed")
    return count


def _journal(
    conn: psycopg.Connection,
    store_id: str,
    reason: str,
    keys: list[str],
    before: dict,
    after: dict,
    actor: str | None,
) -> int:
    params = {
        "id": store_id,
        "actor": actor,
        "reason": printable(reason)[:MAX_REASON_CHARS],  # a person's words: one line, storable
        "before": Jsonb({key: before.get(key) for key in keys}),
        "after": Jsonb({key: after.get(key) for key in keys}),
    }
    return conn.execute(JOURNAL, params).fetchone()[0]
