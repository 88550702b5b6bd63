"""Case 4: `allies logs triage` on logs with a known ground truth, the project's example.log,
the original server log, gzip, several files, stdin, time windows, with and without a database."""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import shutil
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from conftest import ROOT, YOUNG_WOLF, allies_env, upstream_file
from helpers.logs import GARBAGE, MUTATIONS, PATHS, START, A, B, C, common, known_log, reference, write

from allies import triage
from allies.cli import main
from allies.cli import traffic as demo
from allies.triage import _logscan, analysis, logparse
from allies.validation import parse_time


def summary(report: triage.Report) -> dict:
    data = report.to_dict()
    return {
        "total_lines": data["total_lines"],
        "malformed": data["malformed"],
        "statuses": data["statuses"],
        "failed_requests": data["failed_requests"],
        "credential_requests": data["credential_requests"],
        "failed_credential_requests": data["failed_credential_requests"],
        "affected": {a["ally_id"]: a["recovered"] for a in data["affected_allies"]},
    }


def test_known_lines_give_exactly_the_known_answers(tmp_path):
    lines, truth = known_log()
    report = triage.analyze([write(tmp_path / "a.log", lines)])
    assert summary(report) == truth
    b = report.allies[B]
    assert (b.failures, dict(b.statuses), dict(b.methods)) == (2, {404: 1, 503: 1}, {"POST": 1, "GET": 1})
    assert b.clients == {"10.0.0.1", "10.0.0.8"}
    assert b.first_failure == (START + timedelta(minutes=3)).astimezone(UTC)
    assert b.last_failure == (START + timedelta(minutes=4)).astimezone(UTC)
    first_garbage = lines.index(GARBAGE[0]) + 1
    assert [s["line"] for s in report.malformed_samples] == list(range(first_garbage, first_garbage + 5))
    assert report.malformed_samples[1]["text"] == "this is not a log line"


def test_the_timeline_counts_failed_requests_by_minute_and_status(tmp_path):
    lines, truth = known_log()
    report = triage.analyze([write(tmp_path / "a.log", lines)], timeline=True)
    failures = report.to_dict()["failures_over_time"]
    at = {n: (START + timedelta(minutes=n)).astimezone(UTC).isoformat() for n in range(10)}
    assert failures["bucket_seconds"] == 60
    assert [(f["at"], f["status"], f["requests"]) for f in failures["failures"]] == [
        (at[1], 500, 1), (at[3], 404, 1), (at[4], 503, 1), (at[5], 400, 1), (at[7], 404, 1), (at[9], 500, 1)
    ]  # fmt: skip
    assert len(failures["failures"]) == truth["failed_requests"]
    assert "failures_over_time" not in triage.analyze([write(tmp_path / "a.log", lines)]).to_dict()
    assert report.timeline.regrouped(max_buckets=2)[0] == 300  # 15:01-15:09 UTC: 15:00 and 15:05
    width, buckets = report.timeline.regrouped(max_buckets=1)
    assert (width, [counts for _, counts in buckets]) == (900, [{400: 1, 404: 2, 500: 2, 503: 1}])


def test_the_cli_adds_the_timeline_to_its_json_when_asked(tmp_path):
    path = write(tmp_path / "a.log", known_log()[0])
    plain = json.loads(CliRunner().invoke(main, ["logs", "triage", path, "--json"]).stdout)
    asked = json.loads(CliRunner().invoke(main, ["logs", "triage", path, "--json", "--timeline"]).stdout)
    assert (
        "failures_over_time" not in plain
        and {k: v for k, v in asked.items() if k != "failures_over_time"} == plain
    )
    assert len(asked["failures_over_time"]["failures"]) == 6


def test_the_timeline_widens_its_buckets_to_stay_bounded(tmp_path, monkeypatch):
    """A log spanning years keeps a bounded timeline: its buckets widen, its counts stay exact."""
    monkeypatch.setattr(analysis, "TIMELINE_MAX_POINTS", 50)
    lines = [common(minute * 97, "GET", "/x", 500 + minute % 4) for minute in range(3_000)]
    report = triage.analyze([write(tmp_path / "long.log", lines)], timeline=True)
    timeline = report.timeline
    assert len(timeline.counts) <= 50 and timeline.bucket_seconds > 86400
    assert timeline.counts.total() == report.failed_requests == 3_000
    assert all(start % timeline.bucket_seconds == 0 for start, _ in timeline.counts)


def test_all_endpoints_counts_every_ally_path(tmp_path):
    lines, _ = known_log()
    report = triage.analyze([write(tmp_path / "a.log", lines)], all_endpoints=True)
    assert report.credential_requests == 7
    assert report.allies[C].failures == 1 and not report.allies[C].recovered


def test_gzip_several_files_and_stdin_agree_with_one_plain_file(tmp_path):
    lines, truth = known_log()
    half = len(lines) // 2
    first = write(tmp_path / "one.log", lines[:half])
    second = write(tmp_path / "two.log.gz", lines[half:], compress=True)
    assert summary(triage.analyze([first, second])) == truth
    whole = ("\n".join(lines) + "\n").encode()
    for stdin in (whole, gzip.compress(whole)):
        result = CliRunner().invoke(main, ["logs", "triage", "-", "--json"], input=stdin)
        assert result.exit_code == 0
        data = json.loads(result.stdout)
        assert (
            data["total_lines"] == truth["total_lines"]
            and data["failed_requests"] == truth["failed_requests"]
        )


def test_time_window_keeps_only_requests_inside(tmp_path):
    lines, _ = known_log()
    path = write(tmp_path / "a.log", lines)
    since = (START + timedelta(minutes=2)).isoformat()
    until = (START + timedelta(minutes=4)).isoformat()
    report = triage.analyze([path], triage.Window(parse_time(since), parse_time(until)))
    assert report.in_window == 3  # minutes 2, 3 and 4
    assert dict(report.statuses) == {200: 1, 404: 1, 503: 1}
    assert report.malformed == len(GARBAGE)  # malformed lines are counted whatever the window
    assert {a.ally_id: a.recovered for a in report.affected()} == {B: False}


def test_odd_but_valid_lines_give_the_same_answers_as_the_grammar_line_by_line(tmp_path, monkeypatch):
    rng = random.Random(11)
    lines = []
    for minute in range(3_000):
        status = rng.choice([200, 301, 400, 404, 500, 503])
        path = rng.choice(PATHS)
        line = common(minute % 50, rng.choice(["GET", "POST"]), path, status, size=rng.choice(["12", "-"]))
        lines.append(rng.choice(MUTATIONS)(line, rng))
    path = write(tmp_path / "odd.log", lines)
    monkeypatch.setattr(analysis, "CHUNK_BYTES", 16 * 1024)  # several blocks, several threads
    data = triage.analyze([path]).to_dict()
    data["failures_per_ally"] = {ally["ally_id"]: ally["failures"] for ally in data["affected_allies"]}
    expected = reference(lines)
    assert {key: data[key] for key in expected} == expected
    assert 0 < data["malformed"] < len(lines) // 2 and data["failed_credential_requests"] > 0


def test_many_blocks_in_several_threads_give_the_same_answer(tmp_path, monkeypatch):
    rng = random.Random(3)
    lines, expected = [], Counter()
    ids = [f"{n:08x}-0000-4000-8000-000000000000" for n in range(40)]
    for minute in range(20_000):
        if rng.random() < 0.2:
            status, ally = rng.choice([200, 200, 400, 503]), rng.choice(ids)
            lines.append(common(minute, "POST", f"/allies/{ally}/credentials", status))
        else:
            status = rng.choice([200, 301, 404, 500])
            lines.append(common(minute, "GET", "/page", status))
        expected[str(status)] += 1
        if rng.random() < 0.01:
            lines.append("garbage")
    path = write(tmp_path / "big.log", lines)
    monkeypatch.setattr(analysis, "CHUNK_BYTES", 64 * 1024)  # many ranges, several workers
    parallel = triage.analyze([path], workers=2, timeline=True)
    single = triage.analyze([path], workers=1, timeline=True)
    assert parallel.to_dict() == single.to_dict()
    assert triage.analyze([path], workers=3, timeline=True).to_dict() == single.to_dict()
    assert (
        sum(f["requests"] for f in single.to_dict()["failures_over_time"]["failures"])
        == single.failed_requests
    )
    assert parallel.to_dict()["statuses"] == dict(sorted(expected.items()))
    assert parallel.total_lines == len(lines)
    assert parallel.malformed == lines.count("garbage")
    gz = write(tmp_path / "big.log.gz", lines, compress=True)
    assert triage.analyze([gz], workers=2).to_dict()["statuses"] == dict(sorted(expected.items()))


def test_unreadable_input_and_bad_times_exit_2(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(main, ["logs", "triage", str(tmp_path / "nope.log")])
    assert missing.exit_code == 2 and "cannot read" in missing.stderr and "No such file" in missing.stderr
    broken = tmp_path / "broken.gz"
    broken.write_bytes(gzip.compress(random.Random(1).randbytes(100_000))[:50_000])  # cut mid-stream
    result = runner.invoke(main, ["logs", "triage", str(broken)])
    assert result.exit_code == 2 and f"cannot read {broken}" in result.stderr
    bad_time = runner.invoke(main, ["logs", "triage", str(broken), "--since", "yesterday"])
    assert bad_time.exit_code == 2 and "cannot read the time 'yesterday'" in bad_time.stderr


def test_fail_on_affected_exits_3_only_when_an_ally_is_still_affected(tmp_path):
    lines, _ = known_log()
    runner = CliRunner()
    affected = runner.invoke(main, ["logs", "triage", write(tmp_path / "a.log", lines), "--fail-on-affected"])
    assert affected.exit_code == 3
    healthy = write(tmp_path / "b.log", [common(0, "POST", f"/allies/{A}/credentials", 200)])
    assert runner.invoke(main, ["logs", "triage", healthy, "--fail-on-affected"]).exit_code == 0


def test_database_adds_names_status_and_flags_unknown_ids(tmp_path, database_url, client):
    client.post(f"/allies/{YOUNG_WOLF}/credentials", json={"username": "u", "password": "p"})
    lines = [
        common(0, "POST", f"/allies/{YOUNG_WOLF}/credentials", 503),
        common(1, "POST", f"/allies/{A}/credentials", 400),
    ]
    result = CliRunner().invoke(
        main, ["logs", "triage", write(tmp_path / "a.log", lines), "--json", "--db", database_url]
    )
    assert result.exit_code == 0, result.stderr
    allies = {a["ally_id"]: a for a in json.loads(result.stdout)["affected_allies"]}
    assert allies[YOUNG_WOLF]["name"] == "Young-Wolf" and allies[YOUNG_WOLF]["credentials_set"] is True
    assert allies[A]["exists"] is False and "no store has id" in allies[A]["remediation"][0]
    plan = " ".join(allies[YOUNG_WOLF]["remediation"])
    assert f"allies credentials set {YOUNG_WOLF} --username <USERNAME>" in plan
    assert "503: database unavailable" in allies[YOUNG_WOLF]["causes"][0]


def test_the_plan_says_what_the_credentials_history_says(tmp_path, database_url, client, conn):
    for name in ("ana-first", "ana-second"):
        client.post(f"/allies/{YOUNG_WOLF}/credentials", json={"username": name, "password": "p"})
    log = write(
        tmp_path / "a.log", [common(n, "POST", f"/allies/{YOUNG_WOLF}/credentials", 400) for n in (0, 1)]
    )

    def plan() -> tuple[dict, str]:
        result = CliRunner().invoke(main, ["logs", "triage", log, "--json", "--db", database_url])
        assert result.exit_code == 0, result.stderr
        [ally] = json.loads(result.stdout)["affected_allies"]
        return ally, " ".join(ally.get("remediation", []))

    ally, steps = plan()  # both versions were set after the log's failures (in March 2026)
    assert ally["credentials_version"] == 2
    assert "version 2 set by local at" in steps and "after the 2 failed requests: recovered" in steps
    conn.execute("UPDATE credential_versions SET set_at = set_at - interval '1 year'")  # now: before them
    ally, steps = plan()
    assert "current credentials: version 2 set by local" in steps and "before the last of the 2" in steps
    assert f"allies credentials restore {YOUNG_WOLF} --version 1 --if-version 2" in steps


def test_without_a_database_the_report_still_runs(tmp_path):
    lines, _ = known_log()
    result = CliRunner().invoke(
        main, ["logs", "triage", write(tmp_path / "a.log", lines), "--json"], env={"DATABASE_URL": ""}
    )
    data = json.loads(result.stdout)
    assert result.exit_code == 0 and data["database"] is False
    assert all("name" not in a for a in data["affected_allies"])


def test_human_report_names_counts_allies_and_fix(tmp_path):
    lines, _ = known_log()
    result = CliRunner().invoke(
        main, ["logs", "triage", write(tmp_path / "a.log", lines)], env={"DATABASE_URL": ""}
    )
    out = result.stdout
    assert "failed requests (>= 400)" in out and "Affected allies: 3 (2 still affected, 1 recovered" in out
    assert f"AFFECTED {B}" in out and f"Recovered (1, nothing to do; --json lists them all): {A}" in out
    assert f"allies credentials set {B} --username <USERNAME>" in out
    assert "'not\\x0aan-id' is not a valid ally id" in out  # escaped: one line, never a forged one


def test_the_original_server_log():
    report = triage.analyze([str(upstream_file("example.log"))])
    assert (report.total_lines, report.parsed, report.malformed) == (5003, 5003, 0)
    assert dict(report.statuses) == {200: 4504, 301: 227, 404: 177, 500: 95}
    assert report.failed_requests == 272
    assert (report.credential_requests, report.failed_credential_requests) == (3, 3)
    assert sorted(a.ally_id for a in report.affected() if not a.recovered) == [
        "1249a7dc-46c9-4a82-8f9c-539b12900b5e",
        "6fcd3954-9ebe-438f-a433-a0f4dc3cd144",
        "fc929d97-2cca-4d88-824a-a35e09a28ea0",
    ]


def test_the_original_database_knows_the_affected_allies_of_the_original_log(upstream_url, tmp_path):
    result = CliRunner().invoke(
        main, ["logs", "triage", str(upstream_file("example.log")), "--json", "--db", upstream_url]
    )
    allies = json.loads(result.stdout)["affected_allies"]
    assert all(a["exists"] and a["credentials_set"] is False for a in allies)
    assert "the ally exists, so the 404 came from the route itself" in allies[0]["causes"][0]


@pytest.mark.slow
def test_the_project_example_log_is_reproduced_byte_for_byte(server_url, tmp_path):
    out = tmp_path / "example.log"
    demo.generate(server_url, out)
    assert out.read_bytes() == (ROOT / "log" / "example.log").read_bytes()


def test_the_project_example_log_answer():
    data = triage.analyze([str(ROOT / "log" / "example.log")]).to_dict()
    assert (data["total_lines"], data["malformed"], data["failed_requests"]) == (2400, 0, 202)
    assert (data["credential_requests"], data["failed_credential_requests"]) == (1468, 89)
    affected = [a for a in data["affected_allies"] if not a["recovered"]]
    assert len(affected) == 20 and data["still_affected"] == 20
    assert Counter(next(iter(a["statuses"])) for a in affected) == {"503": 17, "400": 3}
    assert sum(a["recovered"] for a in data["affected_allies"]) == 57


def test_triage_as_a_subprocess_reads_stdin(tmp_path):
    lines, truth = known_log()
    result = subprocess.run(
        ["allies", "logs", "triage", "-", "--json"],
        input=("\n".join(lines) + "\n").encode(),
        capture_output=True,
        env=allies_env(),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["failed_credential_requests"] == truth["failed_credential_requests"]


def test_audit_cross_check_names_why_each_failure_happened(tmp_path, database_url, client):
    client.post(f"/allies/{YOUNG_WOLF}/credentials", json={"username": "u"})  # rejected: missing field
    now = datetime.now(UTC).astimezone(timezone(timedelta(hours=-5)))
    line = (
        f'127.0.0.1 - - [{now:%d/%b/%Y:%H:%M:%S %z}] "POST /allies/{YOUNG_WOLF}/credentials HTTP/1.1" 400 99'
    )
    log = write(tmp_path / "a.log", [line])
    result = CliRunner().invoke(main, ["logs", "triage", log, "--json", "--audit", "--db", database_url])
    assert result.exit_code == 0, result.stderr
    [ally] = json.loads(result.stdout)["affected_allies"]
    assert [(a["outcome"], a["http_status"], a["detail"]) for a in ally["audit"]] == [
        ("rejected", 400, "missing field: password")
    ]
    human = CliRunner().invoke(main, ["logs", "triage", log, "--audit", "--db", database_url]).stdout
    assert "audit: 400 rejected: missing field: password" in human
    no_db = CliRunner().invoke(main, ["logs", "triage", log, "--audit"], env={"DATABASE_URL": ""})
    assert no_db.exit_code == 2 and "--audit needs the database" in no_db.stderr


# Bytes that move a line across the plain grammar's edges.
EDGE_BYTES = ' "\\\r-+]/:0123456789[\x00\xff\xc3aZ'


def test_the_scanning_core_reads_exactly_the_plain_grammar():
    """_logscan.c against logparse.PLAIN (Python's `re`): the same lines are plain, with the same
    status, over many lines near the grammar's edges."""
    plain, rng = re.compile(logparse.PLAIN.encode()), random.Random(5)
    lines = []
    for minute in range(20_000):
        path = rng.choice(PATHS)
        line = common(
            minute % 1500,
            rng.choice(["GET", "POST"]),
            path,
            rng.choice([200, 404, 503]),
            host=f"10.0.0.{rng.randrange(8)}",  # more clients than the 3 listed
            quirk=minute % 7 == 0,
        )
        line = rng.choice(MUTATIONS)(line, rng).encode("utf-8", "surrogateescape")
        for _ in range(rng.choice([0, 0, 1, 2])):  # a byte replaced, inserted or removed anywhere
            at, edge = rng.randrange(len(line) + 1), rng.choice(EDGE_BYTES).encode("latin-1")
            line = rng.choice(
                [line[:at] + edge + line[at + 1 :], line[:at] + edge + line[at:], line[:at] + line[at + 1 :]]
            )
        lines.append(line.replace(b"\n", b""))
    block = b"\n".join(lines) + b"\n"
    count, statuses, others, allies, failures = _logscan.scan(block, 1 << 20, -(2**62), 2**62, False, 3, True)
    assert _logscan.scan(block, 1 << 20, -(2**62), 2**62, False, 3, False)[4] == {}  # not asked for
    not_plain = {index for index, _, _ in others}
    expected = Counter(int(line.split(b'" ')[1][:3]) for line in lines if plain.match(line))
    assert count == len(lines)
    assert failures == _failures_by_minute([line for line in lines if plain.match(line)])
    assert [i for i, line in enumerate(lines) if not plain.match(line)] == sorted(not_plain)
    assert statuses == expected and 1_000 < len(not_plain) < len(lines) - 1_000
    assert [counts[1:] for counts in allies] == [
        counts[1:] for counts in _ally_counts(lines, not_plain, clients=3)
    ]
    assert [counts[0] for counts in allies] == [
        counts[0] for counts in _ally_counts(lines, not_plain, clients=3)
    ]


def _epoch(line: bytes) -> int:
    stamp = re.search(rb"\[([0-9]{2}/[A-Za-z]{3}/[^]]*)\]", line)[1].decode().replace(" ", "")
    return int(datetime.strptime(stamp, "%d/%b/%Y:%H:%M:%S%z").timestamp())


def _failures_by_minute(lines: list[bytes]) -> Counter:
    """{(minute, status): n} of the lines with a status of 400 and up, by Python's calendar."""
    statuses = [(line, int(line.split(b'" ')[1][:3])) for line in lines]
    return Counter((_epoch(line) // 60, status) for line, status in statuses if status >= 400)


def _ally_counts(lines: list[bytes], not_plain: set[int], clients: int) -> list[tuple]:
    """What _logscan.scan says per ally id, computed line by line with Python's `re` and calendar."""
    endpoint = re.compile(logparse._CREDENTIALS_ENDPOINT.pattern.encode())
    per_id: dict[bytes, dict] = {}
    for index, line in enumerate(lines):
        found = endpoint.match(line) if index not in not_plain else None
        if found is None:
            continue
        status = int(line.split(b'" ')[1][:3])
        epoch, host, method = _epoch(line), *(found[k].decode("utf-8", "replace") for k in ("host", "method"))
        ally = per_id.setdefault(
            found["ally"],
            {
                "n": 0,
                "statuses": Counter(),
                "methods": Counter(),
                "times": [],
                "clients": [],
                "latest": (-(2**63), 0, True),
            },
        )
        ally["n"] += 1
        if (epoch, index) > ally["latest"][:2]:
            ally["latest"] = (epoch, index, status < 400)
        if status >= 400:
            ally["statuses"][status] += 1
            ally["methods"][method] += 1
            ally["times"].append(epoch)
            if host not in [seen for _, seen in ally["clients"]] and len(ally["clients"]) < clients:
                ally["clients"].append((index, host))
    return [
        (raw.decode("utf-8", "replace"), a["n"], len(a["times"]), dict(a["statuses"]), dict(a["methods"]),
         min(a["times"], default=None), max(a["times"], default=None), a["clients"], *a["latest"])
        for raw, a in per_id.items()
    ]  # fmt: skip


@pytest.mark.slow
def test_the_scanning_core_survives_a_bounded_fuzzing_run():
    """`make fuzz` for 100,000 inputs: libFuzzer with AddressSanitizer and UBSan on the C core."""
    if shutil.which("clang") is None:
        if os.environ.get("CI"):
            pytest.fail("CI must fuzz the scanning core: clang is not installed")
        pytest.skip("clang is not installed: `sudo apt-get install clang libclang-rt-dev`")
    command = [sys.executable, str(ROOT / "tests" / "fuzz" / "fuzz_logscan.py"), "--runs", "100000"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Done 100000 runs" in result.stderr and "ERROR" not in result.stderr


def test_the_clients_listed_are_the_first_seen_whatever_the_spelling_of_the_id_or_the_line(tmp_path):
    """One ally's failures from 25 clients in one block, its id lowercase, uppercase, and on lines
    only Python reads (a quote in the ident field): the 20 listed are the first 20 of the input."""
    lines = []
    for n in range(25):
        line = common(
            n, "POST", f"/allies/{A if n % 3 == 0 else A.upper()}/credentials", 503, host=f"10.0.1.{n}"
        )
        lines.append(line.replace(" - - ", ' a" - ', 1) if n % 3 == 2 else line)
    report = triage.analyze([write(tmp_path / "clients.log", lines)]).to_dict()
    (ally,) = report["affected_allies"]
    assert ally["failures"] == 25 and ally["clients"] == sorted(f"10.0.1.{n}" for n in range(20))
