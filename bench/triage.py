"""`make bench-triage`: the hand-written grep|awk pipeline and `allies logs triage`, side by side.

Generates a deterministic access log (default 1 GiB: Apache common and combined lines, 1 % of
them credentials requests, the original log's quirky lines, a little garbage), warms the page
cache, then times each command (best of --runs) and reads its peak resident memory from the
kernel when it ends (for the pipeline: its largest process; a child starts with its parent's peak,
so this process's own ~20 MiB is a floor). Nothing samples the commands while they run, so
neither is slowed by the measurement. Prints MB/s for both, the ratio, the peak
memory, and how far the naive pipeline's count is from the exact one.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PIPELINE = "grep -E ' [45][0-9]{2} ' LOG | awk '{print $7}' | sort | uniq -c"
POOL_LINES = 50_000  # distinct lines, drawn at random to fill the file quickly
PATHS = ["/", "/health", "/static/app.js", "/api/v1/orders/1042", "/404/about", "/reports/500"]
AGENTS = ['"-" "curl/8.5.0"', '"https://example.com/" "Mozilla/5.0 (X11; Linux x86_64)"']


def generate(path: Path, size_mb: int, seed: int = 7, credentials: float = 0.01) -> None:
    """A log of about `size_mb` MiB, the same bytes for the same arguments; `credentials`: the
    share of its lines that are credentials requests (0.01: a web server's log; 0.95: the app's)."""
    rng = random.Random(seed)
    allies = [f"{rng.getrandbits(32):08x}-{rng.getrandbits(16):04x}-4{rng.getrandbits(12):03x}-"
              f"8{rng.getrandbits(12):03x}-{rng.getrandbits(48):012x}" for _ in range(500)]  # fmt: skip
    pool = [_line(rng, allies, second, credentials) for second in range(POOL_LINES)]
    target, written = size_mb * 1024 * 1024, 0
    with open(path, "w", encoding="ascii") as out:
        while written < target:
            text = "\n".join(rng.choices(pool, k=20_000)) + "\n"
            out.write(text)
            written += len(text)


def _line(rng: random.Random, allies: list[str], second: int, credentials: float) -> str:
    host = f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    day, hour, minute = 1 + second // 86400 % 28, second // 3600 % 24, second // 60 % 60
    when = f"{day:02d}/Nov/2026:{hour:02d}:{minute:02d}:{second % 60:02d}"
    roll = rng.random()
    if roll < 0.001:
        return "garbage " * rng.randint(1, 5)
    if roll < 0.001 + credentials:
        status = rng.choice([200, 200, 200, 400, 404, 503])
        method = rng.choice(["GET", "POST"])
        request = f"{method} /allies/{rng.choice(allies)}/credentials HTTP/1.1"
        if roll < 0.0015:  # the original log's quirk
            return f'{host} - - [{when} - 0500] "{request}" {status} - {rng.randint(4000, 5100)}'
        return f'{host} - - [{when} -0500] "{request}" {status} {rng.randint(40, 160)}'
    status = rng.choices([200, 301, 404, 500], [85, 5, 6, 4])[0]
    line = f'{host} - - [{when} -0500] "{rng.choice(["GET"] * 8 + ["POST", "PUT", "DELETE"])} ' \
           f'{rng.choice(PATHS)} HTTP/1.1" {status} {rng.randint(200, 5200)}'  # fmt: skip
    return line + " " + rng.choice(AGENTS) if roll > 0.7 else line


def _warm_page_cache(log: Path) -> None:
    """Read the log once, in pieces: this process must stay small, since a child starts with its
    parent's peak memory as its own (the kernel reports the larger of the two)."""
    with log.open("rb") as handle:
        while handle.read(8 << 20):
            pass


def measure(command: list[str] | str, runs: int) -> tuple[float, float, str]:
    """(best seconds, peak resident memory in MiB, stdout of the last run)."""
    best, peak, output = float("inf"), 0.0, ""
    for _ in range(runs):
        started = time.perf_counter()
        process = subprocess.Popen(command, shell=isinstance(command, str), stdout=subprocess.PIPE, text=True)
        output = process.stdout.read()
        # wait4: the exit status and the resource usage of the command and the processes it waited
        # for; ru_maxrss (KiB on Linux) is the peak resident memory of the largest of them.
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            sys.exit(f"bench: {command} exited {process.returncode}")
        best, peak = min(best, elapsed), max(peak, usage.ru_maxrss / 1024)
    return best, peak, output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--log", type=Path, help="Use this log instead of generating one.")
    parser.add_argument(
        "--credentials-share",
        type=float,
        default=0.01,
        help="Share of the generated lines that are credentials requests (0.01; the app's own log: 0.95).",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = args.log or Path(tmp) / "bench.log"
        if not args.log:
            print(f"generating {args.size_mb} MiB of log in {log} ...", file=sys.stderr)
            generate(log, args.size_mb, credentials=args.credentials_share)
        size_mb = log.stat().st_size / 2**20
        _warm_page_cache(log)
        naive_s, naive_rss, naive_out = measure(PIPELINE.replace("LOG", shlex.quote(str(log))), args.runs)
        triage_cmd = [str(Path(sys.executable).parent / "allies"), "logs", "triage", str(log), "--json"]
        triage_s, triage_rss, triage_out = measure(triage_cmd, args.runs)
    naive_count = sum(int(line.split()[0]) for line in naive_out.splitlines() if line.strip())
    report = json.loads(triage_out)
    rows = [
        ("log", f"{size_mb:.0f} MiB, {report['total_lines']} lines ({report['malformed']} malformed)"),
        (
            "grep|awk|sort|uniq",
            f"{size_mb / naive_s:.0f} MB/s ({naive_s:.2f} s), peak RSS {naive_rss:.0f} MiB",
        ),
        (
            "allies logs triage",
            f"{size_mb / triage_s:.0f} MB/s ({triage_s:.2f} s), peak RSS {triage_rss:.0f} MiB",
        ),
        ("ratio triage / pipeline", f"{naive_s / triage_s:.2f}x"),
        ("failed requests", f"pipeline counts {naive_count}, exact {report['failed_requests']}"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
