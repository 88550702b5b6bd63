"""Reproducible traffic through the real app, for the project's own log/example.log (case 4).

A fixed seed and a simulated clock drive about three hours of requests from support engineers,
partners' integrations, a health monitor and a scanner, against a temporary database seeded with
the usual 300 stores. Among them, credentials requests fail for realistic reasons — a mistyped
ally id, a truncated id, a missing field, a password whose braces the shell broke, a database
outage — and some are retried successfully later, some not. Same seed, same bytes.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from .. import db
from ..config import Settings
from ..crypto import KeyRing, new_key_entry

START = datetime(2026, 11, 2, 8, 0, 0, tzinfo=timezone(timedelta(hours=-5)))
ENGINEERS = {"ana": "10.20.0.11", "luis": "10.20.0.12", "marta": "10.20.0.13"}
PARTNERS = ["34.201.17.5", "52.14.88.203"]
MONITOR = "10.20.0.2"
SCANNER = "185.220.101.7"
DEFAULT_SEED = 4
DEFAULT_REQUESTS = 2400
OUTAGE = (1400, 1520)  # requests sent while the database is down
SCANNED_PATHS = ["/wp-login.php", "/admin", "/.env", "/api/v1/users"]


@dataclass
class Clock:
    """Simulated time: advanced by the traffic, read by the access log."""

    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


class Traffic:
    """Sends the requests; `live` talks to the database, `down` to an unreachable one (503s)."""

    def __init__(self, live, down, clock: Clock, rng: random.Random, store_ids: list[str]) -> None:
        self.clients = {"live": live.test_client(), "down": down.test_client()}
        self.clock, self.rng, self.store_ids = clock, rng, store_ids
        self.with_credentials: list[str] = []
        self.reserved: set[str] = set()  # the incidents' allies: routine traffic leaves them alone
        self.tick = 0

    def send(self, ip: str, method: str, path: str, **kwargs) -> int:
        self.tick += 1
        self.clock.now += timedelta(seconds=self.rng.randint(1, 8))
        side = "down" if OUTAGE[0] <= self.tick < OUTAGE[1] else "live"
        response = self.clients[side].open(path, method=method, environ_base={"REMOTE_ADDR": ip}, **kwargs)
        return response.status_code

    def post_credentials(self, ip: str, ally: str, body: dict | str) -> int:
        options = (
            {"json": body} if isinstance(body, dict) else {"data": body, "content_type": "application/json"}
        )
        status = self.send(ip, "POST", f"/allies/{ally}/credentials", **options)
        if status == 200 and ally not in self.with_credentials:
            self.with_credentials.append(ally)
        return status

    def check(self, ip: str, ally: str) -> int:
        return self.send(ip, "GET", f"/allies/{ally}/credentials")

    def credentials_for(self, ally: str) -> dict:
        return {"username": f"partner_{ally[:6]}", "password": f"pw-{self.rng.getrandbits(48):012x}"}

    def routine(self) -> None:
        """One ordinary piece of work (one or two requests), all of them successful."""
        roll = self.rng.random()
        engineer = self.rng.choice(list(ENGINEERS.values()))
        if roll < 0.30 or not self.with_credentials:
            self.send(MONITOR, "GET", "/health")
        elif roll < 0.65:
            self.check(self.rng.choice(PARTNERS), self.rng.choice(self.with_credentials))
        elif roll < 0.85:
            ally = self.rng.choice([a for a in self.store_ids if a not in self.reserved])
            if self.post_credentials(engineer, ally, self.credentials_for(ally)) == 200:
                self.check(engineer, ally)
        elif roll < 0.95:
            self.check(engineer, self.rng.choice(self.with_credentials))
        else:
            self.send(SCANNER, self.rng.choice(["GET", "POST"]), self.rng.choice(SCANNED_PATHS))


def _mistype(ally: str, rng: random.Random) -> str:
    position = rng.choice([i for i, c in enumerate(ally) if c != "-"])
    replacement = rng.choice([c for c in "0123456789abcdef" if c != ally[position]])
    return ally[:position] + replacement + ally[position + 1 :]


def incidents(traffic: Traffic) -> dict[int, Callable[[], None]]:
    """The failures of the day, by the request count at which they happen."""
    rng, ids = traffic.rng, traffic.store_ids
    ana, luis, marta = ENGINEERS["ana"], ENGINEERS["luis"], ENGINEERS["marta"]
    mistyped, truncated, no_password, braces_fixed, braces_lost = rng.sample(ids, 5)
    retried_after_outage, lost_in_outage = rng.sample(ids, 2)
    traffic.reserved.update(
        {mistyped, truncated, no_password, braces_fixed, braces_lost, retried_after_outage, lost_in_outage}
    )

    def quoting_broke(ip: str, ally: str) -> None:
        # curl -d {"username":"aliado_addi","password":"}sxh7_5}BdJ4K:Qf"} without single quotes:
        # the shell drops the double quotes, and the body is no longer JSON.
        traffic.post_credentials(ip, ally, "{username:aliado_addi,password:}sxh7_5}BdJ4K:Qf}")

    return {
        300: lambda: traffic.post_credentials(
            ana, _mistype(mistyped, rng), traffic.credentials_for(mistyped)
        ),
        320: lambda: traffic.post_credentials(ana, mistyped, traffic.credentials_for(mistyped)),
        500: lambda: traffic.post_credentials(luis, truncated[:23], traffic.credentials_for(truncated)),
        520: lambda: traffic.post_credentials(luis, truncated, traffic.credentials_for(truncated)),
        700: lambda: traffic.post_credentials(marta, no_password, {"username": "partner_x"}),
        760: lambda: traffic.post_credentials(marta, no_password, traffic.credentials_for(no_password)),
        900: lambda: quoting_broke(ana, braces_fixed),
        905: lambda: traffic.post_credentials(ana, braces_fixed, traffic.credentials_for(braces_fixed)),
        1100: lambda: quoting_broke(luis, braces_lost),
        1450: lambda: traffic.post_credentials(
            marta, retried_after_outage, traffic.credentials_for(retried_after_outage)
        ),
        1480: lambda: traffic.post_credentials(luis, lost_in_outage, traffic.credentials_for(lost_in_outage)),
        1600: lambda: traffic.post_credentials(
            marta, retried_after_outage, traffic.credentials_for(retried_after_outage)
        ),
    }


def generate(
    admin_url: str, out: Path, seed_value: int = DEFAULT_SEED, requests: int = DEFAULT_REQUESTS
) -> int:
    """Write the log of `requests` requests to `out` (replaced); returns the number of lines."""
    with _quiet("psycopg.pool", "allies.errors"):  # the simulated outage would flood the terminal
        return _generate(admin_url, out, seed_value, requests)


@contextmanager
def _quiet(*names: str) -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _generate(admin_url: str, out: Path, seed_value: int, requests: int) -> int:
    name = f"allies_demo_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = make_conninfo(admin_url, dbname=name)
        from .. import seed  # Faker: imported only when traffic is generated

        with psycopg.connect(url, autocommit=True) as conn:
            db.ensure_schema(conn)
            seed.seed_stores(conn)
            store_ids = [row[0] for row in conn.execute("SELECT id FROM stores ORDER BY id")]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("")
        return _run(url, out, seed_value, requests, store_ids)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _run(url: str, out: Path, seed_value: int, requests: int, store_ids: list[str]) -> int:
    from ..web.app import create_app  # the whole app: imported only when traffic is generated
    from ..web.services import services

    clock, rng = Clock(), random.Random(seed_value)
    keys = KeyRing.parse(new_key_entry("demo"), "demo")
    live = create_app(Settings(database_url=url, keyring=keys, log_file=out), echo_log=False, clock=clock)
    unreachable = "postgresql://postgres@127.0.0.1:1/postgres"  # nothing listens on port 1: an outage
    down_settings = Settings(database_url=unreachable, keyring=keys, log_file=out, db_timeout_seconds=0.05)
    down = create_app(down_settings, echo_log=False, clock=clock)
    try:
        traffic = Traffic(live, down, clock, rng, store_ids)
        planned = sorted(incidents(traffic).items())
        while traffic.tick < requests:
            if planned and planned[0][0] <= traffic.tick + 1:
                planned.pop(0)[1]()
            else:
                traffic.routine()
    finally:
        for app in (live, down):
            services(app).close()
    return len(out.read_text().splitlines())
