"""The lifecycle an operator sees: a busy API port, Ctrl-C on the server, one database per home."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import pytest
from conftest import BARNES, allies_env, free_port
from helpers.http import send, wait_for_http

pytestmark = [pytest.mark.served]


def allies(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["allies", *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_a_busy_api_port_is_one_line_and_exit_1_before_serving(database_url):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = allies("serve", "--port", str(port), env=allies_env(DATABASE_URL=database_url))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"allies: port {port} on 127.0.0.1 is already in use (another allies serve or make run?); "
        f"choose another with --port, e.g. PORT={port + 1} make run"
    ]


@pytest.fixture
def home_env(tmp_path):
    """An instance of its own: a home, and DB_PORT unset, as `make run` with the defaults leaves it."""
    env = allies_env(ALLIES_HOME=str(tmp_path / "home"), ALLIES_LOG_FILE=str(tmp_path / "server.log"))
    yield env
    allies("db", "stop", env=env)


def test_ctrl_c_stops_the_api_and_says_the_database_keeps_running(home_env):
    db_port, api_port = free_port(), free_port()
    started = allies("db", "start", env={**home_env, "DB_PORT": str(db_port)})
    assert started.returncode == 0, started.stderr
    server = subprocess.Popen(
        ["allies", "serve", "--port", str(api_port), "--workers", "2"],
        env=home_env,  # DB_PORT unset: the home's running server, wherever it listens
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_http(f"http://127.0.0.1:{api_port}/health", process=server)
    server.send_signal(signal.SIGINT)
    _, stderr = server.communicate(timeout=30)
    assert server.returncode == 0
    said = (
        f"allies: the embedded PostgreSQL keeps running on 127.0.0.1:{db_port} with its data; "
        "stop it with `allies db stop` (or `.venv/bin/allies db stop`)"
    )
    assert stderr.splitlines().count(said) == 1  # once, by the process that served: not by its workers
    url = allies("db", "url", env=home_env)
    assert url.stdout.strip() == f"postgresql://postgres:postgres@127.0.0.1:{db_port}/postgres"
    stopped = allies("db", "stop", env=home_env)
    assert stopped.stderr.strip() == "allies: embedded PostgreSQL stopped"


def test_a_second_instance_on_the_same_home_is_refused_and_moves_nothing(home_env):
    db_port, other_port = free_port(), free_port()
    assert allies("db", "start", env={**home_env, "DB_PORT": str(db_port)}).returncode == 0
    refused = allies("db", "url", env={**home_env, "DB_PORT": str(other_port)})
    assert refused.returncode == 1
    [line] = refused.stderr.splitlines()
    assert f"already runs on port {db_port} and is not moved to {other_port}" in line
    assert f"ALLIES_HOME=<another folder> DB_PORT={other_port} make run" in line
    query = ["db", "psql", "-tAc", "SELECT current_setting('port')"]
    assert allies(*query, env=home_env).stdout.strip() == str(db_port)


def test_ctrl_c_to_the_terminals_process_group_stops_within_2_seconds_every_time(database_url):
    """A terminal's Ctrl-C signals the server and its workers at once (one process group): before
    the workers blocked SIGINT, about one stop in four took granian's 10 s kill timeout."""
    env = allies_env(DATABASE_URL=database_url)
    took = []
    for _ in range(8):
        port = free_port()
        server = subprocess.Popen(
            ["allies", "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )
        wait_for_http(f"http://127.0.0.1:{port}/health", process=server)
        for n in range(20):  # a little load first: writes through the workers' pools
            body = {"username": f"user{n}", "password": "secret"}
            assert send("POST", f"http://127.0.0.1:{port}/allies/{BARNES}/credentials", body).status == 200
        started = time.monotonic()
        os.killpg(server.pid, signal.SIGINT)
        server.wait(timeout=30)
        took.append(time.monotonic() - started)
        assert server.returncode == 0
    assert max(took) < 2, f"stops took {[round(t, 2) for t in took]} s"
