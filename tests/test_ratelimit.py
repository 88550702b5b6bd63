"""The write rate limit: one count per client for the whole service (every process, every replica)."""

from __future__ import annotations

import threading

import pytest
from conftest import BARNES, CASE3_PASSWORD, CASE3_USERNAME, make_app

from allies import db
from allies.config import Settings
from allies.failures import ConfigError
from allies.ratelimit import Limit, Limiter, SharedLimiter
from allies.web.services import services

BODY = {"username": CASE3_USERNAME, "password": CASE3_PASSWORD}


@pytest.fixture
def replicas(settings):
    """Two apps on one database, as two replicas (or two workers) would be."""
    limited = settings.__class__(**{**settings.__dict__, "write_rate_limit": Limit.parse("3/minute", "test")})
    apps = [make_app(limited), make_app(limited)]
    yield [app.test_client() for app in apps]
    for app in apps:
        services(app).close()


@pytest.fixture
def pool(database_url):
    with db.create_pool(database_url) as pool:
        yield pool


def post(client, address="10.0.0.1"):
    return client.post(f"/allies/{BARNES}/credentials", json=BODY, environ_base={"REMOTE_ADDR": address})


def test_the_limit_counts_a_client_across_replicas(replicas):
    first, second = replicas
    statuses = [post(replica).status_code for replica in (first, second, first, second, first)]
    assert statuses == [200, 200, 200, 429, 429]
    assert 1 <= int(post(second).headers["Retry-After"]) <= 20
    assert post(first, address="10.0.0.2").status_code == 200  # another client, its own count


def test_the_database_is_not_asked_about_a_client_this_process_already_refuses(pool, conn):
    limiter = SharedLimiter(Limit(3, 60), pool)
    waits = [limiter.acquire("10.0.0.1") for _ in range(50)]
    assert waits[:3] == [0.0] * 3 and all(wait > 0 for wait in waits[3:])
    # Had the 47 refusals reached the database, its bucket would record the last one as refused.
    assert conn.execute("SELECT admitted FROM write_rate WHERE client = '10.0.0.1'").fetchone() == (True,)


def test_concurrent_writes_of_one_client_are_admitted_exactly_up_to_the_limit(pool):
    limiters = [SharedLimiter(Limit(20, 3600), pool) for _ in range(8)]  # 8 processes, 8 local buckets
    admitted, barrier = [], threading.Barrier(8)

    def burst(limiter):
        barrier.wait()
        admitted.extend(1 for _ in range(10) if limiter.acquire("10.0.0.1") == 0.0)

    threads = [threading.Thread(target=burst, args=(limiter,)) for limiter in limiters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == 20  # 80 attempts; per-process counting alone would admit all 80


def test_the_wait_is_measured_on_the_database_clock_and_full_buckets_are_forgotten(pool, conn):
    now = [0.0]
    limiter = SharedLimiter(Limit(2, 60), pool, clock=lambda: now[0])
    assert [limiter.acquire("a") for _ in range(2)] == [0.0, 0.0]
    limiter._local = Limiter(Limit(10, 60))  # let the third through this process, to the database
    assert limiter.acquire("a") == pytest.approx(30.0, abs=1.0)
    conn.execute("UPDATE write_rate SET tat = tat - 60")  # a minute later, as the database sees it
    now[0] = 61.0  # and past a period on this process: the next write forgets full buckets
    assert limiter.acquire("b") == 0.0
    assert conn.execute("SELECT client FROM write_rate ORDER BY client").fetchall() == [("b",)]


def test_token_bucket_refills_with_time():
    now = [0.0]
    limiter = Limiter(Limit(2, 60), clock=lambda: now[0])
    assert [limiter.acquire("a") for _ in range(2)] == [0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(30.0)
    now[0] = 30.0
    assert limiter.acquire("a") == 0.0
    with pytest.raises(ConfigError, match="60/minute"):
        Limit.parse("sixty", "test")
    assert (
        Limit.parse("0", "test") is None and str(Limit.parse("5/second", "test")) == "5 per second per client"
    )


@pytest.mark.parametrize(("trusted", "seen"), [("0", "10.0.0.1"), ("1", "203.0.113.9")])
def test_x_forwarded_for_names_the_client_only_behind_trusted_proxies(
    settings, conn, monkeypatch, trusted, seen
):
    monkeypatch.setenv("ALLIES_TRUSTED_PROXIES", trusted)
    proxies = Settings.from_env().trusted_proxies
    app = make_app(settings.__class__(**{**settings.__dict__, "trusted_proxies": proxies}))
    try:
        response = app.test_client().post(
            f"/allies/{BARNES}/credentials",
            json=BODY,
            headers={"X-Forwarded-For": "198.51.100.7, 203.0.113.9"},  # the proxy appended the last one
            environ_base={"REMOTE_ADDR": "10.0.0.1"},
        )
    finally:
        services(app).close()
    assert response.status_code == 200
    assert conn.execute("SELECT client_addr FROM credential_audit").fetchall() == [(seen,)]
    log = settings.log_file.read_text()
    assert log.startswith(f"{seen} - - [")


@pytest.mark.parametrize("raw", ["-1", "eleven", "11"])
def test_a_malformed_proxy_count_is_refused_naming_the_variable(monkeypatch, raw):
    monkeypatch.setenv("ALLIES_TRUSTED_PROXIES", raw)
    with pytest.raises(ConfigError, match=r"ALLIES_TRUSTED_PROXIES must be the number of proxies"):
        Settings.from_env()
