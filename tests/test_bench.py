"""A tiny run of the benchmarks, to prove they still work (the real figures come from make bench-*)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, allies_env

pytestmark = [pytest.mark.slow]


def test_bench_triage_runs_side_by_side_and_prints_ratio_and_memory():
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "triage.py"), "--size-mb", "1", "--runs", "1"],
        capture_output=True,
        text=True,
        env=allies_env(),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = dict(line.split("  ", 1) for line in result.stdout.splitlines())
    assert "MB/s" in lines["grep|awk|sort|uniq"] and "peak RSS" in lines["allies logs triage"]
    assert lines["ratio triage / pipeline"].strip().endswith("x")
    naive, exact = (int(word) for word in lines["failed requests"].replace(",", "").split() if word.isdigit())
    assert naive > exact > 0  # the naive pipeline over-counts


@pytest.mark.parametrize("wrk", [None, "wrk-not-installed"])
def test_make_bench_runs_every_part_on_tiny_inputs(tmp_path, wrk):
    out = tmp_path / "benchmarks.md"
    command = [sys.executable, str(ROOT / "bench" / "bench.py"), "--duration", "1", "--rounds", "1"]
    command += ["--stores", "50", "--million", "2000", "--triage-mb", "1", "--out", str(out)]
    env = allies_env(**({"WRK": wrk} if wrk else {}))
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    report = out.read_text()
    assert report.strip() in result.stdout
    for heading in ("## API", "## Database", "## Log triage (case 4)"):
        assert heading in report
    assert "pgbench" in report and "SELECT" in report and "TPS" in report
    assert "`allies db seed --count 2000`" in report and "sql/01_tags_distribution.sql" in report
    assert "key rotation, `allies keys rotate` (2,000 credentials" in report and "rows/s" in report
    if shutil.which(wrk or "wrk"):
        assert "| GET | 32 |" in report and "| POST | 1 |" in report
    else:
        assert "**Skipped:** wrk is not installed" in report and "wrk is not installed" in result.stderr
