"""Fixtures: one real PostgreSQL per test session, a fresh database per test, the real Flask app.

With DATABASE_URL set, that server is used (the role must be allowed to create databases);
otherwise an embedded PostgreSQL is started under a temporary folder and stopped at the end.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest
from helpers.http import wait_for_http
from psycopg.conninfo import make_conninfo

from allies import db, seed
from allies.config import Settings
from allies.crypto import KeyRing, new_key_entry
from allies.embedded import EmbeddedPostgres
from allies.web.app import create_app
from allies.web.services import services

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = ROOT.parent / "shared" / "upstream"
YOUNG_WOLF = "0d4f7a40-651d-44fb-8744-04d9b31ef844"
BARNES = "1f585fc9-4926-468c-a728-eb34d80e9ea1"
CASE3_USERNAME = "aliado_addi"
CASE3_PASSWORD = "}sxh7_5}BdJ4K:Qf"
TEST_KEYS = new_key_entry("test-key-1")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_KEPT_PORTS = itertools.count()


def kept_port() -> int:
    """A free port below the kernel's ephemeral range, in a band of this xdist worker's own: for a
    server that is killed and started again on the same port. While it is down, `free_port` (an
    ephemeral port, any worker) can never hand its port to another test."""
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    while True:
        port = 20_000 + 1_000 * (worker % 10) + next(_KEPT_PORTS) % 1_000
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


def with_dbname(url: str, name: str) -> str:
    return make_conninfo(url, dbname=name)


# Fixtures that start the real server: a test using one is `served` (pytest -m "not served").
SERVER_FIXTURES = {"serve", "served_app", "served_app_with_tokens", "hostile_server", "live_stack"}


def pytest_configure(config) -> None:
    """Each run's temporary folders under a base of its own. pytest's default base
    (/tmp/pytest-of-<user>) is set back to 0700 by any other pytest run of the same user, and the
    embedded PostgreSQL servers of this run (their own system user) would lose their files
    ("could not open file pg_control: Permission denied"). xdist's workers get sub-folders of it."""
    if config.option.basetemp is None and not hasattr(config, "workerinput"):
        config.option.basetemp = config.allies_basetemp = tempfile.mkdtemp(prefix="allies-tests-")


def pytest_unconfigure(config) -> None:
    if getattr(config, "allies_basetemp", None):
        shutil.rmtree(config.allies_basetemp, ignore_errors=True)


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.served)


@pytest.fixture(scope="session")
def server_url(tmp_path_factory) -> str:
    """Admin URL of the session's PostgreSQL server."""
    external = os.environ.get("DATABASE_URL")
    if external:
        yield external
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg"), free_port())
    server.start()
    # A throwaway server: no fsync, so the per-test CREATE DATABASE (a checkpoint) costs little.
    with psycopg.connect(server.url, autocommit=True) as conn:
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            conn.execute(f"ALTER SYSTEM SET {setting} = off")
        conn.execute("SELECT pg_reload_conf()")
    yield server.url
    server.stop()


def create_database(admin_url: str, name: str, template: str | None = None) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        clause = f" TEMPLATE {template} STRATEGY FILE_COPY" if template else ""
        conn.execute(f"CREATE DATABASE {name}{clause}")
    return with_dbname(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def template_name(server_url) -> str:
    """A database with the schema and the 300 generated stores, copied for each test."""
    name = f"allies_tpl_{uuid.uuid4().hex[:8]}"
    url = create_database(server_url, name)
    with psycopg.connect(url, autocommit=True) as conn:
        db.ensure_schema(conn)
        seed.seed_stores(conn)
    yield name
    drop_database(server_url, name)


@pytest.fixture
def fresh_database(server_url):
    """Factory: a new database from `template` (None: empty) dropped after the test."""
    names = []

    def make(template: str | None = None) -> str:
        names.append(f"allies_t_{uuid.uuid4().hex[:10]}")
        return create_database(server_url, names[-1], template)

    yield make
    for name in names:
        drop_database(server_url, name)


@pytest.fixture
def database_url(fresh_database, template_name) -> str:
    """A fresh copy of the seeded database for this test."""
    return fresh_database(template_name)


@pytest.fixture
def conn(database_url):
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def keyring() -> KeyRing:
    return KeyRing.parse(TEST_KEYS, "test")


@pytest.fixture
def settings(tmp_path, database_url) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        keyring=KeyRing.parse(TEST_KEYS, "test"),
        log_file=tmp_path / "log" / "server.log",
        db_timeout_seconds=1.0,
    )


def make_app(settings: Settings):
    app = create_app(settings, echo_log=False)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def app(settings):
    application = make_app(settings)
    yield application
    services(application).close()


@pytest.fixture
def client(app):
    return app.test_client()


def allies_env(**extra: str) -> dict[str, str]:
    """The environment of an `allies` subprocess: this interpreter's bin first on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "ALLIES_HOME", "DB_PORT"}}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


@pytest.fixture
def serve(tmp_path, settings):
    """Factory: the real server (`allies serve`, granian) on a free port over this test's database
    (`extra_env` may point it elsewhere); `serve.processes[base_url]` is its server process."""
    processes = {}

    def start(workers: int = 1, **extra_env: str) -> str:
        port = free_port()
        defaults = {
            "DATABASE_URL": settings.database_url,
            "ALLIES_HOME": str(settings.home),
            "ALLIES_ENCRYPTION_KEYS": TEST_KEYS,
            "ALLIES_LOG_FILE": str(settings.log_file),
        }
        env = allies_env(**{**defaults, **extra_env})
        output = open(tmp_path / f"serve-{port}.out", "wb")  # noqa: SIM115 - closed at teardown
        process = subprocess.Popen(
            ["allies", "serve", "--port", str(port), "--workers", str(workers)],
            env=env,
            cwd=tmp_path,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        processes[base] = process
        outputs.append(output)
        wait_for_http(f"{base}/health", process=process)
        return base

    outputs = []
    start.processes = processes
    yield start
    for process, output in zip(processes.values(), outputs, strict=True):
        process.terminate()
        process.wait(timeout=20)
        output.close()


@pytest.fixture
def own_server(tmp_path):
    """A PostgreSQL of this test's own, seeded with 60 stores, for tests that stop it."""
    server = EmbeddedPostgres(tmp_path / "own-pg", kept_port())  # stopped and started again by its tests
    server.start()
    with psycopg.connect(server.url, autocommit=True) as conn:
        db.ensure_schema(conn)
        seed.seed_stores(conn, 60)
    yield server
    server.stop()


@pytest.fixture
def served_app(serve):
    return serve()


TOKENS = {"ana": "ana-token-0123456789abcdef", "luis": "luis-token-0123456789abcdef"}
TOKENS_ENV = ",".join(f"{name}:{token}" for name, token in TOKENS.items())


@pytest.fixture
def served_app_with_tokens(serve):
    return serve(ALLIES_API_TOKENS=TOKENS_ENV)


def upstream_file(name: str) -> Path:
    path = UPSTREAM / name
    if not path.exists():
        pytest.skip(f"{path} is absent (the upstream fixtures live beside the project in ../shared)")
    return path


@pytest.fixture
def upstream_url(fresh_database) -> str:
    """A database loaded with the original challenge's seed.sql, unchanged (data is JSON)."""
    sql = upstream_file("seed.sql").read_text()
    url = fresh_database()
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(sql)
        db.ensure_schema(connection)
    return url


def stored_credentials(conn, keyring: KeyRing, ally_id: str) -> tuple[str, str]:
    """What the database holds for an ally, decrypted: (username, password). The product never
    reads a secret back (the code that will send them to partners will); the tests do, to prove
    what was stored."""
    envelope = conn.execute(
        "SELECT data::jsonb -> 'credentials' FROM stores WHERE id = %s", (ally_id,)
    ).fetchone()[0]
    secret = json.loads(keyring.decrypt(ally_id, envelope))
    return secret["username"], secret["password"]
