"""Generated stores shaped like the original challenge's data, identical on every run."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Iterator

import psycopg
from faker import Faker

from .failures import AlliesError
from .stores import TAG_NAMES

DEFAULT_COUNT = 300
RANDOM_SEED = 20231102
# Faker is slow per call; drawing from pools of its names keeps a million rows fast.
NAME_POOL_SIZE = 5000

# The stores of the original cases 2 and 3, always present.
CASE_STORES: dict[str, dict] = {
    "0d4f7a40-651d-44fb-8744-04d9b31ef844": {
        "name": "Young-Wolf",
        "tags": {"tag1": "finanzas", "tag2": "movilidad", "tag3": "tecnologia"},
    },
    "1f585fc9-4926-468c-a728-eb34d80e9ea1": {"name": "Barnes Inc"},
}


class SeedError(AlliesError):
    """Seeding was refused or failed; nothing was written."""


def generate_stores(count: int = DEFAULT_COUNT) -> Iterator[tuple[str, dict]]:
    """`count` (id, data) pairs: the case stores first, then deterministic fake stores."""
    if count < len(CASE_STORES):
        raise SeedError(f"the count must be at least {len(CASE_STORES)} (the case stores)")
    return _generate(count)


def _generate(count: int) -> Iterator[tuple[str, dict]]:
    rng = random.Random(RANDOM_SEED)
    fake = Faker("en_US")
    fake.seed_instance(RANDOM_SEED)
    companies = [fake.company() for _ in range(min(count, NAME_POOL_SIZE))]
    people = [fake.name() for _ in range(min(count, NAME_POOL_SIZE))]
    for index in range(count):
        store = _fake_store(rng, companies, people)
        if index < len(CASE_STORES):
            store_id, overrides = list(CASE_STORES.items())[index]
            store.update(overrides)
        else:
            store_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        yield store_id, store


def _fake_store(rng: random.Random, companies: list[str], people: list[str]) -> dict:
    tag1, tag2, tag3 = rng.sample(TAG_NAMES, 3)
    return {
        "name": rng.choice(companies),
        "tags": {"tag1": tag1, "tag2": tag2, "tag3": tag3},
        "brand_owner": rng.choice(people),
        "discount": rng.randint(15, 999) / 10,
        "maxAmount": rng.randint(50, 100),
        "minAmount": rng.randint(0, 10),
        "credentials": None,
    }


def count_stores(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM stores").fetchone()[0]


def seed_stores(
    conn: psycopg.Connection,
    count: int = DEFAULT_COUNT,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Fill an empty `stores` table with `count` stores via COPY; refuses a table with rows."""
    rows = generate_stores(count)  # validates count before touching the database
    with conn.transaction():
        # The lock makes "empty" still true when the COPY commits, even with a concurrent seed.
        conn.execute("LOCK TABLE stores IN SHARE ROW EXCLUSIVE MODE")
        existing = count_stores(conn)
        if existing:
            raise SeedError(
                f"stores already holds {existing} rows; seeding never overwrites data "
                "(start over with `allies db reset --yes`)"
            )
        written = 0
        with conn.cursor().copy("COPY stores (id, data) FROM STDIN") as copy:
            for store_id, data in rows:
                copy.write_row((store_id, json.dumps(data)))
                written += 1
                if progress and written % 10_000 == 0:
                    progress(10_000)
        if progress:
            progress(written % 10_000)
    return written


def reset_stores(conn: psycopg.Connection) -> None:
    """Delete every store, audit row and journal entry (the caller asked with --yes)."""
    with conn.transaction():
        conn.execute(
            "TRUNCATE stores, credential_audit, store_changes, credential_versions, idempotency_keys"
            " RESTART IDENTITY"
        )
