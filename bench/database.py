"""Database benchmark: seeding a million stores, the case-1 report and the case-2 update on them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
from stack import BENCH, allies, timed

from allies import reports
from allies.embedded import bin_dir

ROOT = BENCH.parent


def seed(url: str, count: int) -> float:
    seconds, _ = timed(lambda: allies("db", "seed", "--count", str(count), url=url))
    return seconds


def tag_report(url: str, runs: int = 3) -> tuple[float, int]:
    """Best time of sql/01_tags_distribution.sql (through the same code as `allies tags`)."""
    with psycopg.connect(url) as conn:
        seconds, rows = timed(lambda: reports.tag_distribution(conn), runs)
    return seconds, len(rows)


def case2_update(url: str) -> float:
    """sql/02 with psql, as the runbook runs it (psql start-up included)."""
    command = [
        str(bin_dir() / "psql"),
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-f",
        str(ROOT / "sql" / "02_update_store_owner_and_tags.sql"),
        url,
    ]
    seconds, _ = timed(lambda: subprocess.run(command, check=True, capture_output=True))
    return seconds


def pgbench(url: str, seconds: int, clients: int, ids_file: Path, home: Path) -> dict[str, float]:
    """PostgreSQL's own limit for the API's two statements (TPS with pgbench), when available."""
    ids = ids_file.read_text().split()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_ids")
        conn.execute("CREATE TABLE bench_ids (n int PRIMARY KEY, id varchar NOT NULL)")
        with conn.cursor().copy("COPY bench_ids (n, id) FROM STDIN") as copy:
            for n, ally in enumerate(ids, 1):
                copy.write_row((n, ally))
    by_number = "id = (SELECT id FROM bench_ids WHERE n = :n)"
    scripts = {
        "SELECT": f"SELECT data::jsonb -> 'credentials' FROM stores WHERE {by_number};",
        "UPDATE": f"UPDATE stores SET data = jsonb_set(data::jsonb, '{{credentials}}', '{{\"k\": 1}}') WHERE {by_number};",
    }
    results = {}
    for name, statement in scripts.items():
        script = home / f"{name}.sql"
        script.write_text(f"\\set n random(1, {len(ids)})\n{statement}\n")
        command = [str(bin_dir() / "pgbench"), "-n", "-f", str(script), "-c", str(clients), "-j", "2"]
        out = subprocess.run(
            [*command, "-T", str(seconds), url], capture_output=True, text=True, check=True
        ).stdout
        tps = next(line for line in out.splitlines() if line.startswith("tps ="))
        results[name] = float(tps.split()[2])
    return results


def rotation(url: str, count: int) -> tuple[int, float]:
    """(rows, rows per second) of `allies keys rotate`'s library call over `count` credentials."""
    from psycopg.types.json import Jsonb

    from allies import keys
    from allies.crypto import KeyRing, new_key_entry

    old = KeyRing.parse(new_key_entry("old"), "bench")
    with psycopg.connect(url, autocommit=True) as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM stores ORDER BY id LIMIT %s", (count,))]
        rows = [
            {"id": ally, "envelope": Jsonb(old.encrypt(ally, b'{"username": "u", "password": "p"}'))}
            for ally in ids
        ]
        with conn.cursor() as cursor:
            cursor.executemany(
                "UPDATE stores SET data = jsonb_set(data::jsonb, '{credentials}', %(envelope)s) WHERE id = %(id)s",
                rows,
            )
        ring = KeyRing.parse(f"{new_key_entry('new')},old:{_b64(old.keys['old'])}", "bench")
        result = keys.rotate(conn, ring)
    return result.rotated, result.rows_per_second


def _b64(key: bytes) -> str:
    import base64

    return base64.b64encode(key).decode()
