"""The embedded PostgreSQL: TCP with the original's credentials, reuse, port clashes, stale servers."""

from __future__ import annotations

import os
import signal
import socket
import time

import psycopg
import pytest
from conftest import free_port

from allies.embedded import EmbeddedError, EmbeddedPostgres


@pytest.fixture
def server(tmp_path):
    instance = EmbeddedPostgres(tmp_path / "pg", free_port())
    yield instance
    instance.stop()


def test_listens_on_tcp_with_postgres_postgres_and_on_its_socket(server):
    assert server.start() is True
    assert server.url == f"postgresql://postgres:postgres@127.0.0.1:{server.port}/postgres"
    with psycopg.connect(server.url) as conn:
        assert conn.execute("SELECT current_user, current_database()").fetchone() == ("postgres", "postgres")
    with psycopg.connect(server.socket_url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_tcp_requires_the_password(server):
    server.start()
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(server.url.replace(":postgres@", ":wrong@"))


def test_a_second_start_reuses_the_running_server_and_its_data(server):
    server.start()
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (x int)")
    assert server.start() is False
    assert EmbeddedPostgres(server.home, server.port).start() is False
    with psycopg.connect(server.url) as conn:
        assert conn.execute("SELECT count(*) FROM kept").fetchone() == (0,)


def test_a_taken_port_stops_with_a_message_naming_it_and_db_port(tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        with pytest.raises(EmbeddedError, match=f"port {port} .* set DB_PORT"):
            EmbeddedPostgres(tmp_path / "pg", port).start()


def test_a_server_left_on_another_port_is_moved_to_the_requested_one(server):
    server.start()
    moved = EmbeddedPostgres(server.home, free_port())
    assert moved.start() is True
    with psycopg.connect(moved.url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(server.url, connect_timeout=2)
    moved.stop()


def test_a_killed_server_is_detected_and_started_again(server):
    server.start()
    pid = int((server.pgdata / "postmaster.pid").read_text().splitlines()[0])
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:  # not our child: we cannot wait() for it
        time.sleep(0.05)
    assert server.is_running() is False
    assert server.start() is True
    with psycopg.connect(server.url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
