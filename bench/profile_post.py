"""Where a POST /allies/<id>/credentials spends its time: pyinstrument over N requests in process.

Runs the real app (WSGI, no HTTP server) against a throw-away embedded PostgreSQL with the
generated stores, and prints pyinstrument's call tree. `python bench/profile_post.py --requests 3000`
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from pyinstrument import Profiler
from stack import create_database, postgres

from allies import db, seed
from allies.config import Settings
from allies.crypto import KeyRing, new_key_entry
from allies.web.app import create_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    with postgres() as (server, home), tempfile.TemporaryDirectory() as tmp:
        url = create_database(server, "profile")
        with db.connect(url, autocommit=True) as conn:
            db.ensure_schema(conn)
            seed.seed_stores(conn)
            ids = [row[0] for row in conn.execute("SELECT id FROM stores")]
        keyring = KeyRing.parse(new_key_entry("p"), "profile")
        settings = Settings(database_url=url, keyring=keyring, log_file=Path(tmp) / "s.log")
        client = create_app(settings, echo_log=False).test_client()
        body = {"username": "aliado_addi", "password": "}sxh7_5}BdJ4K:Qf"}
        for ally in ids[:100]:  # warm-up: connections, prepared statements
            client.post(f"/allies/{ally}/credentials", json=body)
        profiler = Profiler(interval=0.0005)
        with profiler:
            for n in range(args.requests):
                client.post(f"/allies/{ids[n % len(ids)]}/credentials", json=body)
        print(profiler.output_text(unicode=True, color=False, show_all=False))


if __name__ == "__main__":
    main()
