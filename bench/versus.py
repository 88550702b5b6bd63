"""`python bench/versus.py COMMIT`: the API's POST (and GET) throughput of COMMIT and of this tree,
side by side in one run, on the same PostgreSQL, rounds alternating which goes first.

COMMIT is checked out in a temporary git worktree with a virtual environment of its own (the
project's install: about 20 s). Each ratio is this tree / COMMIT within one round; the median
ratio is what a change costs, the spread how noisy the machine was.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import database
import psycopg
from api import drive
from stack import BIN, KEYS, create_database, free_port, postgres, served

ROOT = Path(__file__).resolve().parent.parent


def install(commit: str, folder: Path) -> Path:
    """COMMIT's `allies` executable, built in a worktree under `folder`."""
    tree = folder / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), commit], check=True)
    subprocess.run([sys.executable, "-m", "venv", str(tree / ".venv")], check=True)
    pip = [str(tree / ".venv" / "bin" / "pip"), "install", "--quiet", "-e", str(tree)]
    subprocess.run(pip, check=True)
    return tree / ".venv" / "bin" / "allies"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commit", help="The commit to compare this tree with.")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=int, default=8, help="Seconds per wrk run.")
    parser.add_argument("--method", choices=["POST", "GET"], default="POST")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="allies-versus-") as folder:
        try:
            apps = {args.commit: install(args.commit, Path(folder)), "this tree": BIN / "allies"}
            compare(apps, args)
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", f"{folder}/tree"], check=False
            )


def compare(apps: dict[str, Path], args) -> None:
    with postgres() as (server, home):
        urls, ids = {}, {}
        for n, name in enumerate(apps):
            urls[name] = create_database(server, f"versus_{n}")
            database.seed(urls[name], 10_000)
            with psycopg.connect(urls[name]) as conn:
                ids[name] = home / f"ids_{n}.txt"
                ids[name].write_text("\n".join(row[0] for row in conn.execute("SELECT id FROM stores")))
        results: dict[tuple[str, int], list[float]] = {(name, c): [] for name in apps for c in (8, 32)}
        for round_number in range(args.rounds):
            for name in list(apps) if round_number % 2 == 0 else list(reversed(apps)):
                port = free_port()
                env = {"DATABASE_URL": urls[name], "ALLIES_ENCRYPTION_KEYS": KEYS,
                       "ALLIES_LOG_FILE": str(home / "server.log"), "ALLIES_HOME": str(home / "home")}  # fmt: skip
                command = [str(apps[name]), "serve", "--port", str(port), "--workers", "2", "--threads", "2"]
                with served(command, port, env) as base:
                    for connections in (8, 32):
                        run = drive(base, name, args.method, connections, args.duration, ids[name])
                        results[name, connections].append(run.requests_per_s)
        before, after = apps
        print(
            f"| {args.method} | {before} (median req/s) | this tree (median req/s) | per-round ratios | median |"
        )
        print("| --- | ---: | ---: | --- | ---: |")
        for connections in (8, 32):
            old, new = results[before, connections], results[after, connections]
            ratios = sorted(b / a for a, b in zip(old, new, strict=True))
            print(
                f"| {connections} connections | {statistics.median(old):,.0f} | {statistics.median(new):,.0f} "
                f"| {', '.join(f'{r:.2f}' for r in ratios)} | {statistics.median(ratios):.2f} |"
            )


if __name__ == "__main__":
    main()
