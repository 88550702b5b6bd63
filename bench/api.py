"""API benchmark: the full app and the bare-bones references under wrk, side by side."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from stack import BENCH

CONNECTIONS = (1, 8, 32)
INSTALL_WRK = "wrk is not installed: `sudo apt-get install wrk` (Debian/Ubuntu) or `brew install wrk`"


@dataclass(frozen=True)
class Run:
    app: str
    method: str
    connections: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


def wrk() -> str | None:
    """The wrk program (the WRK variable names another one), or None when it is not installed."""
    return shutil.which(os.environ.get("WRK", "wrk"))


def drive(
    base_url: str, app: str, method: str, connections: int, seconds: int, ids_file: Path, clients: int = 0
) -> Run:
    """One wrk run of `seconds` over every ally id in `ids_file`; with `clients`, the requests come
    from that many client addresses in turn (X-Forwarded-For, for an API trusting one proxy)."""
    threads = min(connections, 2)
    env = dict(os.environ, ALLY_IDS=str(ids_file), BENCH_METHOD=method, BENCH_CLIENTS=str(clients))
    command = [
        wrk(), f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
        "-s", str(BENCH / "wrk_allies.lua"), base_url,
    ]  # fmt: skip
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    result = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
    return Run(
        app,
        method,
        connections,
        result["requests"] / (result["duration_us"] / 1e6),
        result["p50_us"] / 1000,
        result["p99_us"] / 1000,
        result["socket_errors"] + result["bad_status"],
    )


# The API table's setups: the full app and the bare-bones one on the server allies uses, and the
# bare-bones one on the server it used before (the goal of issue 14 is set against that one).
FULL, BARE, BARE_BEFORE = "full", "bare", "bare on gunicorn"


def table(runs: list[Run]) -> list[str]:
    """Markdown rows: the three setups per method and connection count (each cell: the median of
    its rounds), with the full app's ratio to the bare-bones one on the same server (its ceiling)
    and on gunicorn (where it came from). A ratio is the median of the rounds' own ratios: the
    setups of one round run minutes apart, side by side, while this machine's load drifts."""
    cells = " | ".join(f"{app} req/s | {app} p50 / p99 ms" for app in (FULL, BARE, BARE_BEFORE))
    rows = [
        f"| method | connections | {cells} | {FULL} / {BARE} | {FULL} / {BARE_BEFORE} | errors |",
        "| --- | ---: |" + " ---: |" * 9,
    ]
    rounds: dict[tuple, list[Run]] = {}
    for run in runs:  # in the order they ran: the n-th run of a setup belongs to round n
        rounds.setdefault((run.app, run.method, run.connections), []).append(run)
    for method in ("GET", "POST"):
        for connections in CONNECTIONS:
            setups = [rounds.get((app, method, connections)) for app in (FULL, BARE, BARE_BEFORE)]
            if not all(setups):
                continue
            full, bare, before = setups
            rows.append(
                f"| {method} | {connections} | {' | '.join(_cells(_median(same)) for same in setups)} "
                f"| {_median_ratio(full, bare):.0%} | {_median_ratio(full, before):.2f}x "
                f"| {' / '.join(str(sum(run.errors for run in same)) for same in setups)} |"
            )
    return rows


def _median(runs: list[Run]) -> Run:
    """The run with the median throughput (the lower middle one of an even count)."""
    return sorted(runs, key=lambda run: run.requests_per_s)[(len(runs) - 1) // 2]


def _median_ratio(runs: list[Run], baselines: list[Run]) -> float:
    ratios = sorted(
        run.requests_per_s / base.requests_per_s for run, base in zip(runs, baselines, strict=True)
    )
    return ratios[(len(ratios) - 1) // 2]


def _cells(run: Run) -> str:
    return f"{run.requests_per_s:,.0f} | {run.p50_ms:.1f} / {run.p99_ms:.1f}"


def versus(runs: list[Run], baseline: str) -> list[str]:
    """Markdown rows: each setup against `baseline`, per method and connection count."""
    rows = [
        "| setup | method | connections | req/s | p50 / p99 ms | vs " + baseline + " | errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    base = {(r.method, r.connections): r for r in runs if r.app == baseline}
    for run in runs:
        ratio = run.requests_per_s / base[run.method, run.connections].requests_per_s
        rows.append(
            f"| {run.app} | {run.method} | {run.connections} | {_cells(run)} | {ratio:.0%} | {run.errors} |"
        )
    return rows
