"""What the benchmarks run on: a throw-away embedded PostgreSQL, seeded databases, served apps."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from allies.crypto import new_key_entry
from allies.embedded import EmbeddedPostgres
from allies.web.server import THREADS_PER_WORKER

BENCH = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
NGINX_CONF = BENCH.parent / "docker" / "nginx.conf"
KEYS = new_key_entry("bench")  # one key ring for every full app of a run: they share databases
INSTALL_NGINX = "nginx is not installed: `sudo apt-get install nginx-light` (Debian/Ubuntu)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def postgres():
    """(server, temporary folder): an embedded PostgreSQL of its own, removed afterwards."""
    home = Path(tempfile.mkdtemp(prefix="allies-bench-"))
    server = EmbeddedPostgres(home / "pg", free_port())
    server.start()
    try:
        yield server, home
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


def create_database(server: EmbeddedPostgres, name: str) -> str:
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return make_conninfo(server.socket_url, dbname=name)


def allies(*args: str, url: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, DATABASE_URL=url)
    return subprocess.run([str(BIN / "allies"), *args], env=env, check=check, capture_output=True, text=True)


def timed(function, runs: int = 1) -> tuple[float, object]:
    """(best seconds, last result) of calling `function` `runs` times."""
    best, result = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - started)
    return best, result


@contextmanager
def served(command: list[str], port: int, env: dict[str, str], cwd: Path | None = None):
    """A server process answering on `port` (its /allies/<id> path is probed), stopped afterwards."""
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            command, env={**os.environ, **env}, cwd=cwd, stdout=output, stderr=subprocess.STDOUT
        )
        try:
            _wait(f"http://127.0.0.1:{port}/allies/x/credentials", process, output)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=30)


def _wait(url: str, process: subprocess.Popen, output, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output.seek(0)
            said = output.read().decode(errors="replace")[-2000:]
            sys.exit(f"bench: the server {process.args} exited with {process.returncode}:\n{said}")
        try:
            urllib.request.urlopen(url, timeout=2)  # noqa: S310 - loopback
            return
        except urllib.error.HTTPError:
            return  # any HTTP answer means it serves
        except OSError:
            time.sleep(0.2)
    sys.exit(f"bench: {url} did not answer within {timeout} s")


def full_app(
    url: str, port: int, workers: int, home: Path, threads: int = THREADS_PER_WORKER, **extra_env: str
):
    env = {
        "DATABASE_URL": url,
        "ALLIES_ENCRYPTION_KEYS": KEYS,
        "ALLIES_LOG_FILE": str(home / "server.log"),
        "ALLIES_HOME": str(home / "allies"),
        **extra_env,
    }
    command = [
        str(BIN / "allies"),
        "serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--threads",
        str(threads),
    ]
    return served(command, port, env)


def bare_app(url: str, port: int, workers: int, threads: int):
    """bench/bare_app.py on granian, configured as `allies serve` configures it."""
    command = [
        str(BIN / "granian"),
        "--interface", "wsgi",
        "--http", "1",
        "--no-ws",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--workers", str(workers),
        "--blocking-threads", str(threads),
        "bare_app:app",
    ]  # fmt: skip
    return served(command, port, {"DATABASE_URL": url}, cwd=BENCH)


def bare_app_on_gunicorn(url: str, port: int, workers: int, threads: int):
    """bench/bare_app.py on gunicorn, configured as `allies serve` configured it before granian."""
    command = [
        str(BIN / "gunicorn"),
        "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers),
        "--worker-class", "gthread",
        "--threads", str(threads),
        "--keep-alive", "5",
        "--no-control-socket",
        "bare_app:app",
    ]  # fmt: skip
    return served(command, port, {"DATABASE_URL": url}, cwd=BENCH)


def nginx() -> str | None:
    """The nginx program, or None when it is not installed."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")  # sbin: often not on PATH


def balancer_conf(listen_port: int, upstream_ports: list[int], workdir: Path) -> str:
    """docker/nginx.conf, listening on 127.0.0.1:`listen_port` in front of replicas on loopback,
    its temporary files in `workdir` (so it runs without root)."""
    text = NGINX_CONF.read_text()
    named = list(re.finditer(r"^(\s*)server \w+:4000 (.*)\n", text, re.MULTILINE))
    indent, parameters = named[0][1], named[0][2]
    servers = "".join(f"{indent}server 127.0.0.1:{port} {parameters}\n" for port in upstream_ports)
    text = text[: named[0].start()] + servers + text[named[-1].end() :]
    text = text.replace("listen 8080;", f"listen 127.0.0.1:{listen_port};")
    temp = "".join(
        f"    {kind}_temp_path {workdir / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return text.replace("http {\n", "http {\n" + temp, 1)


@contextmanager
def balancer(upstream_ports: list[int], workdir: Path):
    """nginx (docker/nginx.conf) in front of the replicas on `upstream_ports`: yields its base URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(balancer_conf(port, upstream_ports, workdir))
    command = [
        nginx(),
        "-p",
        str(workdir),
        "-c",
        str(conf),
        "-g",
        f"daemon off; pid {workdir / 'nginx.pid'};",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(workdir / "error.log", "w"))  # noqa: SIM115
    try:
        deadline = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        if process.poll() is not None:
            sys.exit(f"bench: nginx exited: {(workdir / 'error.log').read_text()}")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
