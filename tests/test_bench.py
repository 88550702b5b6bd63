"""A tiny run of the benchmarks, to prove they still work (the real figures come from make bench-*)."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT, allies_env


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
    assert "MB/s" in lines["grep|awk|sort|uniq"] and "peak memory" in lines["allies logs triage"]
    assert lines["ratio triage / pipeline"].strip().endswith("x")
    naive, exact = (int(word) for word in lines["failed requests"].replace(",", "").split() if word.isdigit())
    assert naive > exact > 0  # the naive pipeline over-counts
