"""The embedded PostgreSQL: TCP with the original's credentials, reuse, port clashes, one server per home,
stale and orphaned servers."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time

import psycopg
import pytest
from conftest import free_port, kept_port

from allies.embedded import EmbeddedError, EmbeddedPostgres, process_alive


@pytest.fixture
def server(tmp_path):
    instance = EmbeddedPostgres(tmp_path / "pg", kept_port())
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


def test_a_running_server_is_never_moved_to_another_port(server):
    server.start()
    other_port = free_port()
    with pytest.raises(EmbeddedError) as refused:
        EmbeddedPostgres(server.home, other_port).start()
    message = str(refused.value)
    assert f"{server.home} already runs on port {server.port}" in message
    assert f"ALLIES_HOME=<another folder> DB_PORT={other_port}" in message and "\n" not in message
    with psycopg.connect(server.url) as conn:  # still where it was
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_without_a_port_the_running_servers_port_is_used(server):
    assert EmbeddedPostgres(server.home).port == 5432  # nothing runs: the default
    server.start()
    unset = EmbeddedPostgres(server.home)
    assert unset.port == server.port and unset.start() is False


def test_two_homes_run_side_by_side(server, tmp_path):
    server.start()
    second = EmbeddedPostgres(tmp_path / "second", free_port())
    try:
        assert second.start() is True
        for instance in (server, second):
            with psycopg.connect(instance.url) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        second.stop()


def orphaned_server(tmp_path) -> tuple[EmbeddedPostgres, int]:
    """A server still running after its home was deleted (`rm -rf .allies`), and its pid.
    PostgreSQL may stop by itself when its files vanish under it (a background process failing to
    write, seen once under load): that is no orphan to test, so the scene is set again."""
    for attempt in range(3):
        home, port = tmp_path / f"pg{attempt}", free_port()
        EmbeddedPostgres(home, port).start()
        pid = int((home / "pgdata" / "postmaster.pid").read_text().splitlines()[0])
        shutil.rmtree(home)
        time.sleep(0.3)
        if process_alive(pid):
            return EmbeddedPostgres(home, port), pid
    pytest.fail("PostgreSQL stopped by itself each time its home was deleted")


def test_a_server_whose_home_was_deleted_is_recognised_and_stopped(tmp_path):
    server, pid = orphaned_server(tmp_path)
    assert server.is_running() is False and server.orphans() == [pid]
    with pytest.raises(EmbeddedError, match=f"still runs \\(pid {pid}\\).*allies db stop"):
        server.start()
    assert server.stop() is True  # never "not running" while it runs
    assert not process_alive(pid) and server.orphans() == []
    assert server.start() is True  # a fresh server on the same port
    server.stop()


def test_a_killed_server_is_detected_and_started_again(server):
    server.start()
    pid = int((server.pgdata / "postmaster.pid").read_text().splitlines()[0])
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _reaped_yet(pid) is False and time.monotonic() < deadline:  # not our child: no wait()
        time.sleep(0.05)
    assert server.is_running() is False
    assert server.start() is True
    with psycopg.connect(server.url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def _reaped_yet(pid: int) -> bool:
    """Whether the process is gone for good (pg_ctl counts a zombie as running, like kill -0)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False
